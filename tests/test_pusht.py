"""foresight/PushT-v0: gym-pusht through the env contract, DINO-WM's task protocol, and the loop
(collect -> train -> plan) on it. The contract itself is in test_env_contract.py."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from foresight.cli import main
from foresight.data.hdf5 import DemoFile
from foresight.envs import EnvSpec, load_env, load_suite, sample_tasks
from foresight.envs.pusht.tasks import PushTTask, PushTTasks, angle_error
from foresight.errors import ConfigError
from foresight.planners import run_suite
from foresight.planners.config import load_planner
from foresight.planners.costs import ObjectCost, ObjectCostConfig, frames_to_tensor


@pytest.fixture(scope="module")
def spec() -> EnvSpec:
    return load_env("pusht", {"image_size": 32})


def test_angle_error_wraps() -> None:
    assert angle_error(0.1, 2 * math.pi - 0.1) == pytest.approx(0.2)
    assert angle_error(math.pi, -math.pi) == pytest.approx(0.0)


def test_success_follows_dinowm_joint_distance_and_angle() -> None:
    task = PushTTask(0, tuple([0.0] * 10), (200.0, 200.0, 1.0), (100.0, 100.0))
    state = np.array([100.0, 100, 0, 0, 200, 200, 1.0, 0, 0, 0])
    assert task.success(state)
    state[0] += 15  # agent 15 px off, block 15 px off: joint distance 21.2 px > 20
    state[4] += 15
    assert not task.success(state)
    assert dataclasses.replace(task, include_agent=False).success(state)
    state[4] -= 15
    state[6] = 1.0 + math.pi / 9 + 0.01
    assert not task.success(state)


def test_trajectory_goals_replay_the_exploration_policy(spec: EnvSpec) -> None:
    """A DINO-WM-protocol task's goal is where the policy's next 25 steps take the start."""
    dist = PushTTasks(goal_steps=25)
    a, b = sample_tasks(spec, dist, seed=99, num=2)
    assert sample_tasks(spec, dist, seed=99, num=2, start=1)[0] == b  # task i: (seed, i) only
    env = spec.make()
    _, info = env.reset(options={"task": a})
    assert not info["success"] or a.block_distance(np.array(a.start)) < 20
    np.testing.assert_array_equal(env.get_state(), a.start)
    assert np.all(np.array(a.start)[[2, 3, 7, 8, 9]] == 0)  # at rest


def test_task_blocks_stay_on_the_table(spec: EnvSpec) -> None:
    """The agent can squeeze the T through gym-pusht's walls; such starts and goals are redrawn
    (task 16 of the pusht suite once had its goal 64 px off the table)."""
    suite = load_suite("pusht")
    env = spec.make()
    for task in sample_tasks(spec, suite.tasks, suite.seed, 20):
        for pose in (task.start[4:7], task.goal_block):
            state = np.array([*task.start[:4], *pose, 0, 0, 0])
            env.set_state(state)
            corners = env.sim.get_keypoints(env.sim._block_shapes)
            assert np.all((corners > 5) & (corners < 507)), (task.task_id, pose)


def test_random_goals_judge_the_block_alone(spec: EnvSpec) -> None:
    task = sample_tasks(spec, PushTTasks(goal="random"), seed=0, num=1)[0]
    assert not task.include_agent
    assert 100 <= task.goal_block[0] < 400 and 100 <= task.goal_block[1] < 400


def test_goal_image_shows_the_block_at_its_goal_without_the_agent(spec: EnvSpec) -> None:
    env = spec.make()
    task = sample_tasks(spec, load_suite("pusht").tasks, seed=99, num=1)[0]
    obs, _ = env.reset(options={"task": task})
    before = env.get_state()
    goal = env.goal(task)
    np.testing.assert_array_equal(env.get_state(), before)
    np.testing.assert_array_equal(env.render_image(), obs["image"])
    agent = np.array([65, 105, 225])
    assert (np.abs(obs["image"].astype(int) - agent).sum(-1) < 40).any()
    assert not (np.abs(goal.image.astype(int) - agent).sum(-1) < 40).any()
    solved = list(task.start)
    solved[:2], solved[4:7] = (-500.0, -500.0), task.goal_block
    env.set_state(np.array(solved))
    np.testing.assert_array_equal(env.render_image(), goal.image)
    assert goal.robot_goal is not None  # the protocol judges where the agent ends


@pytest.mark.parametrize("angle", [0.0, 0.4, math.pi / 2, 2.5, -math.pi / 4])
def test_the_cost_sees_the_whole_block_and_its_angle(angle: float) -> None:
    """gym-pusht fills a shape with a lighter shade than its edge: the goal's palette names
    both, so the block's mask covers its area (7200 px², 112.5 pixels at 64 px), whatever the
    angle; and the mask's moments give the block's angle (image rows point down, so the image
    angle is minus the simulator's, plus a constant)."""
    env = load_env("pusht", {"image_size": 64}).make()
    task = PushTTask(0, (100.0, 100.0, *[0.0] * 8), (256.0, 256.0, 0.0), (100.0, 100.0))
    cost = ObjectCost(ObjectCostConfig(orientation_weight=1.0), env.goal(task))
    env.set_state(np.array([60.0, 60.0, 0, 0, 300.0, 330.0, angle, 0, 0, 0]))
    frame = frames_to_tensor(env.render_image())[None]
    mask = cost.class_masses(frame, [cost.goal.target_label])[:, 0]
    assert float(mask.sum()) == pytest.approx(112.5, rel=0.1)
    turn = float(cost.orientations(mask, (64, 64))[0] - cost.goal_orientation)
    assert math.degrees(angle_error(turn, -angle)) < 8
    assert float(cost.frame_costs(frame)) > 0.9 * angle_error(0.0, angle) / math.pi


def test_the_agent_term_waits_for_the_block_when_asked() -> None:
    """``robot_goal_within``: the agent's distance to its goal counts in full with the block
    home and not at all with the block far (beyond twice the radius), so the planner does not
    park the agent at its goal beside a block it must still push."""
    env = load_env("pusht", {"image_size": 64}).make()
    task = PushTTask(0, (100.0, 100.0, *[0.0] * 8), (256.0, 256.0, 0.0), (100.0, 100.0))
    goal = env.goal(task)

    def frame(agent_x: float, block_y: float) -> torch.Tensor:
        env.set_state(np.array([agent_x, 100.0, 0, 0, 256.0, block_y, 0.0, 0, 0, 0]))
        return frames_to_tensor(env.render_image())

    home = torch.stack([frame(100.0, 256.0), frame(400.0, 256.0)])  # agent at its goal, away
    far = torch.stack([frame(100.0, 420.0), frame(400.0, 420.0)])  # block 164 px off
    away = 300 / 512  # the agent's extra distance, in image widths
    for within, far_gap in ((0.0, away), (0.1, 0.0)):
        cfg = ObjectCostConfig(pusher_weight=0.0, robot_goal_weight=1.0, robot_goal_within=within)
        cost = ObjectCost(cfg, goal)
        at_goal, moved = cost.frame_costs(home).tolist()
        assert moved - at_goal == pytest.approx(away, abs=0.02)
        at_goal, moved = cost.frame_costs(far).tolist()
        assert moved - at_goal == pytest.approx(far_gap, abs=0.02)
    with pytest.raises(ConfigError, match="robot_goal_within"):
        ObjectCostConfig(robot_goal_within=-0.1)
    env.close()


def test_actions_move_the_agent_in_foresights_axes(spec: EnvSpec) -> None:
    env = spec.make()
    obs, _ = env.reset(seed=0)
    start = obs["state"].copy()
    for _ in range(5):
        obs, *_ = env.step(np.array([1.0, 1.0], np.float32))
    moved = obs["state"] - start
    assert moved[0] > 0.03 and moved[1] > 0.03  # +x right, +y up, both in metres


def test_goal_kinematics_predict_the_pd_driven_agent_exactly(spec: EnvSpec) -> None:
    env = spec.make()
    task = sample_tasks(spec, load_suite("pusht").tasks, seed=99, num=1)[0]
    obs, _ = env.reset(options={"task": task})
    kin = env.goal(task).kinematics
    rng = np.random.default_rng(0)
    for action in rng.uniform(-1, 1, (3, 2)).astype(np.float32):
        obs, *_ = env.step(action)  # the agent is moving now
    robot = kin.track(None, None, obs["state"])  # taken as at rest: its velocity is wrong
    action = np.array([0.5, -1.0], np.float32)
    obs, *_ = env.step(action)
    robot = kin.track(robot, action, obs["state"])  # two positions and an action fix it
    state = env.get_state()
    np.testing.assert_allclose(robot[2:].numpy(), [state[2] / 1000, -state[3] / 1000], atol=1e-6)
    # Hard into a wall and back: the targets clip as the env's do, and the agent coasts.
    actions = np.concatenate([np.tile([1.0, 1.0], (12, 1)), rng.uniform(-1, 1, (8, 2))])
    actions = torch.as_tensor(actions, dtype=torch.float32)
    commanded = kin.commanded(robot, torch.stack([actions, -actions]))
    assert commanded.shape == (2, 20, 2)
    for t, a in enumerate(actions.numpy()):
        obs, *_ = env.step(a)
        np.testing.assert_allclose(commanded[0, t].numpy(), obs["state"], atol=1e-5)
    assert float(commanded[0, 11].max()) > 0.2  # it reached the wall's side of the table
    assert not torch.allclose(commanded[0], commanded[1])


def test_a_missing_gym_pusht_is_one_line() -> None:
    code = (
        "import sys; sys.modules['gym_pusht'] = None\n"
        "from foresight.cli import main\n"
        "sys.exit(main(['collect', '--env', 'pusht', '--out', 'x.h5', '--episodes', '1']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "pip install -e '.[pusht]'" in proc.stderr and "Traceback" not in proc.stderr


def test_oracle_solves_a_pusht_task_on_a_small_budget(tmp_path: Path) -> None:
    """A smoke test of the whole planning path on true dynamics (40 x 2 CEM, horizon 6); the
    success rate on the protocol suite at the preset's budget is measured with foresight plan."""
    planner = dataclasses.replace(load_planner("pusht"), horizon=6)
    planner = dataclasses.replace(
        planner,
        optimizer=dataclasses.replace(planner.optimizer, samples=40, iterations=2, elites=4),
    )
    suite = tmp_path / "one.yaml"
    suite.write_text(
        "name: one\nenv: pusht\nseed: 2\nepisode_steps: 18\nreplan_every: 3\n"
        "tasks: {goal_steps: 8, include_agent: false, min_block_motion: 0.01}\n"
    )
    result = run_suite("oracle", suite, episodes=1, planner=planner)
    rec = result.episodes[0]
    assert rec["initial_distance"] >= 0.02  # the block must move to reach its goal
    assert rec["ever_success"], rec
    assert rec["final_distance"] < rec["initial_distance"] / 2


@pytest.mark.parametrize("frame_skip", [1, 2])
def test_collect_train_plan_on_pusht(
    tmp_path: Path, frame_skip: int, short_suite: Callable[..., Path]
) -> None:
    """The whole loop on Push-T; at frame_skip 2 a model step is 2 env steps (its 3-step
    horizon padded to 4), and its validation windows fall back to what 8 steps allow."""
    data = tmp_path / "pusht.h5"
    argv = ["collect", "--env", "pusht", "--out", str(data), "--episodes", "6", "--steps", "8"]
    assert main([*argv, "--image-size", "16", "--seed", "1"]) == 0
    with DemoFile(data) as f:
        assert EnvSpec.from_env_args(f.env_args, str(data)).name == "foresight/PushT-v0"
        assert f.read("demo_0", "states").shape == (9, 10)
        assert f.moved_fraction() > 0
    run = tmp_path / "run"
    sizes = ["image_size=16", "channels=4", "g_dim=8", "rnn_size=8", "predictor_layers=1"]
    train = ["train", "--config", "svg_det", "--data", str(data), "--out", str(run)]
    horizon = [
        "future_frames=3",
        "eval_future_frames=4",
        "train.batch_size=2",
        "train.eval_every=2",
        f"frame_skip={frame_skip}",
        f"action_dim={2 * frame_skip}",
    ]
    assert main([*train, "--max-steps", "2", "--device", "cpu", *sizes, *horizon]) == 0
    suite = short_suite(env="pusht", tasks={"goal_steps": 4})
    planner = tmp_path / "tiny.yaml"
    planner.write_text("optimizer: {name: cem, samples: 6, iterations: 1, elites: 2}\nhorizon: 3\n")
    out = tmp_path / "plan"
    plan = ["plan", "--model", str(run / "checkpoint.pt"), "--suite", str(suite)]
    assert main([*plan, "--planner", str(planner), "--episodes", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 1 and summary["ever_success_rate"] is not None
    # A model trained on Push-T data is refused on a Push-v0 suite.
    assert main([*plan[:3], "--episodes", "1", "--out", str(tmp_path / "p2")]) == 2

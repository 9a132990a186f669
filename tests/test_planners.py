"""Planner tests: optimizers minimise, costs rank, predictors are faithful, the oracle solves."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from foresight.data.dataset import SequenceDataset
from foresight.data.hdf5 import DemoFile
from foresight.envs import EnvSpec, PushEnv, load_suite, sample_tasks
from foresight.errors import ConfigError, ForesightError
from foresight.models import build_model, load_model_config
from foresight.planners import (
    CEM,
    MPPI,
    CEMConfig,
    ModelPredictor,
    MPCPolicy,
    MPPIConfig,
    Observation,
    OraclePredictor,
    PlannerConfig,
    build_cost,
    planner_from_dict,
    run_episode,
    run_suite,
)
from foresight.planners.config import planner_to_dict
from foresight.planners.costs import (
    LpipsCostConfig,
    ObjectCost,
    ObjectCostConfig,
    frames_to_tensor,
)
from foresight.planners.optimizers import colored_noise
from foresight.results import PLAN_SUMMARY_FORMAT, EffectiveBudget, PlanSummary

TARGET = np.array([[0.5, -0.3], [0.2, 0.7], [-0.6, 0.1], [0.0, -0.9]])


def quadratic(actions: np.ndarray) -> np.ndarray:
    return ((actions - TARGET) ** 2).sum(axis=(1, 2))


# ------------------------------------------------------------------------------ optimizers
@pytest.mark.parametrize(
    "optimizer",
    [
        CEM(CEMConfig(samples=200, iterations=8, elites=20)),
        CEM(CEMConfig(samples=200, iterations=8, elites=20, noise_beta=2.0, keep_elites=0.3)),
        MPPI(MPPIConfig(samples=200, iterations=8, temperature=0.05)),
    ],
    ids=["cem", "icem", "mppi"],
)
def test_optimizer_minimizes_quadratic(optimizer) -> None:
    rng = np.random.default_rng(0)
    start = quadratic(np.zeros((1, 4, 2)))[0]
    result = optimizer.optimize(quadratic, horizon=4, action_dim=2, rng=rng)
    assert result.actions.shape == (4, 2)
    assert result.evaluations == 200 * 8
    assert quadratic(result.actions[None])[0] < 0.02 * start
    np.testing.assert_allclose(result.actions, TARGET, atol=0.12)


@pytest.mark.parametrize("cls,cfg", [(CEM, CEMConfig()), (MPPI, MPPIConfig())])
def test_optimizer_clips_to_bounds_and_is_seeded(cls, cfg) -> None:
    seen: list[np.ndarray] = []

    def far(actions: np.ndarray) -> np.ndarray:
        seen.append(actions)
        return ((actions - 3.0) ** 2).sum(axis=(1, 2))  # optimum outside [-1, 1]

    a = cls(cfg).optimize(far, 5, 2, np.random.default_rng(7))
    assert all(s.min() >= -1.0 and s.max() <= 1.0 for s in seen)
    assert a.actions.max() <= 1.0 and a.actions.mean() > 0.5
    b = cls(cfg).optimize(far, 5, 2, np.random.default_rng(7))
    c = cls(cfg).optimize(far, 5, 2, np.random.default_rng(8))
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.actions, c.actions)


def test_cem_warm_start_keeps_a_good_plan_and_action_repeat_holds_actions() -> None:
    cem = CEM(CEMConfig(samples=20, iterations=1, elites=5))
    result = cem.optimize(quadratic, 4, 2, np.random.default_rng(0), init_mean=TARGET)
    assert result.cost == pytest.approx(0.0)  # the warm start was scored and kept
    rep = CEM(CEMConfig(samples=50, iterations=2, elites=5, action_repeat=2))
    out = rep.optimize(quadratic, 4, 2, np.random.default_rng(0))
    assert out.actions.shape == (4, 2)
    np.testing.assert_array_equal(out.actions[0], out.actions[1])
    np.testing.assert_array_equal(out.actions[2], out.actions[3])
    odd = rep.optimize(lambda a: (a**2).sum(axis=(1, 2)), 5, 2, np.random.default_rng(0))
    assert odd.actions.shape == (5, 2) and odd.mean.shape == (5, 2)


def test_cem_include_zero_scores_holding_still() -> None:
    def effort(actions: np.ndarray) -> np.ndarray:
        return np.abs(actions).sum(axis=(1, 2))

    warm = np.full((6, 2), 0.5)
    cfg = CEMConfig(samples=20, iterations=1, elites=5)
    moved = CEM(cfg).optimize(effort, 6, 2, np.random.default_rng(0), init_mean=warm)
    assert moved.cost > 0.5  # 20 random draws around a moving warm start never stand still
    cfg = dataclasses.replace(cfg, include_zero=True)
    still = CEM(cfg).optimize(effort, 6, 2, np.random.default_rng(0), init_mean=warm)
    assert still.cost == 0.0
    np.testing.assert_array_equal(still.actions, 0.0)


@pytest.mark.parametrize("steps", [10, 7])
def test_colored_noise_has_unit_variance_and_smoothness_grows_with_beta(steps) -> None:
    rng = np.random.default_rng(0)
    white = colored_noise(rng, 20000, steps, 2, 0.0)
    assert white.shape == (20000, steps, 2)

    def lag1(x: np.ndarray) -> float:
        return float(np.mean(x[:, 1:] * x[:, :-1]))

    lags = [lag1(white)]
    for beta in (1.0, 2.0, 3.0):
        noise = colored_noise(rng, 20000, steps, 2, beta)
        # Unit variance at every step, like the white noise it replaces.
        np.testing.assert_allclose(np.mean(noise**2, axis=(0, 2)), 1.0, atol=0.05)
        lags.append(lag1(noise))
    assert abs(lags[0]) < 0.03 and lags[1] < lags[2] < lags[3] and lags[2] > 0.4


def test_cem_white_noise_is_unchanged_and_kept_elites_are_rescored() -> None:
    # noise_beta 0 draws exactly what classic CEM drew: seeded plans do not move.
    a = CEM(CEMConfig(samples=30, iterations=2)).optimize(quadratic, 4, 2, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    first = np.clip(0.5 * rng.standard_normal((30, 4, 2)), -1, 1)
    first[0] = 0.0
    assert a.cost <= quadratic(first).min()
    seen: list[np.ndarray] = []

    def record(actions: np.ndarray) -> np.ndarray:
        seen.append(actions.copy())
        return quadratic(actions)

    CEM(CEMConfig(samples=30, iterations=2, elites=10, keep_elites=0.3)).optimize(
        record, 4, 2, np.random.default_rng(0)
    )
    best3 = seen[0][np.argsort(quadratic(seen[0]), kind="stable")[:3]]
    np.testing.assert_array_equal(seen[1][:3], best3)


def test_nan_costs_never_win() -> None:
    def nan_for_positive(actions: np.ndarray) -> np.ndarray:
        cost = quadratic(actions)
        return np.where(actions[:, 0, 0] > 0, np.nan, cost)

    result = CEM(CEMConfig(samples=50, iterations=2)).optimize(
        nan_for_positive, 4, 2, np.random.default_rng(0)
    )
    assert result.actions[0, 0] <= 0 and np.isfinite(result.cost)


# ----------------------------------------------------------------------------------- costs
@pytest.fixture(scope="module")
def scene():
    """An easy task: env at its start, the goal, and a frame with the target at its goal."""
    env = PushEnv(image_size=64)
    suite = load_suite("easy")
    task = sample_tasks(EnvSpec.of(env), suite.tasks, 0, 1)[0]
    obs, _ = env.reset(options={"task": task})
    goal = env.goal(task)
    # The same scene with the target moved to its goal (pusher still shown).
    xy = np.array(task.layout.object_xy)
    xy[task.target] = task.goal_xy
    env.sim.set_layout(
        np.array(task.layout.pusher_xy),
        xy,
        np.array(task.layout.object_yaw),
        np.array(task.layout.active),
    )
    at_goal = env.sim.render()
    # Halfway there.
    xy[task.target] = (np.array(task.goal_xy) + np.array(task.layout.object_xy[task.target])) / 2
    env.sim.set_layout(
        np.array(task.layout.pusher_xy),
        xy,
        np.array(task.layout.object_yaw),
        np.array(task.layout.active),
    )
    halfway = env.sim.render()
    env.reset(options={"task": task})
    yield env, task, goal, obs["image"], halfway, at_goal
    env.close()


def _score(cost, *images: np.ndarray) -> np.ndarray:
    frames = frames_to_tensor(np.stack(images))[:, None, None]  # (N, 1, 1, 3, H, W)
    return cost(frames, horizon=1).numpy()


@pytest.mark.parametrize(
    "config", [ObjectCostConfig(), ObjectCostConfig(pusher_weight=0.0)], ids=["object", "noarm"]
)
def test_object_cost_ranks_by_distance_to_goal(scene, config) -> None:
    env, task, goal, start, halfway, at_goal = scene
    cost = build_cost(config, goal)
    s_start, s_half, s_goal = _score(cost, start, halfway, at_goal)
    assert s_goal < s_half < s_start
    # Without the pusher term it reads the target's true displacement, in image widths.
    if config.pusher_weight == 0.0:
        true = np.linalg.norm(np.subtract(task.goal_xy, task.layout.object_xy[task.target]))
        widths = true / (2 * env.config.view_half_extent)
        assert s_start == pytest.approx(widths, rel=0.15)
        assert s_goal < 0.02


def test_object_cost_rewards_the_pusher_near_the_target(scene) -> None:
    env, task, goal, *_ = scene
    cost = build_cost(ObjectCostConfig(pusher_weight=0.5), goal)
    obj = np.array(task.layout.object_xy[task.target])
    far_frame = env.sim.render()
    toward = obj - np.array(task.layout.pusher_xy)
    near_xy = obj - 0.07 * toward / np.linalg.norm(toward)
    xy = np.array(task.layout.object_xy)
    env.sim.set_layout(near_xy, xy, np.array(task.layout.object_yaw), np.array(task.layout.active))
    near_frame = env.sim.render()
    env.reset(options={"task": task})
    s_far, s_near = _score(cost, far_frame, near_frame)
    assert s_near < s_far


def test_object_cost_never_rewards_a_vanished_pusher(scene) -> None:
    """A model that blurs the pusher away must not look closer to the goal than one keeping it."""
    env, task, goal, start, *_ = scene
    cost = build_cost(ObjectCostConfig(), goal)
    frame = frames_to_tensor(start[None])  # (1, 3, H, W)
    membership = cost.class_masses(frame, [goal.robot_label])[0, 0].view(start.shape[:2])
    is_pusher = (membership > 1e-3).numpy()
    assert is_pusher.sum() > 4
    no_pusher = start.copy()
    no_pusher[is_pusher] = np.median(start.reshape(-1, 3), axis=0)
    s_start, s_gone = _score(cost, start, no_pusher)
    assert s_gone > s_start


def test_commanded_pusher_is_where_the_env_puts_it_in_image_coordinates(scene) -> None:
    env, task, goal, *_ = scene
    kin = goal.kinematics
    assert kin is not None and kin.image_size == 64
    env.reset(options={"task": task})
    start = np.array(task.layout.pusher_xy, dtype=np.float32)
    # Away from the objects, along the wall: the last actions push into the workspace limit.
    away = -np.sign(np.array(task.layout.object_xy[task.target]) - start)
    actions = np.tile(away, (12, 1)).astype(np.float32)
    commanded = kin.commanded(torch.as_tensor(start), torch.as_tensor(actions)[None])[0]
    for t, action in enumerate(actions):
        obs = env.step(action)[0]
        np.testing.assert_allclose(commanded[t].numpy(), obs["state"], atol=2e-3)
    assert float(commanded.abs().max()) == pytest.approx(env.config.workspace)
    pix = env.sim.world_to_pixel(commanded.numpy()) / 64
    np.testing.assert_allclose(kin.to_image(commanded).numpy(), pix, atol=1e-6)
    env.reset(options={"task": task})


def test_commanded_pusher_term_guides_even_when_the_frame_lost_the_pusher(scene) -> None:
    env, task, goal, start, *_ = scene
    cost = build_cost(ObjectCostConfig(pusher_weight=0.5, pusher="commanded"), goal)
    image_cost = build_cost(ObjectCostConfig(pusher_weight=0.5), goal)
    membership = cost.class_masses(frames_to_tensor(start[None]), [goal.robot_label])[0, 0]
    blurred = start.copy()  # a prediction that blurred the pusher away
    blurred[(membership > 1e-3).view(start.shape[:2]).numpy()] = np.median(start.reshape(-1, 3), 0)
    pusher = np.array(task.layout.pusher_xy, dtype=np.float32)
    toward = np.array(task.layout.object_xy[task.target]) - pusher
    toward = (toward / np.abs(toward).max()).astype(np.float32)
    actions = torch.as_tensor(np.stack([np.tile(toward, (3, 1)), np.tile(-toward, (3, 1))]))
    frames = frames_to_tensor(np.stack([blurred, blurred]))[:, None, None]  # (2, 1, 1, ...)
    s_toward, s_away = cost(frames, 3, actions, torch.as_tensor(pusher)).numpy()
    assert s_toward < s_away
    # From the frame alone both futures look alike: the image cost cannot tell them apart.
    i_toward, i_away = image_cost(frames, 3, actions, torch.as_tensor(pusher)).numpy()
    assert i_toward == i_away


def test_object_cost_on_true_frames_at_32_ranks_the_true_final_state_first() -> None:
    """The cost a 32x32 model is planned with, on true frames: the goal layout beats others."""
    env = PushEnv(image_size=32)
    suite = load_suite("easy")
    rng = np.random.default_rng(0)
    for task in sample_tasks(EnvSpec.of(env), suite.tasks, 3, 4):
        env.reset(options={"task": task})
        goal = env.goal(task)
        layout = task.layout
        frames = []
        targets = [np.array(task.goal_xy)] + [rng.uniform(-0.18, 0.18, 2) for _ in range(8)]
        for target_xy in targets:
            xy = np.array(layout.object_xy)
            xy[task.target] = target_xy
            env.sim.set_layout(
                np.array(layout.pusher_xy), xy, np.array(layout.object_yaw), np.array(layout.active)
            )
            frames.append(env.sim.render())
        for source in ("image", "commanded"):
            cost = build_cost(ObjectCostConfig(pusher=source), goal)
            scores = _score(cost, *frames)
            assert int(np.argmin(scores)) == 0, (task.task_id, source, scores)
    env.close()


def test_pixel_cost_ranks_goal_frame_lowest(scene) -> None:
    _, _, goal, start, _, at_goal = scene
    cost = build_cost(planner_from_dict({"cost": {"name": "pixel"}}).cost, goal)
    s_goal_image, s_at_goal, s_start = _score(cost, goal.image, at_goal, start)
    assert s_goal_image == 0.0
    assert s_at_goal < s_start


def test_lpips_cost_refuses_without_weights_and_ranks_with_them(scene, tmp_path, monkeypatch):
    import lpips

    _, _, goal, start, _, _ = scene
    monkeypatch.delenv("FORESIGHT_LPIPS_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    with pytest.raises(ForesightError, match="LPIPS weights"):
        build_cost(LpipsCostConfig(), goal)
    with pytest.raises(ForesightError, match="do not exist"):
        build_cost(LpipsCostConfig(weights=str(tmp_path / "missing.pth")), goal)
    # A compact LPIPS file (every weight given explicitly): here, a seeded random network,
    # enough to check the ranking contract (a frame equal to the goal is at distance 0).
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation
        net = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    path = tmp_path / "lpips_compact.pt"
    torch.save(net.state_dict(), path)
    cost = build_cost(LpipsCostConfig(weights=str(path)), goal)
    s_goal, s_start = _score(cost, goal.image, start)
    assert s_goal == pytest.approx(0.0, abs=1e-6)
    assert s_start > s_goal


def test_cost_frames_and_weights() -> None:
    goal_img = np.zeros((8, 8, 3), np.uint8)
    goal = _stub_goal(goal_img)
    last = build_cost(planner_from_dict({"cost": {"name": "pixel"}}).cost, goal)
    assert last.steps(10) == [9]
    cfg = planner_from_dict({"cost": {"name": "pixel", "frames": "all", "discount": 0.5}}).cost
    every = build_cost(cfg, goal)
    assert every.steps(4) == [0, 1, 2, 3]
    w = every.weights(4).numpy()
    np.testing.assert_allclose(w, np.array([1, 2, 4, 8]) / 15)
    # Weighted over frames, averaged over samples: a frame off only at t=0 costs 1/15 as much.
    frames = torch.zeros(1, 2, 4, 3, 8, 8)
    frames[:, :, 0] = 1.0
    assert float(every(frames, 4)[0]) == pytest.approx(3 * 64 / 15)
    # handover: where the executed actions end, and the last; each once when they coincide.
    cfg = planner_from_dict({"cost": {"name": "pixel", "frames": "handover"}}).cost
    assert build_cost(cfg, goal, executed=5).steps(20) == [4, 19]
    assert build_cost(cfg, goal, executed=5).steps(5) == [4]
    assert build_cost(cfg, goal).steps(3) == [0, 2]
    frames = torch.zeros(1, 1, 2, 3, 8, 8)
    frames[:, :, 0] = 1.0
    assert float(build_cost(cfg, goal, executed=2)(frames, 6)[0]) == pytest.approx(3 * 64 / 2)
    # action_weight: the same frames, the sequence that moves less costs less, by w * mean(a^2).
    cfg = planner_from_dict({"cost": {"name": "pixel", "action_weight": 0.5}}).cost
    frames = torch.zeros(2, 1, 1, 3, 8, 8)
    actions = torch.zeros(2, 4, 2)
    actions[1, :2] = 1.0
    costs = build_cost(cfg, goal)(frames, 4, actions).numpy()
    np.testing.assert_allclose(costs, [0.0, 0.5 * 4 / 8])
    with pytest.raises(ConfigError, match="action_weight"):
        planner_from_dict({"cost": {"name": "pixel", "action_weight": -1.0}})


def _stub_goal(image: np.ndarray):
    from foresight.envs import Goal

    return Goal(
        image=image,
        colors=np.eye(3, dtype=np.float32),
        labels=np.arange(3),
        target_label=0,
        robot_label=1,
    )


# ------------------------------------------------------------------------------ predictors
def test_oracle_predictor_matches_executing_the_actions(scene) -> None:
    env, task, *_ = scene
    obs, _ = env.reset(options={"task": task})
    oracle = OraclePredictor(EnvSpec.of(env))
    oracle.reset(Observation(obs["image"], obs["state"], env.get_state()), seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 6, 2))
    pred = oracle.predict(actions, [2, 5])
    assert pred.shape == (3, 1, 2, 3, 64, 64)
    for i in (0, 2):
        env.reset(options={"task": task})
        frames = [env.step(a)[0]["image"] for a in actions[i]]
        truth = frames_to_tensor(np.stack([frames[2], frames[5]]))
        torch.testing.assert_close(pred[i, 0], truth, rtol=0, atol=0)
    assert oracle.model_seconds > 0
    oracle.close()
    env.reset(options={"task": task})


def test_model_predictor_batches_with_context_history() -> None:
    cfg = dataclasses.replace(load_model_config("copy_last"), context_frames=3, image_size=32)
    model = build_model(cfg).eval()
    pred = ModelPredictor(model, num_samples=2, batch_size=3)
    env = PushEnv(image_size=32)
    obs, _ = env.reset(seed=0)
    pred.reset(Observation(obs["image"], obs["state"], env.get_state()), seed=0)
    frames, states, actions = pred.context_window()
    assert frames.shape == (3, 3, 32, 32) and states.shape == (3, 2) and actions.shape == (2, 2)
    torch.testing.assert_close(frames[0], frames[2])  # padded with the first frame
    for a in ([1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]):
        obs = env.step(np.array(a, np.float32))[0]
        pred.observe(np.array(a, np.float32), Observation(obs["image"], obs["state"], None))
    frames, states, actions = pred.context_window()
    torch.testing.assert_close(frames[-1], frames_to_tensor(obs["image"]))
    torch.testing.assert_close(actions, torch.tensor([[0.0, 1.0], [-1.0, 0.0]]))
    out = pred.predict(np.zeros((7, 5, 2)), [4])  # 7 sequences in chunks of 3
    assert out.shape == (7, 2, 1, 3, 32, 32)
    torch.testing.assert_close(out[6, 1, 0], frames_to_tensor(obs["image"]))
    env.close()


def test_a_frame_skip_model_sees_its_history_as_its_training_windows(tiny_h5: Path) -> None:
    """At frame_skip 3 the predictor's context is the dataset's window ending now, and an env
    step is read from the first imagined frame at or after it."""
    cfg = load_model_config("copy_last", ["frame_skip=3", "action_dim=6"])
    pred = ModelPredictor(build_model(cfg).eval())
    windows = SequenceDataset(tiny_h5, length=2, split="all", frame_skip=3, frame_dtype=torch.uint8)
    demo = windows.index[0][0]
    with DemoFile(tiny_h5) as f:
        images, states = f.frames(demo), f.read(demo, "obs/state")
        actions = f.read(demo, "actions")
    pred.reset(Observation(images[0], states[0], None), seed=0)
    frames, _, past = pred.context_window()
    assert torch.equal(frames[0], frames[1]) and not past.any()  # padded at rest
    for t in range(7):
        pred.observe(actions[t], Observation(images[t + 1], states[t + 1], None))
    frames, seen, past = pred.context_window()
    truth = windows[windows.index.index((demo, 4))]  # frames 4 and 7, actions 4, 5, 6
    torch.testing.assert_close(frames, truth["frames"].float() / 255)
    assert torch.equal(seen, truth["states"]) and torch.equal(past, truth["actions"])
    # Env steps 0-2 read imagined frame 0, 3-5 frame 1; 5 actions are padded to 2 frames.
    assert pred.model_steps([0, 2, 3, 4]) == ([0, 1], [0, 0, 1, 1])
    out = pred.predict(np.zeros((4, 5, 2)), [2, 4])
    assert out.shape == (4, 1, 2, 3, 32, 32)
    torch.testing.assert_close(out[0, 0, 1], frames[-1])


# --------------------------------------------------------------------------- configs / MPC
def test_planner_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="unknown key 'samplez'"):
        planner_from_dict({"optimizer": {"name": "cem", "samplez": 3}})
    with pytest.raises(ConfigError, match="unknown optimizer 'adam'"):
        planner_from_dict({"optimizer": {"name": "adam"}})
    with pytest.raises(ConfigError, match="unknown cost"):
        planner_from_dict({"cost": {"name": "psnr"}})
    with pytest.raises(ConfigError, match="elites"):
        planner_from_dict({"optimizer": {"name": "cem", "samples": 5, "elites": 10}})


#: A reduced CEM budget for CI; still genuinely planning (the tasks are not solved without it).
CI_PLANNER = PlannerConfig(
    optimizer=CEMConfig(samples=60, iterations=2, elites=6), horizon=10, cost=ObjectCostConfig()
)


@pytest.mark.parametrize("oracle", ["oracle", "oracle32"])
def test_oracle_mpc_solves_easy_tasks(oracle) -> None:
    """Also at 32x32, the cpu models' resolution: the cost itself does not fail there."""
    result = run_suite(oracle, suite="easy", episodes=2, planner=CI_PLANNER, out=None)
    for rec in result.episodes:
        assert rec["initial_distance"] >= 0.10
        assert rec["success"], f"task {rec['task_id']}: {rec['final_distance']:.3f} m from goal"
    assert result.summary.success_rate == 1.0


def test_mpc_episode_records_imagined_futures() -> None:
    suite = load_suite("easy")
    env = PushEnv(image_size=32)
    task = sample_tasks(EnvSpec.of(env), suite.tasks, suite.seed, 1)[0]
    tiny = PlannerConfig(optimizer=CEMConfig(samples=8, iterations=1, elites=2), horizon=3)
    policy = MPCPolicy(OraclePredictor(EnvSpec.of(env)), tiny, replan_every=2)
    result = run_episode(env, policy, task, 5, np.random.default_rng(0))
    assert result.frames.shape == (6, 32, 32, 3)
    assert result.imagined is not None and result.imagined.shape == (5, 32, 32, 3)
    assert len(policy.plan_seconds) == 3  # replanned at steps 0, 2, 4
    policy.close()
    env.close()


def test_a_planner_may_replan_at_its_own_interval(tmp_path) -> None:
    """``replan_every`` on the planner overrides the suite's; the run records it and the plans."""
    assert load_suite("easy").replan_every == 1
    tiny = PlannerConfig(
        optimizer=CEMConfig(samples=4, iterations=1, elites=2), horizon=4, replan_every=3
    )
    out = tmp_path / "every3"
    every3 = run_suite("oracle32", suite="easy", episodes=1, planner=tiny, out=out, gifs=False)
    rec = every3.episodes[0]
    assert rec["plans"] == -(-rec["steps"] // 3)  # steps 0, 3, 6, ...
    assert json.loads((out / "settings.json").read_text())["planner"]["replan_every"] == 3
    suites = run_suite(
        "oracle32",
        suite="easy",
        episodes=1,
        planner=dataclasses.replace(tiny, replan_every=None),
        out=None,
    )
    assert suites.episodes[0]["plans"] == rec["steps"]
    with pytest.raises(ConfigError, match="replan_every must be at least 1"):
        dataclasses.replace(tiny, replan_every=0)


class _SeenSteps(OraclePredictor):
    """The oracle, remembering which imagined frames each plan asked it for."""

    def __init__(self, env: EnvSpec) -> None:
        super().__init__(env)
        self.seen: list[list[int]] = []

    def _predict(self, actions: np.ndarray, steps: list[int]) -> torch.Tensor:
        if not self.seen or self.seen[-1] != steps:
            self.seen.append(list(steps))
        return super()._predict(actions, steps)


@pytest.mark.parametrize("to_end", [False, True])
def test_a_plan_scores_the_episodes_last_step_when_asked(to_end) -> None:
    """``to_episode_end``: a horizon past the episode's budget scores its last step instead."""
    suite = load_suite("easy")
    env = PushEnv(image_size=32)
    task = sample_tasks(EnvSpec.of(env), suite.tasks, suite.seed, 1)[0]
    tiny = PlannerConfig(
        optimizer=CEMConfig(samples=8, iterations=1, elites=2),
        horizon=6,
        cost=ObjectCostConfig(frames="handover"),
        to_episode_end=to_end,
    )
    oracle = _SeenSteps(EnvSpec.of(env))
    policy = MPCPolicy(oracle, tiny, replan_every=2)
    run_episode(env, policy, task, 5, np.random.default_rng(0))
    # Plans at steps 0, 2 and 4, with 5, 3 and 1 steps of the episode left.
    assert oracle.seen == ([[1, 4], [1, 2], [0]] if to_end else [[1, 5]])
    assert planner_from_dict(planner_to_dict(tiny)) == tiny
    policy.close()
    env.close()


def test_run_suite_is_reproducible_and_worker_independent(tmp_path) -> None:
    kw = dict(suite="easy", episodes=3, seed=5, gifs=False)
    a = run_suite("random", out=tmp_path / "a", **kw)
    b = run_suite("random", out=tmp_path / "b", workers=2, **kw)
    strip = [{k: v for k, v in r.items() if "seconds" not in k} for r in a.episodes]
    assert strip == [{k: v for k, v in r.items() if "seconds" not in k} for r in b.episodes]
    assert [r["task_id"] for r in a.episodes] == [0, 1, 2]
    assert len({r["final_distance"] for r in a.episodes}) == 3
    zero = run_suite("zero", out=None, **kw)
    for r in zero.episodes:
        assert r["final_distance"] == pytest.approx(r["initial_distance"], abs=1e-4)
        assert not r["success"]


def test_asking_a_run_for_more_or_fewer_episodes_keeps_the_ones_done(tmp_path) -> None:
    out = tmp_path / "run"
    kw = dict(suite="easy", seed=5, gifs=False, out=out)
    run_suite("random", episodes=2, **kw)
    # Mark episode 1 as it was written: kept, not planned again, when more are asked for.
    lines = (out / "episodes.jsonl").read_text().splitlines()
    marked = {**json.loads(lines[1]), "final_distance": 0.123456}
    lines[1] = json.dumps(marked)
    (out / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    more = run_suite("random", episodes=3, **kw)
    assert [r["task_id"] for r in more.episodes] == [0, 1, 2]
    assert more.episodes[1]["final_distance"] == 0.123456
    fresh = run_suite("random", episodes=3, seed=5, gifs=False, out=None)
    strip = [{k: v for k, v in r.items() if "seconds" not in k} for r in fresh.episodes]
    assert {k: v for k, v in more.episodes[2].items() if "seconds" not in k} == strip[2]
    assert PlanSummary.load(out).episodes == 3
    # Fewer: the summary counts tasks 0 .. n-1 and episodes.jsonl keeps every record.
    fewer = run_suite("random", episodes=1, **kw)
    assert fewer.summary.episodes == 1 and PlanSummary.load(out).episodes == 1
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 3
    # A run whose settings recorded the episode count (before this) still resumes.
    meta = out / "settings.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "episodes": 2}))
    assert run_suite("random", episodes=3, **kw).episodes[1]["final_distance"] == 0.123456
    # Other settings are still refused.
    with pytest.raises(ConfigError, match="seed differ"):
        run_suite("random", suite="easy", seed=6, gifs=False, out=out, episodes=3)


def test_chosen_tasks_are_the_same_tasks_as_in_the_whole_suite(tmp_path) -> None:
    out = tmp_path / "run"
    kw = dict(suite="easy", seed=5, gifs=False)
    whole = run_suite("random", episodes=4, out=None, **kw)
    chosen = run_suite("random", tasks=[3, 1, 3], out=out, **kw)
    assert [r["task_id"] for r in chosen.episodes] == [1, 3]

    def strip(r: dict) -> dict:
        return {k: v for k, v in r.items() if "seconds" not in k}

    assert [strip(r) for r in chosen.episodes] == [strip(whole.episodes[i]) for i in (1, 3)]
    saved = PlanSummary.load(out)
    assert saved.tasks == (1, 3) and saved.episodes == 2
    assert saved.successes == sum(whole.episodes[i]["success"] for i in (1, 3))
    # The whole suite in the same folder plans only the tasks not yet run.
    rest = run_suite("random", episodes=4, out=out, **kw)
    assert [strip(r) for r in rest.episodes] == [strip(r) for r in whole.episodes]
    assert PlanSummary.load(out).tasks is None
    with pytest.raises(ConfigError, match="not both"):
        run_suite("random", episodes=2, tasks=[1], out=None, **kw)
    with pytest.raises(ConfigError, match="from 0"):
        run_suite("random", tasks=[-1], out=None, **kw)


def test_run_suite_drives_a_checkpoint(tmp_path, monkeypatch) -> None:
    from foresight.models import save_checkpoint

    model = build_model(load_model_config("copy_last"))
    ckpt = save_checkpoint(tmp_path / "copy_last.pt", model)
    tiny = PlannerConfig(optimizer=CEMConfig(samples=8, iterations=1, elites=2), horizon=3)
    out = tmp_path / "run"
    result = run_suite(ckpt, suite="easy", out=out, episodes=1, planner=tiny, device="cpu")
    (rec,) = result.episodes
    assert rec["steps"] == 30 and rec["model_seconds_per_step"] > 0
    assert result.summary.model == str(ckpt.resolve()) and result.summary.planner == "cem"
    assert (out / "gifs" / "task_0000.gif").is_file()
    # copy_last's config asks for no budget: the planner's, recorded as the preset's.
    assert result.summary.budget == EffectiveBudget(8, 1, 200, 1, ())
    # summary.json is that summary, typed and versioned.
    assert PlanSummary.load(out) == result.summary
    assert json.loads((out / "summary.json").read_text())["format"] == PLAN_SUMMARY_FORMAT
    # The same run named by a relative path resumes (nothing left to do) instead of refusing.
    monkeypatch.chdir(tmp_path)
    again = run_suite(ckpt.name, suite="easy", out=Path("run"), episodes=1, planner=tiny)
    assert again.episodes == result.episodes


def test_a_run_directory_plans_with_its_best_checkpoint(tmp_path) -> None:
    from foresight.models import save_checkpoint
    from foresight.planners.suite import check_model

    model = build_model(load_model_config("copy_last"))
    run = tmp_path / "run"
    latest = save_checkpoint(run / "checkpoint.pt", model)
    # No best.pt (e.g. a run stopped before its first validation): the latest.
    assert check_model(run)[0] == str(latest.resolve())
    best = save_checkpoint(run / "best.pt", model)
    path, config = check_model(run)
    assert path == str(best.resolve()) and config == model.config
    # A file named outright is taken as it is.
    assert check_model(latest)[0] == str(latest.resolve())


def test_model_budget_overrides_the_planner_preset() -> None:
    from foresight.models import PlanBudget
    from foresight.planners.config import apply_budget, load_planner

    cem, mppi = load_planner("cem"), load_planner("mppi")
    same, used = apply_budget(cem, PlanBudget())
    assert same == cem and used.source == "preset" and (used.samples, used.iterations) == (200, 3)
    planner, used = apply_budget(cem, PlanBudget(samples=40, iterations=1, num_samples=2))
    assert (planner.optimizer.samples, planner.optimizer.iterations) == (40, 1)
    assert planner.optimizer.elites == 2  # the preset's 10 of 200 is 5%: at least 2 stay
    assert planner.num_samples == 2 and planner.batch_size == cem.batch_size
    assert used.from_model == ("samples", "iterations", "num_samples")
    assert used.label() == "40 x 1 x 2 futures (model)"
    planner, used = apply_budget(mppi, PlanBudget(samples=16, batch_size=4))
    assert planner.optimizer.samples == 16 and planner.batch_size == 4
    assert used.iterations == mppi.optimizer.iterations
    assert used.from_model == ("samples", "batch_size")
    _, used = apply_budget(cem, None)  # the oracle: no model, the preset's budget
    assert used.from_model == ()
    with pytest.raises(ConfigError, match="plan budget does not fit"):
        apply_budget(cem, PlanBudget(samples=1))


def test_mask_moments_give_a_full_turn_orientation() -> None:
    """An L (no rotational symmetry) turned by quarter turns: the moments' angle turns with
    it, the half-turn ambiguity of the principal axis resolved by the third moment."""
    mask = torch.zeros(32, 32)
    mask[8:24, 10:14] = 1.0  # the long arm
    mask[20:24, 14:22] = 1.0  # the foot
    angles = [
        float(ObjectCost.orientations(torch.rot90(mask, k).reshape(1, -1), (32, 32))[0])
        for k in range(4)
    ]
    for a, b in zip(angles, angles[1:] + angles[:1], strict=True):
        turn = (b - a) % (2 * np.pi)
        # rot90 turns counter-clockwise on screen: the rows' direction (down, angle 0) goes to
        # the columns' (right, angle pi/2).
        assert abs(turn - 0.5 * np.pi) < 0.05, angles

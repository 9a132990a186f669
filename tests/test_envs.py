"""The pushing environment: gymnasium contract, determinism, physics, tasks."""

from __future__ import annotations

import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import foresight.envs  # noqa: F401  (registers foresight/Push-v0)
from foresight.config import to_dict
from foresight.envs import (
    ENV_ID,
    EnvSpec,
    PushConfig,
    PushEnv,
    TaskDistribution,
    load_suite,
    sample_tasks,
)


def scripted_push(env: PushEnv, target: int, goal: np.ndarray, steps: int) -> dict:
    """Get behind the target (as seen from the goal), then push it along the line to the goal."""
    info = env._info()
    cfg = env.config
    behind = cfg.objects[target].size * math.sqrt(2) + cfg.pusher_radius + 0.01
    for _ in range(steps):
        obj = info["object_pos"][target, :2]
        to_goal = goal - obj
        dist = np.linalg.norm(to_goal)
        if dist < 0.01:
            break
        d = to_goal / dist
        rel = info["pusher_pos"] - obj
        along = rel @ d
        lateral = rel - along * d
        lat = np.linalg.norm(lateral)
        if along < -0.6 * behind and lat < 0.012:
            delta = d * min(cfg.max_step, dist) - 0.5 * lateral  # push, steering onto the line
        elif along < -0.6 * behind:
            delta = obj - behind * d - info["pusher_pos"]  # slide sideways behind the object
        else:
            side = lateral / lat if lat > 1e-6 else np.array([-d[1], d[0]])
            delta = obj + (behind + 0.02) * side - behind * d - info["pusher_pos"]  # go around
        _, _, _, _, info = env.step(np.clip(delta / cfg.max_step, -1, 1))
    return info


@pytest.fixture
def env():
    e = PushEnv(image_size=32)
    yield e
    e.close()


def test_check_env():
    env = gym.make(ENV_ID, image_size=32).unwrapped
    check_env(env, skip_render_check=True)
    env.close()


def test_registered_env_steps_and_truncates():
    env = gym.make(ENV_ID, image_size=32)
    obs, info = env.reset(seed=0)
    env.action_space.seed(0)
    assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (2,) and obs["state"].dtype == np.float32
    steps = 0
    truncated = False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        steps += 1
    assert steps == 30
    env.close()


@pytest.mark.parametrize("corner", [(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)])
def test_observations_stay_in_the_space_when_the_pusher_is_driven_into_a_corner(corner):
    """The servo overshoots the workspace's edge a little; the declared space holds it."""
    env = PushEnv(image_size=16)
    obs, _ = env.reset(seed=0)
    ws = env.sim.config.workspace
    for _ in range(20):
        obs, *_ = env.step(np.array(corner, np.float32))
        assert env.observation_space.contains(obs), obs["state"]
    assert np.all(np.abs(obs["state"]) > ws - 0.01)  # it did reach the corner
    env.close()


@pytest.mark.parametrize("size", [16, 48, 64])
def test_image_size_argument(size):
    env = PushEnv(image_size=size)
    obs, _ = env.reset(seed=1)
    assert obs["image"].shape == (size, size, 3)
    env.close()


def test_same_seed_identical_frames():
    frames = []
    for _ in range(2):
        env = PushEnv(image_size=32)
        obs, _ = env.reset(seed=123)
        env.action_space.seed(5)
        seq = [obs["image"]]
        for _ in range(10):
            obs, *_ = env.step(env.action_space.sample())
            seq.append(obs["image"])
        frames.append(np.stack(seq))
        env.close()
    np.testing.assert_array_equal(frames[0], frames[1])
    other = PushEnv(image_size=32)
    obs, _ = other.reset(seed=124)
    assert not np.array_equal(obs["image"], frames[0][0])
    other.close()


def test_state_save_restore_roundtrip(env):
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(8, 2))
    for a in actions[:3]:
        env.step(a)
    saved = env.get_state()
    first = [env.step(a)[0]["image"] for a in actions[3:]]
    end_state = env.get_state()
    env.set_state(saved)
    second = [env.step(a)[0]["image"] for a in actions[3:]]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    np.testing.assert_array_equal(end_state, env.get_state())


def test_pickle_continues_identically(env):
    env.reset(seed=4)
    env.step(np.array([0.5, -0.2]))
    clone = pickle.loads(pickle.dumps(env))
    for a in ([1.0, 0.0], [0.0, 1.0], [-0.3, 0.4]):
        o1, r1, *_ = env.step(np.array(a))
        o2, r2, *_ = clone.step(np.array(a))
        np.testing.assert_array_equal(o1["image"], o2["image"])
        np.testing.assert_array_equal(o1["state"], o2["state"])
    np.testing.assert_array_equal(env.np_random.random(3), clone.np_random.random(3))
    clone.close()


def test_one_action_moves_pusher_the_advertised_distance(env):
    env.reset(seed=0)
    cfg = env.config
    # Start the pusher in open space, away from objects and walls.
    xy = np.array(env.sim.object_pos[:, :2])
    env.sim.set_layout(np.array([0.0, -0.2]), xy + 10, np.zeros(3), np.zeros(3, bool))
    before = env.sim.pusher_xy
    env.step(np.array([1.0, 0.0]))
    moved = env.sim.pusher_xy - before
    assert abs(moved[0] - cfg.max_step) < 0.002, moved
    assert abs(moved[1]) < 0.001
    before = env.sim.pusher_xy
    env.step(np.array([-0.5, 0.5]))
    np.testing.assert_allclose(env.sim.pusher_xy - before, [-0.015, 0.015], atol=0.002)


def test_pusher_stays_in_workspace(env):
    env.reset(seed=0)
    for _ in range(30):
        obs, *_ = env.step(np.array([1.0, 1.0]))
    assert np.all(obs["state"] <= env.config.workspace + 0.003)


def test_pushing_moves_an_object_through_contact(env):
    env.reset(seed=0)
    active = np.array([True, False, False])
    xy = np.zeros((3, 2))
    env.sim.set_layout(np.array([-0.12, 0.0]), xy, np.zeros(3), active)
    env.active = active
    start = env.sim.object_pos[0].copy()
    for _ in range(8):
        _, _, _, _, info = env.step(np.array([1.0, 0.0]))
    moved = info["object_pos"][0] - start
    assert moved[0] > 0.1, moved  # pushed along x by roughly the pusher's overshoot
    assert abs(moved[1]) < 0.03
    assert abs(info["object_pos"][0, 2] - start[2]) < 0.005  # still on the table


def test_pusher_does_not_move_distant_objects(env):
    env.reset(seed=5)
    start = env.sim.object_pos.copy()
    env.sim.set_layout(np.array([0.24, 0.24]), start[:, :2], np.zeros(3), env.active)
    env.step(np.array([0.0, 0.0]))
    np.testing.assert_allclose(env.sim.object_pos[:, :2], start[:, :2], atol=1e-4)


def test_task_sampler_is_seeded_and_respects_distribution():
    cfg = PushConfig(image_size=32)
    env = EnvSpec(ENV_ID, to_dict(cfg))
    dist = TaskDistribution(num_objects=(2, 3), goal_distance=(0.15, 0.3))
    tasks = sample_tasks(env, dist, seed=7, num=10)
    again = sample_tasks(env, dist, seed=7, num=3, start=7)
    assert tasks[7:] == again
    assert sample_tasks(env, dist, seed=8, num=1)[0] != tasks[0]
    for t in tasks:
        active = np.array(t.layout.active)
        assert 2 <= active.sum() <= 3 and active[t.target]
        start = np.array(t.layout.object_xy[t.target])
        d = np.linalg.norm(np.array(t.goal_xy) - start)
        assert 0.15 - 1e-9 <= d <= 0.3 + 1e-9
        assert np.all(np.abs(t.goal_xy) <= cfg.spawn_extent)
        assert np.linalg.norm(np.array(t.layout.pusher_xy) - start) >= dist.pusher_distance_min


def test_suites_load():
    easy, hard = load_suite("easy"), load_suite("hard")
    assert easy.tasks.num_objects == (1, 1) and hard.tasks.num_objects[0] >= 2


def test_goal_image_shows_target_at_goal_and_hides_pusher():
    env = PushEnv(image_size=64)
    task = sample_tasks(EnvSpec.of(env), load_suite("easy").tasks, seed=0, num=1)[0]
    obs, info = env.reset(options={"task": task})
    before = env.get_state()
    goal = env.goal_image()
    np.testing.assert_array_equal(before, env.get_state())  # live state untouched
    red = env.config.objects[task.target].rgba
    colour = np.array(red[:3]) * 255
    mask = np.abs(goal.astype(float) - colour).sum(-1) < 120
    rows, cols = np.nonzero(mask)
    centroid = np.array([rows.mean(), cols.mean()])
    expected = env.sim.world_to_pixel(np.array(task.goal_xy))
    assert np.linalg.norm(centroid - expected) < 2.0
    pusher_colour = np.array([0.95, 0.8, 0.1]) * 255
    assert not (np.abs(goal.astype(float) - pusher_colour).sum(-1) < 60).any()
    assert (np.abs(obs["image"].astype(float) - pusher_colour).sum(-1) < 60).any()
    env.close()


def test_scripted_policy_completes_easy_tasks():
    env = PushEnv(image_size=32)
    tasks = sample_tasks(EnvSpec.of(env), load_suite("easy").tasks, seed=0, num=3)
    for task in tasks:
        _, info = env.reset(options={"task": task})
        assert not info["success"]
        info = scripted_push(env, task.target, np.array(task.goal_xy), steps=60)
        assert info["success"], (task.task_id, info["target_distance"])
    env.close()


def test_rendering_then_training_in_one_process_does_not_crash():
    """triton's LLVM loaded after Mesa's renderer segfaults; foresight.envs loads it first."""
    import subprocess
    import sys

    code = (
        "import foresight.envs\n"
        "env = foresight.envs.PushEnv(image_size=16); env.reset(seed=0)\n"
        "import torch\n"
        "m = torch.nn.Linear(2, 2); opt = torch.optim.Adam(m.parameters())\n"
        "m(torch.randn(1, 2)).sum().backward(); opt.step(); print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-500:]


_IMPORT_PROBE = """
import json, os, sys
import foresight.envs
heavy = ["torch", "triton", "mujoco", "OpenGL", "foresight.envs.push.sim"]
out = {"loaded": [m for m in heavy if m in sys.modules], "backend": os.environ.get("MUJOCO_GL")}
if "make" in sys.argv:
    import gymnasium as gym
    env = gym.make("foresight/Push-v0", image_size=16)
    out["shape"] = list(env.reset(seed=0)[0]["image"].shape)
    order = list(sys.modules)  # in import order
    out["triton_first"] = "triton" not in order or order.index("triton") < order.index("mujoco")
print(json.dumps(out))
"""


def test_import_registers_only_and_gym_make_loads_the_rest():
    """``import foresight.envs`` picks MUJOCO_GL and registers; MuJoCo and triton wait."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}

    def probe(*args: str, **extra: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, **extra},
        )
        assert result.returncode == 0, result.stderr[-500:]
        return json.loads(result.stdout)

    made = probe("make")
    assert made["loaded"] == [] and made["backend"] in ("egl", "osmesa")
    # triton before mujoco: see test_rendering_then_training_in_one_process_does_not_crash.
    assert made["shape"] == [16, 16, 3] and made["triton_first"]
    # A backend the user chose is kept (not rendered with: it may not be installed here).
    assert probe(MUJOCO_GL="osmesa") == {"loaded": [], "backend": "osmesa"}

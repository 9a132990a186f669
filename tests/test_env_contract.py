"""The env contract (foresight.envs.base) over every registered foresight env, and the env layer
the pipeline goes through: specs, presets, suites, dataset env_args, checkpoints."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from foresight.cli import main
from foresight.data.hdf5 import DemoFile
from foresight.envs import DEFAULT_ENV, EnvSpec, ForesightEnv, env_class, load_env, load_suite
from foresight.envs.spec import foresight_env_ids
from foresight.envs.suite import sample_tasks
from foresight.errors import ConfigError


def _push_solved(task: Any) -> Any:
    xy = list(task.layout.object_xy)
    xy[task.target] = task.goal_xy
    return dataclasses.replace(task, layout=dataclasses.replace(task.layout, object_xy=tuple(xy)))


def _pusht_solved(task: Any) -> Any:
    start = list(task.start)
    start[0:2], start[4:7] = task.goal_agent, task.goal_block
    return dataclasses.replace(task, start=tuple(start))


#: For each env: its suite preset, and a task whose start already meets its success test. A new
#: env adds its row here, or the contract tests below fail for it.
ENVS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "foresight/Push-v0": ("easy", _push_solved),
    "foresight/PushT-v0": ("pusht", _pusht_solved),
}


@pytest.fixture(params=foresight_env_ids())
def env_id(request: pytest.FixtureRequest) -> str:
    if request.param not in ENVS:
        pytest.fail(f"{request.param} has no row in ENVS: add its suite and solved task")
    return request.param


def _spec(env_id: str, size: int = 32) -> EnvSpec:
    return load_env(env_id, {"image_size": size})


def _task(env_id: str, index: int = 0) -> Any:
    suite = load_suite(ENVS[env_id][0])
    spec = _spec(env_id)
    assert spec.name == env_id
    return sample_tasks(spec, suite.tasks, suite.seed, index + 1)[index]


def test_registered_envs_implement_the_contract(env_id: str) -> None:
    cls = env_class(env_id)
    assert issubclass(cls, ForesightEnv)
    spec = _spec(env_id)
    env = spec.make()
    obs, info = env.reset(seed=0)
    assert set(obs) == {"image", "state"}
    assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].dtype == np.float32 and obs["state"].ndim == 1
    assert env.observation_space.contains(obs)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    assert info["object_pos"].ndim == 2 and info["object_pos"].shape[1] == 3
    assert info["active"].dtype == bool and len(info["active"]) == len(info["object_pos"])
    assert EnvSpec.of(env) == spec
    env.close()


def test_reset_is_seeded_and_state_round_trips_exactly(env_id: str) -> None:
    env = _spec(env_id).make()
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first["image"], again["image"])
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (8, *env.action_space.shape)).astype(np.float32)
    for a in actions[:4]:
        env.step(a)
    saved = env.get_state()
    assert saved.dtype == np.float64 and saved.ndim == 1
    frames = [env.step(a)[0]["image"] for a in actions[4:]]
    env.set_state(saved)
    np.testing.assert_array_equal(env.get_state(), saved)
    # The oracle's path (simulate + render_image) sees exactly what stepping shows.
    for a, frame in zip(actions[4:], frames, strict=True):
        env.simulate(a)
        np.testing.assert_array_equal(env.render_image(), frame)
    env.close()


def test_tasks_judge_success_in_simulator_coordinates(env_id: str) -> None:
    env = _spec(env_id).make()
    task = _task(env_id)
    _, info = env.reset(options={"task": task})
    assert not info["success"]
    assert info["target_distance"] > 0
    _, info = env.reset(options={"task": ENVS[env_id][1](task)})
    assert info["success"] and info["target_distance"] < 1e-6
    goal = env.goal(task)
    assert goal.image.shape == (32, 32, 3) and goal.image.dtype == np.uint8
    assert goal.target_label != goal.robot_label
    kind = type(env).task_kind(env.config, task)
    assert kind is None or (isinstance(kind, str) and kind)
    env.close()


def test_exploration_policy_is_seeded_and_bounded(env_id: str) -> None:
    env = _spec(env_id).make()
    config = env.policy_config_class()

    def actions(seed: int) -> np.ndarray:
        obs, info = env.reset(seed=1)
        policy = env.exploration_policy(np.random.default_rng(seed), config)
        out = []
        for _ in range(12):
            a = policy(obs, info)
            out.append(a)
            obs, _, _, _, info = env.step(a)
        return np.stack(out)

    a = actions(0)
    assert a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(a, actions(0))
    assert not np.array_equal(a, actions(1))
    env.close()


# ------------------------------------------------------------------------------ env layer
def test_spec_resolves_preset_id_and_file_alike(tmp_path: Path) -> None:
    assert load_env("push") == load_env(DEFAULT_ENV)
    path = tmp_path / "env.yaml"
    path.write_text("base: push\nenv_name: foresight/Push-v0\nfriction: 0.6\n")
    spec = load_env(path, dotted=["max_step=0.02"])
    assert spec.name == DEFAULT_ENV
    assert spec.config["friction"] == 0.6 and spec.config["max_step"] == 0.02
    assert EnvSpec.from_env_args(spec.env_args(), "test") == spec


@pytest.mark.parametrize(
    "text, match",
    [
        ("env_name: nobody/Nothing-v0\n", "unknown env 'nobody/Nothing-v0'"),
        ("env_name: CartPole-v1\n", "not a foresight env"),
        ("env_name: 3\n", "must be a registered env id"),
    ],
)
def test_bad_env_names_are_one_line_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_env(path)


def test_a_suite_names_its_env_and_its_tasks_are_checked_by_it(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nenv: nobody/Nothing-v0\ntasks: {}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: 'env': .*unknown env"):
        load_suite(suite)
    suite.write_text("name: s\nenv: foresight/Push-v0\ntasks: {num_objects: [1, 1]}\n")
    assert load_suite(suite).env_spec() == load_env("push")


def test_datasets_rebuild_their_env_from_env_args(tiny_h5: Path) -> None:
    with DemoFile(tiny_h5) as f:
        spec = EnvSpec.from_env_args(f.env_args, str(tiny_h5))
        frame = f.frames("demo_0", 0)
        raw = f.read("demo_0", "states", 0)
    assert spec == load_env("push", {"image_size": 32})
    env = spec.make()
    env.reset(seed=0)
    env.set_state(raw)
    np.testing.assert_array_equal(env.render_image(), frame)
    env.close()


def test_collect_by_env_id_writes_the_same_dataset_as_by_preset(tmp_path: Path) -> None:
    def collect(out: Path, *env: str) -> dict[str, Any]:
        argv = ["collect", "--out", str(out), "--episodes", "2", "--steps", "3"]
        assert main([*argv, "--image-size", "16", *env]) == 0
        with DemoFile(out) as f:
            return {"fp": f.fingerprint(), "actions": f.read("demo_1", "actions")}

    by_id = collect(tmp_path / "a.h5", "--env", "foresight/Push-v0")
    by_preset = collect(tmp_path / "b.h5", "--env", "push")
    by_old_flag = collect(tmp_path / "c.h5", "--config", "push")
    assert by_id["fp"] == by_preset["fp"] == by_old_flag["fp"]
    np.testing.assert_array_equal(by_id["actions"], by_preset["actions"])


def test_push_dataset_attributes_are_unchanged_by_the_env_layer(tiny_h5: Path) -> None:
    """env_args and collect_config of a Push-v0 dataset are what they were before envs had
    names, so existing datasets count as complete and checkpoints keep their fingerprint."""
    with DemoFile(tiny_h5) as f:
        assert set(f.env_args) == {"env_name", "type", "env_kwargs"}
        assert f.env_args["env_name"] == DEFAULT_ENV
        assert set(f.collect_config) == {
            "seed",
            "steps",
            "env",
            "policy",
            "episodes",
            "valid_fraction",
        }
        assert f.fingerprint()["attrs"] == PUSH_ATTRS_DIGEST


#: ``DemoFile.fingerprint()["attrs"]`` of the ``tiny_h5`` fixture, as collected before the env
#: layer existed (main at fceaef4).
PUSH_ATTRS_DIGEST = "988ea98e3852e0cd"


def test_planning_refuses_a_model_trained_in_another_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from foresight.models import build_model, load_model_config
    from foresight.models.checkpoint import save_checkpoint

    model = build_model(load_model_config("copy_last"))
    other = {"env_name": "elsewhere/Other-v0", "type": "foresight", "env_kwargs": {"config": {}}}
    ckpt = save_checkpoint(tmp_path / "m.pt", model, env_args=other)
    out = tmp_path / "run"
    code = main(["plan", "--model", str(ckpt), "--episodes", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "trained on data from elsewhere/Other-v0" in err and "Traceback" not in err
    assert not out.exists()
    # The same model recorded in Push-v0 (or not recorded, as before envs had names) plans.
    for env_args in (load_env("push").env_args(), None):
        extra = {} if env_args is None else {"env_args": env_args}
        save_checkpoint(ckpt, model, **extra)
        argv = ["plan", "--model", str(ckpt), "--episodes", "1", "--no-gifs", "--overwrite"]
        assert main([*argv, "--out", str(out)]) == 0


def test_a_plan_run_from_before_env_names_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["plan", "--model", "zero", "--episodes", "1", "--no-gifs", "--out", str(out)]
    assert main(argv) == 0
    meta = out / "settings.json"
    settings = json.loads(meta.read_text())
    assert settings.pop("env_name") == DEFAULT_ENV
    meta.write_text(json.dumps(settings))
    assert main(argv) == 0


def test_gym_make_builds_every_foresight_env() -> None:
    for env_id in foresight_env_ids():
        env = gym.make(env_id, image_size=16)
        obs, _ = env.reset(seed=0)
        assert obs["image"].shape == (16, 16, 3)
        env.close()

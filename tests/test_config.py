"""Typed YAML configs: unknown keys and wrong types are errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from foresight.config import configs_dir, load_config, repo_root, resolve_config, to_dict
from foresight.envs import PushConfig, load_env, load_suite
from foresight.errors import ConfigError


def test_presets_round_trip():
    cfg = load_config(PushConfig, resolve_config("push", "env"))
    assert cfg == PushConfig()
    assert load_env("push").typed() == PushConfig()
    assert load_env("foresight/Push-v0") == load_env("push")
    again = load_suite("easy")
    assert to_dict(again)["tasks"]["num_objects"] == [1, 1]


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("image_size: 32\nimage_szie: 64\n")
    with pytest.raises(ConfigError, match=r"unknown key 'image_szie' in .*env\.yaml"):
        load_config(PushConfig, path)


def test_nested_unknown_key(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("name: x\ntasks:\n  num_objects: [1, 1]\n  goal_distanse: [0.1, 0.2]\n")
    with pytest.raises(ConfigError, match=r"unknown key 'goal_distanse' in .*suite\.yaml: 'tasks'"):
        load_suite(path)


@pytest.mark.parametrize(
    "text, match",
    [
        ("image_size: big\n", "expected an integer"),
        ("num_objects: [1]\n", "expected 2 values"),
        ("- 1\n", "mapping"),
        ("image_size: [\n", "not valid YAML"),
        ("num_objects: [3, 1]\n", "num_objects"),
    ],
)
def test_bad_values(tmp_path, text, match):
    path = tmp_path / "env.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(PushConfig, path)


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("timestep: 5e-3\n")
    assert load_config(PushConfig, path).timestep == 0.005


def test_missing_preset_lists_presets():
    with pytest.raises(ConfigError, match="presets: .*easy"):
        resolve_config("medium", "suite")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config("nowhere.yaml", "suite")


def test_presets_are_the_package_foresight_configs(tmp_path, monkeypatch):
    # Found through the package (shipped as package data), not the working directory.
    import foresight.configs

    monkeypatch.chdir(tmp_path)
    assert configs_dir() == Path(foresight.configs.__file__).resolve().parent
    assert repo_root() / "configs" == configs_dir()
    for kind in ("env", "model", "planner", "quickstart", "suite"):
        assert sorted((configs_dir() / kind).glob("*.yaml")), kind
    assert resolve_config("easy", "suite") == configs_dir() / "suite" / "easy.yaml"


# --------------------------------------------------------------------------- inheritance
def test_a_preset_inherits_from_a_named_base_and_merges_nested_blocks(tmp_path):
    from foresight.models import load_model_config

    mine = tmp_path / "mine.yaml"
    mine.write_text("base: vrnn_fast\ng_dim: 16\ntrain: {lr: 3.0e-4}\n")
    got = to_dict(load_model_config(mine))
    fast = to_dict(load_model_config("vrnn_fast"))
    assert got["g_dim"] == 16 and got["train"]["lr"] == 3.0e-4
    # vrnn_fast's own values (over vrnn's) and the untouched nested keys are inherited.
    assert got["channels"] == fast["channels"] == 4
    assert got["train"]["max_steps"] == fast["train"]["max_steps"] == 5000
    assert {k: v for k, v in got.items() if k not in ("g_dim", "train")} == {
        k: v for k, v in fast.items() if k not in ("g_dim", "train")
    }


def test_a_base_can_be_a_yaml_file_next_to_the_preset(tmp_path):
    (tmp_path / "parent.yaml").write_text("image_size: 32\nfriction: 0.7\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\nfriction: 0.9\n")
    cfg = load_config(PushConfig, tmp_path / "child.yaml")
    assert (cfg.image_size, cfg.friction) == (32, 0.9)


def test_a_block_of_another_class_replaces_the_base_block(tmp_path):
    from foresight.planners.config import load_planner

    path = tmp_path / "p.yaml"
    path.write_text("base: fast\ncost: {name: pixel}\n")
    planner = load_planner(path)
    assert planner.cost.name == "pixel"  # fast's object-cost keys (pusher: ...) are not merged
    assert planner.optimizer.samples == 64


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("base: self.yaml\n", "inherits from itself"),
        ("base: 3\n", "must name a preset or a YAML file"),
        ("base: nope\n", "no env preset named 'nope'"),
    ],
)
def test_bad_bases_are_one_line_errors(tmp_path, text, match):
    path = tmp_path / "self.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(PushConfig, path, kind="env")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- overrides
def test_dotted_overrides_parse_as_yaml_values():
    from foresight.config import parse_overrides

    got = parse_overrides(["train.lr=3e-4", "level_sides=[1, 4]", "dense=false", "x.y.z=null"])
    assert got == {
        "train": {"lr": 3e-4},
        "level_sides": [1, 4],
        "dense": False,
        "x": {"y": {"z": None}},
    }
    with pytest.raises(ConfigError, match="must be KEY=VALUE"):
        parse_overrides(["train.lr"])
    with pytest.raises(ConfigError, match="inside a value set earlier"):
        parse_overrides(["a=1", "a.b=2"])


def test_overrides_are_checked_like_yaml_keys():
    from foresight.models import load_model_config

    cfg = load_model_config("vrnn_fast", ["train.lr=3e-4", "channels=8"])
    assert (cfg.train.lr, cfg.channels, cfg.g_dim) == (3e-4, 8, 32)
    with pytest.raises(ConfigError, match=r"unknown key 'lrr' .*\(with overrides\)"):
        load_model_config("vrnn_fast", ["train.lrr=1"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_model_config("vrnn_fast", ["channels=wide"])

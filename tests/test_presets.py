"""Every shipped preset resolves to the config it had before presets could inherit.

``tests/data/resolved_presets.json`` holds each preset's resolved values as they were when every
preset was a complete file; a preset shrunk to ``base:`` plus its differences must resolve to
exactly those values. Presets added since, and fields added since with defaults that keep behaviour
(the object cost's ``shape_weight``, ``robot_goal_weight`` and ``orientation_weight``, 0, and its
``mask``, ``color``; the VRNN's ``context_skip``, false, and its ``output`` (``pixels``, with SVG's
``cdna_kernels``, 4, and ``cdna_kernel_size``, 5); ``train.data_memory_gb``, 4;
``train.deterministic`` and ``train.channels_last``, false, which ``vrnn_fast`` sets; the VPN's
``checkpoint_blocks``, false, which the VPN paper presets set; ``train.log``, ``[jsonl]``; SVG's
``latent_side``, 1; ``evaluate``'s ``planner_overrides``, none; every cost's ``action_weight``, 0,
and CEM's ``include_zero``, false; the object cost's ``robot_goal_within``, 0, and the planner's
``to_episode_end``, false; every model's ``frame_skip``, 1; the planner's ``replan_every``, none;
``train.decay_steps``, 0, which ``vrnn_fast_pusht`` sets to 4,500 (docs/pusht.md), and
``train.final_lr_ratio``, 0.1; ``evaluate``'s ``ranking_states``, 20, which the tiny quickstart
sets to 2),
were added to the snapshot as they resolved when added. ``hvrnn`` and ``vpn_baseline`` became
presets of ``vrnn`` and ``vpn``: their ``model`` key is the one value that changed. The ``pusht``
planner was re-tuned on purpose (horizon 20, handover frames; then horizon 30 held for 3, the agent
term waiting for the block, the episode's end; docs/pusht.md) and its entry replaced; so was
``pusht_skip``'s (40 samples, replanning every 3 steps, one model step of ``vrnn_fast_pusht``;
then the agent read from its kinematics and the block's mask unmixed from the table).
Fields marked ``OMIT_IF_NONE`` (scene distributions) do not appear while unset, so presets
without them resolve as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from foresight.config import configs_dir, load_config, to_dict
from foresight.envs import load_env, load_suite
from foresight.models import load_model_config
from foresight.planners.config import load_planner, planner_to_dict
from foresight.quickstart import QuickstartConfig

SNAPSHOT = Path(__file__).parent / "data" / "resolved_presets.json"

#: How each configs/ sub-folder's presets resolve to plain values.
RESOLVERS = {
    "env": lambda p: load_env(p).config,
    "suite": lambda p: to_dict(load_suite(p)),
    "model": lambda p: to_dict(load_model_config(p)),
    "planner": lambda p: planner_to_dict(load_planner(p)),
    # configs/quickstart/ holds quickstart presets and the model configs they name.
    "quickstart": lambda p: (
        to_dict(load_model_config(p))
        if "model" in yaml.safe_load(p.read_text())
        else to_dict(load_config(QuickstartConfig, p))
    ),
}


def resolved_presets() -> dict[str, dict[str, Any]]:
    """``{"kind/name": resolved values}`` of every shipped preset."""
    out = {}
    for kind, resolve in RESOLVERS.items():
        for path in sorted((configs_dir() / kind).glob("*.yaml")):
            out[f"{kind}/{path.stem}"] = json.loads(json.dumps(resolve(path)))
    return out


@pytest.mark.parametrize("name", sorted(json.loads(SNAPSHOT.read_text())))
def test_preset_resolves_as_before(name: str) -> None:
    kind, stem = name.split("/")
    path = configs_dir() / kind / f"{stem}.yaml"
    assert path.is_file(), f"preset {name} was removed"
    expected = json.loads(SNAPSHOT.read_text())[name]
    assert json.loads(json.dumps(RESOLVERS[kind](path))) == expected


def test_every_preset_is_in_the_snapshot() -> None:
    assert sorted(resolved_presets()) == sorted(json.loads(SNAPSHOT.read_text()))


def test_the_compare_quickstart_trains_two_families_on_the_defaults_data() -> None:
    """Seed 000's question needs models of different families on the same data and tasks."""
    from foresight.config import resolve_config
    from foresight.models import model_class

    compare = load_config(QuickstartConfig, resolve_config("compare", "quickstart"))
    default = load_config(QuickstartConfig, resolve_config("default", "quickstart"))
    classes = {model_class(load_model_config(m).model) for m in compare.models}
    assert len(compare.models) >= 2 and len(classes) == len(compare.models)
    assert "vrnn_fast" in compare.models
    same = ("episodes", "steps", "image_size", "baselines", "evaluate")
    assert all(getattr(compare, k) == getattr(default, k) for k in same)

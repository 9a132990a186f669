"""The one registry every named component goes through (models, costs, optimizers, policies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from foresight.errors import ConfigError
from foresight.models import MODELS, untrained_models
from foresight.models.backbones import BACKBONES
from foresight.models.gan import TORCH_OPTIMIZERS
from foresight.models.vpn_sampling import SAMPLERS
from foresight.planners import COSTS, NAMED_POLICIES, OPTIMIZERS
from foresight.planners.costs import cost_from_dict
from foresight.planners.optimizers import optimizer_from_dict
from foresight.registry import Registry

EVERY_REGISTRY = [MODELS, COSTS, OPTIMIZERS, NAMED_POLICIES, SAMPLERS, TORCH_OPTIMIZERS, BACKBONES]


def test_a_registry_is_a_read_only_mapping_in_registration_order() -> None:
    shapes = Registry[type]("shape")

    @shapes.register("box")
    class Box:
        pass

    shapes.add("ball", int)
    assert list(shapes) == ["box", "ball"] and shapes["box"] is Box and len(shapes) == 2
    assert "box" in shapes and "cone" not in shapes and shapes.get("cone") is None
    with pytest.raises(ValueError, match="shape name 'box' registered twice"):
        shapes.add("box", float)
    with pytest.raises(TypeError):
        shapes["cone"] = float  # type: ignore[index]
    shapes.remove("ball")
    assert list(shapes) == ["box"]


def test_an_unknown_name_is_one_line_naming_every_choice() -> None:
    with pytest.raises(ConfigError) as err:
        COSTS.lookup("warp", "planner.yaml")
    message = str(err.value)
    assert message == "planner.yaml: unknown cost 'warp' (choose one of: pixel, lpips, object)"
    assert "\n" not in message


@pytest.mark.parametrize("registry", EVERY_REGISTRY, ids=lambda r: r.kind)
def test_every_registry_names_its_kind_and_has_members(registry: Registry) -> None:
    assert registry.kind and len(registry) >= 2
    for name in registry:
        assert registry.lookup(name) is registry[name]


@pytest.mark.parametrize(
    ("registry", "from_dict"),
    [(COSTS, cost_from_dict), (OPTIMIZERS, optimizer_from_dict)],
    ids=["cost", "optimizer"],
)
def test_a_planner_config_naming_a_component_gets_its_config_class(
    registry: Registry, from_dict: Callable[[dict[str, Any], str], Any]
) -> None:
    for name, cls in registry.items():
        config = from_dict({"name": name}, "planner.yaml")
        assert type(config) is cls.config_class and config.name == name


def test_models_carry_their_registered_name_and_untrained_ones_follow_trainable() -> None:
    for name, cls in MODELS.items():
        assert cls.name == name
    assert untrained_models() == [n for n, c in MODELS.items() if not c.trainable]
    assert "copy_last" in untrained_models() and "vrnn" not in untrained_models()


def test_named_policies_say_what_they_are_and_whether_they_plan() -> None:
    assert {n for n, p in NAMED_POLICIES.items() if not p.plans} == {"random", "zero"}
    assert all(p.about for p in NAMED_POLICIES.values())
    assert not set(NAMED_POLICIES) & set(MODELS), "a policy name would shadow a model preset"


def test_the_model_side_never_imports_the_trainer() -> None:
    """Models depend on ``StepOptimizer`` (a protocol), not on ``foresight.training``."""
    import subprocess
    import sys

    code = (
        "import sys, foresight.models; "
        "print(sorted(m for m in sys.modules if m.startswith('foresight.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from foresight.models.base import StepOptimizer
    from foresight.training.optim import Optimization

    protocol = {"step", "autocast", "backward_step"}
    assert protocol <= set(StepOptimizer.__annotations__) | set(dir(StepOptimizer))
    assert {"autocast", "backward_step"} <= set(dir(Optimization))

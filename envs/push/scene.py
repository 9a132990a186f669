"""The objects of a ``foresight/Push-v0`` scene: their shapes, and distributions to draw them from.

A scene is a tuple of :class:`ObjectSpec`. The default scene is fixed (three 3 cm objects,
``configs/env/push.yaml``); a :class:`SceneDistribution` instead draws every episode's objects
(shape, size, colour, mass, friction) from the env's ``np_random``, so a model trained on the
data sees many objects, and a suite can set its tasks among objects no training scene used
(Finn & Levine 2017 and Ebert et al. 2018 judge visual foresight on exactly that).

Shapes (``size`` is always the half-length of the longest side, so it bounds the object):

==========  ====================================================================
``box``     a square prism, ``size`` x ``size`` half-extents
``cylinder``  radius ``size``
``bar``     an elongated box, ``size`` x ``size / 2``
``ell``     an L of two arms ``2 size`` long and ``2 size / 3`` thick (non-convex)
``tee``     a T of the same two arms (non-convex, the Push-T block's shape)
==========  ====================================================================
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from foresight.config import OMIT_IF_NONE
from foresight.errors import ConfigError

Shape = Literal["box", "cylinder", "bar", "ell", "tee"]

#: Colours of what is in every scene besides the objects (table, pusher, walls), RGB in [0, 1].
FIXTURE_COLORS = ((0.62, 0.62, 0.6), (0.95, 0.8, 0.1), (0.3, 0.3, 0.32))
#: The headlight: tops are lit by ambient + diffuse, sides by the ambient part only.
HEADLIGHT_AMBIENT = 0.6
HEADLIGHT_DIFFUSE = 0.35


@dataclass(frozen=True)
class ObjectSpec:
    """One pushable object.

    Attributes:
        name: Unique name (also the MuJoCo body name).
        shape: ``box``, ``cylinder``, ``bar``, ``ell`` or ``tee`` (see the module docstring).
        size: Half-length of the object's longest side, or the cylinder's radius (m).
        height: Half-height (m).
        rgba: Colour; keep colours distinct and saturated, costs find objects by colour.
        mass: Mass (kg).
        friction: Sliding friction of the object (None: the scene's ``friction``).
    """

    name: str
    shape: Shape = "box"
    size: float = 0.03
    height: float = 0.03
    rgba: tuple[float, float, float, float] = (0.85, 0.1, 0.1, 1.0)
    mass: float = 0.15
    friction: float | None = field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        if not (self.size > 0 and self.height > 0 and self.mass > 0):
            raise ConfigError(f"object {self.name!r}: size, height and mass must be positive")
        if self.friction is not None and self.friction <= 0:
            raise ConfigError(f"object {self.name!r}: friction must be positive")

    @property
    def radius(self) -> float:
        """Distance from the centre to the farthest point of the footprint (m)."""
        s = self.size
        return {"cylinder": s, "bar": s * math.hypot(1.0, 0.5)}.get(self.shape, s * math.sqrt(2))

    def boxes(self) -> list[tuple[float, float, float, float]]:
        """The footprint as boxes ``(x, y, half_x, half_y)`` about the centre (not cylinders)."""
        s = self.size
        t = s / 3  # half the thickness of an arm of an L or a T
        return {
            "box": [(0.0, 0.0, s, s)],
            "bar": [(0.0, 0.0, s, s / 2)],
            "ell": [(0.0, -s + t, s, t), (-s + t, t, t, s - t)],
            "tee": [(0.0, s - t, s, t), (0.0, -t, t, s - t)],
        }[self.shape]


@dataclass(frozen=True)
class SceneDistribution:
    """Where each episode's objects are drawn from (all ranges inclusive).

    Colours are drawn in HSV, the hue from one of ``hues`` (degrees, each band ``[lo, hi]``
    within [0, 360]), and redrawn until every shade of every object (its lit top and its
    shaded sides) is at least ``min_color_distance`` (RGB) from every other object's and from
    the table, pusher and walls: costs tell objects apart by colour alone.

    Attributes:
        shapes: Shapes to choose from (uniformly).
        hues: Hue bands (degrees); a band is chosen with probability proportional to its width.
        saturation: Saturation range.
        value: Value (brightness) range.
        size: Range of ``ObjectSpec.size`` (m).
        height: Range of the half-height (m).
        mass: Mass range (kg).
        friction: Sliding friction range.
        min_color_distance: Minimum RGB distance between shades of different things.
    """

    shapes: tuple[Shape, ...] = ("box", "cylinder", "ell")
    hues: tuple[tuple[float, float], ...] = ((0, 15), (345, 360), (95, 145), (210, 250))
    saturation: tuple[float, float] = (0.75, 0.95)
    value: tuple[float, float] = (0.75, 0.95)
    size: tuple[float, float] = (0.025, 0.035)
    height: tuple[float, float] = (0.03, 0.03)
    mass: tuple[float, float] = (0.1, 0.25)
    friction: tuple[float, float] = (0.4, 0.6)
    min_color_distance: float = 0.25

    def __post_init__(self) -> None:
        if not self.shapes:
            raise ConfigError("scene 'shapes' must name at least one shape")
        if not self.hues:
            raise ConfigError("scene 'hues' must give at least one band")
        for lo, hi in self.hues:
            if not 0.0 <= lo <= hi <= 360.0:
                raise ConfigError(f"scene hue band [{lo}, {hi}] must lie within [0, 360]")
        for key, lo_min in (("saturation", 0.0), ("value", 0.0), ("size", 1e-6), ("height", 1e-6),
                            ("mass", 1e-6), ("friction", 1e-6)):  # fmt: skip
            lo, hi = getattr(self, key)
            if not lo_min <= lo <= hi:
                raise ConfigError(f"scene '{key}' must be a range low <= high, got {[lo, hi]}")
        if self.saturation[1] > 1 or self.value[1] > 1:
            raise ConfigError("scene 'saturation' and 'value' must lie within [0, 1]")


def shades(rgb: np.ndarray) -> np.ndarray:
    """``(2, 3)``: how ``rgb`` renders on a lit top and on a shaded side."""
    return np.stack([rgb * (HEADLIGHT_AMBIENT + HEADLIGHT_DIFFUSE), rgb * HEADLIGHT_AMBIENT])


def _distinct(rgb: np.ndarray, others: list[np.ndarray], fixtures: np.ndarray, d: float) -> bool:
    mine = shades(rgb)
    top = HEADLIGHT_AMBIENT + HEADLIGHT_DIFFUSE
    if np.linalg.norm(mine[:, None] - fixtures[None] * top, axis=-1).min() < d:
        return False
    return all(np.linalg.norm(mine[:, None] - shades(o)[None], axis=-1).min() >= d for o in others)


def _draw_color(
    rng: np.random.Generator, dist: SceneDistribution, others: list[np.ndarray]
) -> np.ndarray:
    widths = np.array([hi - lo for lo, hi in dist.hues], dtype=np.float64)
    p = widths / widths.sum() if widths.sum() > 0 else np.full(len(widths), 1 / len(widths))
    fixtures = np.array(FIXTURE_COLORS)
    for _ in range(1000):
        lo, hi = dist.hues[int(rng.choice(len(dist.hues), p=p))]
        hue = rng.uniform(lo, hi) / 360.0
        rgb = np.array(
            colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(*dist.saturation), rng.uniform(*dist.value))
        )
        if _distinct(rgb, others, fixtures, dist.min_color_distance):
            return rgb
    raise ConfigError(
        "could not draw object colours distinct enough from each other and from the table and "
        "pusher; widen the scene's hue bands or lower min_color_distance"
    )


def draw_scene(
    rng: np.random.Generator, dist: SceneDistribution, count: int
) -> tuple[ObjectSpec, ...]:
    """Draw ``count`` objects (named ``object_0`` ...) from ``dist`` with ``rng`` alone."""
    objects: list[ObjectSpec] = []
    colors: list[np.ndarray] = []
    for k in range(count):
        shape = dist.shapes[int(rng.integers(len(dist.shapes)))]
        rgb = _draw_color(rng, dist, colors)
        colors.append(rgb)
        objects.append(
            ObjectSpec(
                name=f"object_{k}",
                shape=shape,
                size=round(float(rng.uniform(*dist.size)), 5),
                height=round(float(rng.uniform(*dist.height)), 5),
                rgba=(*(round(float(c), 4) for c in rgb), 1.0),  # type: ignore[arg-type]
                mass=round(float(rng.uniform(*dist.mass)), 4),
                friction=round(float(rng.uniform(*dist.friction)), 4),
            )
        )
    return tuple(objects)

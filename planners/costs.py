"""Costs on imagined frames: how far a predicted future is from the goal.

Every cost is a small class behind one interface: it declares which of the ``H`` imagined
frames it needs (:meth:`Cost.steps`, so models decode and the oracle renders only those),
scores single frames (:meth:`Cost.frame_costs`), and the base class weighs frames over the
horizon and averages over samples. The planner config chooses the class by name.

* ``pixel``: sum of squared errors to the goal image (as VP2).
* ``lpips``: LPIPS distance to the goal image (Zhang et al. 2018); needs AlexNet weights.
* ``object``: the target object's colour-mask centroid vs its centroid in the goal image,
  plus a small pusher-to-object term (the pixel cost is flat until the pusher touches the
  object; see DESIGN.md). The pusher is read from the imagined frame, or (``pusher:
  commanded``) from where the actions put it: the pusher is position-controlled, so its
  commanded position is exact until a contact stops it, however blurry the prediction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from foresight.config import from_dict
from foresight.errors import ConfigError


@dataclass(frozen=True)
class CostConfig:
    """Fields every cost config has.

    Attributes:
        name: Registry name (``pixel``, ``lpips``, ``object``).
        frames: ``last``: only the final imagined frame counts; ``all``: every frame,
            weighted by ``discount ** (H - 1 - t)`` (later frames weigh more), normalised.
        discount: Per-step weight decay towards earlier frames when ``frames: all``.
    """

    name: str
    frames: Literal["last", "all"] = "last"
    discount: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.discount <= 1.0:
            raise ConfigError(f"cost discount must be in (0, 1], got {self.discount}")


@dataclass(frozen=True)
class PusherKinematics:
    """Where actions put the position-controlled pusher, and where that is in the image.

    Attributes:
        max_step: Metres moved by an action of 1 along an axis.
        workspace: The pusher centre stays within ``[-workspace, workspace]^2`` (m).
        view_half_extent: Half the width of the table area the top camera sees (m).
        image_size: Side of the frames the cost scores (pixels).
    """

    max_step: float
    workspace: float
    view_half_extent: float
    image_size: int

    def commanded(self, start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Commanded pusher positions after each action (contacts ignored).

        Args:
            start: ``(2,)`` pusher xy now (m).
            actions: ``(N, H, 2)`` candidate actions in [-1, 1].

        Returns:
            ``(N, H, 2)`` pusher xy after each action (m), clipped to the workspace step by
            step as the walls do.
        """
        xy = start.to(actions).expand(actions.shape[0], 2)
        out = []
        for t in range(actions.shape[1]):
            xy = (xy + actions[:, t].clamp(-1, 1) * self.max_step).clamp(
                -self.workspace, self.workspace
            )
            out.append(xy)
        return torch.stack(out, 1)

    def to_image(self, xy: torch.Tensor) -> torch.Tensor:
        """Table xy ``(..., 2)`` (m) -> (row, col) in image widths.

        The units of :class:`ObjectCost`'s centroids: pixel ``i`` is at ``i / size``.
        """
        half, size = self.view_half_extent, self.image_size
        col = (xy[..., 0] + half) / (2 * half) - 0.5 / size
        row = (half - xy[..., 1]) / (2 * half) - 0.5 / size
        return torch.stack([row, col], -1)


@dataclass(frozen=True)
class Goal:
    """What a cost compares predictions with.

    Attributes:
        image: ``(H, W, 3)`` uint8 goal image (target at its goal, pusher hidden).
        colors: ``(P, 3)`` float colours in [0, 1] of everything the camera can show, each
            as lit from above and as shaded (object sides).
        labels: ``(P,)`` int class of each colour (one class per geom colour).
        target_label: Class of the target object.
        pusher_label: Class of the pusher.
        pusher: The pusher's kinematics (None: costs can only read it from frames).
    """

    image: np.ndarray
    colors: np.ndarray
    labels: np.ndarray
    target_label: int
    pusher_label: int
    pusher: PusherKinematics | None = None


def make_goal(env: Any, task: Any) -> Goal:
    """The goal of ``task`` for a :class:`~foresight.envs.PushEnv` reset with it.

    Colours come from the MuJoCo model itself (geom RGBA under the headlight), so the
    colour masks follow any change to the scene.
    """
    sim = env.sim
    model = sim.model
    light = model.vis.headlight
    top = float(light.ambient[0] + light.diffuse[0])
    side = float(light.ambient[0])
    names = [model.geom(i).name for i in range(model.ngeom)]
    rgb = np.asarray(model.geom_rgba[:, :3], dtype=np.float64)
    uniq, labels = np.unique(rgb.round(4), axis=0, return_inverse=True)
    labels = labels.reshape(-1)
    target = labels[names.index(env.config.objects[task.target].name)]
    pusher = labels[names.index("pusher")]
    colors = np.concatenate([uniq * top, uniq * side])
    image = env.goal_image(task)
    cfg = env.config
    return Goal(
        image=image,
        colors=colors.astype(np.float32),
        labels=np.concatenate([np.arange(len(uniq)), np.arange(len(uniq))]),
        target_label=int(target),
        pusher_label=int(pusher),
        pusher=PusherKinematics(
            cfg.max_step, cfg.workspace, cfg.view_half_extent, int(image.shape[0])
        ),
    )


def frames_to_tensor(frames: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` -> float ``(..., 3, H, W)`` in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return t.movedim(-1, -3).float() / 255.0


class Cost(ABC):
    """A cost on imagined frames.

    Args:
        config: The cost's settings (an instance of ``config_class``).
        goal: The goal of the current task.
        device: Where predicted frames live.
    """

    config_class: ClassVar[type[CostConfig]] = CostConfig

    def __init__(self, config: CostConfig, goal: Goal, device: str | torch.device = "cpu") -> None:
        self.config = config
        self.goal = goal
        self.device = torch.device(device)
        self.goal_frame = frames_to_tensor(goal.image, self.device)  # (3, H, W)

    @classmethod
    def validate(cls, config: CostConfig) -> None:
        """Check, before any episode starts, that this cost can be built (e.g. its files).

        Most costs need nothing; those reading files or heavy libraries override this.
        """
        del config

    def steps(self, horizon: int) -> list[int]:
        """Indices in ``[0, H)`` of the imagined frames this cost reads."""
        return [horizon - 1] if self.config.frames == "last" else list(range(horizon))

    def weights(self, horizon: int) -> torch.Tensor:
        """``(len(steps),)`` weights of those frames, summing to 1."""
        steps = torch.tensor(self.steps(horizon), dtype=torch.float32)
        w = self.config.discount ** (horizon - 1 - steps)
        return (w / w.sum()).to(self.device)

    @abstractmethod
    def frame_costs(self, frames: torch.Tensor, pusher: torch.Tensor | None = None) -> torch.Tensor:
        """Cost of single frames.

        Args:
            frames: ``(M, 3, H, W)`` float in [0, 1].
            pusher: ``(M, 2)`` commanded pusher (row, col) in image widths at each frame, or
                None when unknown; costs that do not use it ignore it.

        Returns:
            ``(M,)`` costs, lower is closer to the goal.
        """

    @torch.no_grad()
    def __call__(
        self,
        frames: torch.Tensor,
        horizon: int,
        actions: torch.Tensor | None = None,
        pusher_xy: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Score imagined futures.

        Args:
            frames: ``(N, S, T', 3, H, W)`` the frames of :meth:`steps` for ``N`` action
                sequences and ``S`` sampled futures each.
            horizon: ``H``, the planning horizon the frames came from.
            actions: ``(N, H, A)`` the candidate actions (with ``pusher_xy``: costs may read
                the commanded pusher from them).
            pusher_xy: ``(2,)`` the pusher's xy now (m).

        Returns:
            ``(N,)`` costs: frames weighted over the horizon, samples averaged.
        """
        n, s, t = frames.shape[:3]
        if frames.shape[-2:] != self.goal_frame.shape[-2:]:
            raise ConfigError(
                f"predicted frames are {tuple(frames.shape[-2:])} but the goal image is "
                f"{tuple(self.goal_frame.shape[-2:])}; render the env at the model's image_size"
            )
        pusher = None
        kin = self.goal.pusher
        if actions is not None and pusher_xy is not None and kin is not None:
            xy = kin.commanded(torch.as_tensor(pusher_xy), torch.as_tensor(actions))
            where = kin.to_image(xy[:, self.steps(horizon)].to(self.device).float())  # (N, T', 2)
            pusher = where[:, None].expand(n, s, t, 2).reshape(n * s * t, 2)
        flat = frames.reshape(n * s * t, *frames.shape[3:]).float()
        per_frame = self.frame_costs(flat, pusher).reshape(n, s, t)
        return (per_frame * self.weights(horizon)).sum(-1).mean(-1)


class PixelCost(Cost):
    """Sum of squared pixel errors to the goal image (VP2's goal-image cost)."""

    def frame_costs(self, frames: torch.Tensor, pusher: torch.Tensor | None = None) -> torch.Tensor:
        """See :meth:`Cost.frame_costs` (the pusher is in the image already)."""
        return ((frames - self.goal_frame) ** 2).flatten(1).sum(-1)


@dataclass(frozen=True)
class LpipsCostConfig(CostConfig):
    """LPIPS settings.

    Attributes:
        weights: LPIPS/AlexNet weights file; None searches ``$FORESIGHT_LPIPS_WEIGHTS`` and
            torch's hub cache (see :mod:`foresight.perceptual`). With none found the cost
            refuses to run: a random backbone is not a perceptual distance.
        batch_size: Frames per LPIPS forward pass.
    """

    name: str = "lpips"
    weights: str | None = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ConfigError(f"lpips batch_size must be at least 1, got {self.batch_size}")


class LpipsCost(Cost):
    """LPIPS distance to the goal image (Zhang et al. 2018, AlexNet variant).

    Built by :func:`foresight.perceptual.build_lpips`: strictly loaded weights, nothing
    downloaded.
    """

    config_class = LpipsCostConfig

    def __init__(self, config: CostConfig, goal: Goal, device: str | torch.device = "cpu") -> None:
        super().__init__(config, goal, device)
        from foresight.perceptual import build_lpips

        cfg: LpipsCostConfig = config  # type: ignore[assignment]
        self.net = build_lpips(cfg.weights, self.device)
        self.batch_size = cfg.batch_size

    @classmethod
    def validate(cls, config: CostConfig) -> None:
        """Refuse early (one line) when no LPIPS weights can be found."""
        from foresight.perceptual import find_weights

        find_weights(config.weights)  # type: ignore[attr-defined]

    def frame_costs(self, frames: torch.Tensor, pusher: torch.Tensor | None = None) -> torch.Tensor:
        """See :meth:`Cost.frame_costs` (the pusher is in the image already)."""
        from foresight.perceptual import lpips_distance

        goal = self.goal_frame[None]
        return torch.cat(
            [
                lpips_distance(self.net, chunk, goal.expand_as(chunk))
                for chunk in frames.split(self.batch_size)
            ]
        )


@dataclass(frozen=True)
class ObjectCostConfig(CostConfig):
    """Object-centric cost settings.

    Attributes:
        pusher_weight: Weight of the pusher-to-target distance (keeps the search moving
            towards the object before contact; small, so it never outweighs the goal).
        color_scale: Softness (in RGB units of [0, 1]) of the colour classification, so
            blurry predictions still give a centroid.
        min_pixels: Below this mask mass the target counts as not visible (worst cost).
        pusher: Where the pusher-to-target term reads the pusher: ``image`` (its colour
            mask in the imagined frame) or ``commanded`` (where the actions put it, from the
            robot state: exact until a contact, and independent of the model's blur; the
            image is used when no state is given).
    """

    name: str = "object"
    pusher_weight: float = 0.1
    color_scale: float = 0.08
    min_pixels: float = 1.0
    pusher: Literal["image", "commanded"] = "image"


class ObjectCost(Cost):
    """Target-centroid-to-goal distance plus a small pusher-to-target term, from colour masks.

    The cost is the distance (in image widths) of the target's colour-mask centroid to its
    centroid in the goal image, plus ``pusher_weight`` times the pusher-to-target distance.

    Masks are soft (a Gaussian kernel of each pixel's RGB distance to the class colour), so
    blurry model predictions degrade gracefully and centroids are sub-pixel.
    """

    config_class = ObjectCostConfig

    def __init__(self, config: CostConfig, goal: Goal, device: str | torch.device = "cpu") -> None:
        super().__init__(config, goal, device)
        self.colors = torch.as_tensor(goal.colors, device=self.device)  # (P, 3)
        self.labels = torch.as_tensor(goal.labels, device=self.device)  # (P,)
        goal_centroid, mass = self.centroids(self.goal_frame[None], [goal.target_label])
        if float(mass[0, 0]) < self.config.min_pixels:  # type: ignore[attr-defined]
            raise ConfigError("the target object is not visible in the goal image")
        self.goal_centroid = goal_centroid[0, 0]  # (2,)

    def class_masses(self, frames: torch.Tensor, labels: list[int]) -> torch.Tensor:
        """``(M, L, H*W)`` soft membership of each pixel in each class of ``labels``.

        A pixel's membership in a class is a Gaussian kernel of its RGB distance to the
        nearest shade of that class's colour. The scene's colours are far apart (> 0.4 RGB
        units, ``color_scale`` is 0.08), so other classes contribute nothing measurable,
        and a softmax over every scene colour would cost 3x more for the same masks.
        """
        cfg: ObjectCostConfig = self.config  # type: ignore[assignment]
        out = []
        for label in labels:
            d2 = torch.stack(
                [
                    ((frames - c[:, None, None]) ** 2).sum(1)
                    for c in self.colors[self.labels == label]
                ]
            ).amin(0)  # (M, H, W)
            out.append(torch.exp(d2.flatten(1) / (-2 * cfg.color_scale**2)))
        return torch.stack(out, 1)

    def centroids(
        self, frames: torch.Tensor, labels: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask centroids ``(M, L, 2)`` (row, col in image widths) and masses ``(M, L)``."""
        w = self.class_masses(frames, labels)  # (M, L, HW)
        h, wd = frames.shape[-2:]
        rows = torch.arange(h, device=w.device, dtype=w.dtype).repeat_interleave(wd) / wd
        cols = torch.arange(wd, device=w.device, dtype=w.dtype).repeat(h) / wd
        mass = w.sum(-1)
        c = (w @ torch.stack([rows, cols], -1)) / mass.clamp_min(1e-6)[..., None]
        return c, mass

    def frame_costs(self, frames: torch.Tensor, pusher: torch.Tensor | None = None) -> torch.Tensor:
        """See :meth:`Cost.frame_costs`."""
        cfg: ObjectCostConfig = self.config  # type: ignore[assignment]
        commanded = cfg.pusher == "commanded" and pusher is not None
        labels = (
            [self.goal.target_label]
            if commanded
            else [self.goal.target_label, self.goal.pusher_label]
        )
        c, mass = self.centroids(frames, labels)
        target = c[:, 0]
        cost = (target - self.goal_centroid).norm(dim=-1)
        if cfg.pusher_weight and commanded:
            assert pusher is not None
            cost = cost + cfg.pusher_weight * (pusher.to(target) - target).norm(dim=-1)
        elif cfg.pusher_weight:
            near = (c[:, 1] - target).norm(dim=-1)
            # A pusher the prediction lost is no evidence that it is near the target: count
            # the image diagonal (more than any visible distance), or planning through a blurry
            # model prefers futures where the pusher fades away.
            near = torch.where(mass[:, 1] >= cfg.min_pixels, near, torch.full_like(near, 1.5))
            cost = cost + cfg.pusher_weight * near
        # An invisible target (pushed out of view, or a prediction that lost it) is the
        # worst outcome: the image diagonal is more than any visible distance.
        return torch.where(mass[:, 0] >= cfg.min_pixels, cost, torch.full_like(cost, 2.0))


#: Costs by the name a planner config gives.
COSTS: dict[str, type[Cost]] = {"pixel": PixelCost, "lpips": LpipsCost, "object": ObjectCost}


def cost_from_dict(data: dict[str, Any], source: str) -> CostConfig:
    """Typed config of the cost named by ``data['name']``; unknown keys are errors."""
    name = data.get("name")
    if name not in COSTS:
        raise ConfigError(f"{source}: unknown cost {name!r} (choose one of: {', '.join(COSTS)})")
    return from_dict(COSTS[name].config_class, data, f"{source}: 'cost'")


def build_cost(config: CostConfig, goal: Goal, device: str | torch.device = "cpu") -> Cost:
    """The cost a config describes, for ``goal``."""
    return COSTS[config.name](config, goal, device)

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
  Its masks (``mask``) are a colour kernel, or (``unmix``) each pixel's share of the object's
  colour against the table's, which a blurry prediction keeps where the kernel loses it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from foresight.config import from_dict
from foresight.envs.base import Goal
from foresight.errors import ConfigError
from foresight.registry import Registry


@dataclass(frozen=True)
class CostConfig:
    """Fields every cost config has.

    Attributes:
        name: Registry name (``pixel``, ``lpips``, ``object``).
        frames: Which imagined frames count. ``last``: the final one. ``all``: every frame.
            ``handover``: the frame where a plan's executed actions end (after the MPC's
            ``replan_every`` steps, where the next plan starts) and the final one: with ``last``
            alone the steps an MPC executes are never scored, so the robot may wander through
            them, and an episode that ends between replans is judged where no cost looked.
            Frames are weighted by ``discount ** (H - 1 - t)`` (later frames weigh more),
            normalised.
        discount: Per-step weight decay towards earlier frames.
        action_weight: Weight of the candidate's mean squared action (a control cost, as
            in MPC's usual quadratic cost): among futures the frames score alike it prefers
            the one that moves least, so a robot at its goal holds still instead of executing
            whichever random jitter scored best (the frames between scored ones are free).
    """

    name: str
    frames: Literal["last", "all", "handover"] = "last"
    discount: float = 1.0
    action_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.discount <= 1.0:
            raise ConfigError(f"cost discount must be in (0, 1], got {self.discount}")
        if self.action_weight < 0:
            raise ConfigError(f"cost action_weight must be >= 0, got {self.action_weight}")


@dataclass(frozen=True)
class Auxiliary:
    """What a cost may read besides the frames: the robot, from the commanded actions.

    The robot's own motion is known to it (position control on Push-v0, a PD controller on
    Push-T; see the goal's ``kinematics``), so where the actions put it is exact until a
    contact stops it, however blurry the predicted frame. One row per scored frame.

    Attributes:
        robot_state: ``(M, 2)`` commanded robot xy at each frame (the env's units).
        robot_pixel: ``(M, 2)`` where that puts the robot in the image: (row, col) in image
            widths (pixel ``i`` is at ``i / size``).
    """

    robot_state: torch.Tensor
    robot_pixel: torch.Tensor


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
        executed: Actions the MPC executes from each plan (its ``replan_every``), which
            ``frames: handover`` scores the frame after.
    """

    config_class: ClassVar[type[CostConfig]] = CostConfig

    def __init__(
        self,
        config: CostConfig,
        goal: Goal,
        device: str | torch.device = "cpu",
        executed: int = 1,
    ) -> None:
        if executed < 1:
            raise ConfigError(f"a cost's executed actions must be at least 1, got {executed}")
        self.config = config
        self.goal = goal
        self.device = torch.device(device)
        self.executed = executed
        self.goal_frame = frames_to_tensor(goal.image, self.device)  # (3, H, W)
        self.setup()

    def setup(self) -> None:  # noqa: B027  (optional hook; most costs need nothing)
        """Build what this cost reads besides the goal image (masks, networks), once a goal.

        Called at the end of ``__init__``: costs override this rather than the constructor,
        whose arguments are the planner's business.
        """

    @classmethod
    def validate(cls, config: CostConfig) -> None:
        """Check, before any episode starts, that this cost can be built (e.g. its files).

        Most costs need nothing; those reading files or heavy libraries override this.
        """
        del config

    def steps(self, horizon: int) -> list[int]:
        """Indices in ``[0, H)`` of the imagined frames this cost reads, ascending."""
        if self.config.frames == "all":
            return list(range(horizon))
        if self.config.frames == "handover":
            return sorted({min(self.executed, horizon) - 1, horizon - 1})
        return [horizon - 1]

    def weights(self, horizon: int) -> torch.Tensor:
        """``(len(steps),)`` weights of those frames, summing to 1."""
        steps = torch.tensor(self.steps(horizon), dtype=torch.float32)
        w = self.config.discount ** (horizon - 1 - steps)
        return (w / w.sum()).to(self.device)

    @abstractmethod
    def frame_costs(self, frames: torch.Tensor, aux: Auxiliary | None = None) -> torch.Tensor:
        """Cost of single frames.

        Args:
            frames: ``(M, 3, H, W)`` float in [0, 1].
            aux: The commanded robot at each frame, or None when unknown; costs that do not
                use it ignore it.

        Returns:
            ``(M,)`` costs, lower is closer to the goal.
        """

    @torch.no_grad()
    def __call__(
        self,
        frames: torch.Tensor,
        horizon: int,
        actions: torch.Tensor | None = None,
        robot_state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Score imagined futures.

        Args:
            frames: ``(N, S, T', 3, H, W)`` the frames of :meth:`steps` for ``N`` action
                sequences and ``S`` sampled futures each.
            horizon: ``H``, the planning horizon the frames came from.
            actions: ``(N, H, A)`` the candidate actions (with ``robot_state``: costs may read
                the commanded robot from them, through the goal's kinematics).
            robot_state: The robot's kinematic state now (from the goal's
                ``kinematics.track``, e.g. ``(2,)`` xy, or xy and velocity).

        Returns:
            ``(N,)`` costs: frames weighted over the horizon, samples averaged.
        """
        n, s, t = frames.shape[:3]
        if frames.shape[-2:] != self.goal_frame.shape[-2:]:
            raise ConfigError(
                f"predicted frames are {tuple(frames.shape[-2:])} but the goal image is "
                f"{tuple(self.goal_frame.shape[-2:])}; render the env at the model's image_size"
            )
        aux = None
        kin = self.goal.kinematics
        if actions is not None and robot_state is not None and kin is not None:
            commanded = kin.commanded(torch.as_tensor(robot_state), torch.as_tensor(actions))
            state = commanded[:, self.steps(horizon)].to(self.device).float()  # (N, T', 2)

            def per_frame_rows(x: torch.Tensor) -> torch.Tensor:
                return x[:, None].expand(n, s, *x.shape[1:]).reshape(n * s * t, -1)

            aux = Auxiliary(per_frame_rows(state), per_frame_rows(kin.to_image(state)))
        flat = frames.reshape(n * s * t, *frames.shape[3:]).float()
        per_frame = self.frame_costs(flat, aux).reshape(n, s, t)
        cost = (per_frame * self.weights(horizon)).sum(-1).mean(-1)
        if self.config.action_weight and actions is not None:
            effort = (torch.as_tensor(actions, dtype=torch.float32) ** 2).mean((1, 2))
            cost = cost + self.config.action_weight * effort.to(cost)
        return cost


#: Costs by the name a planner config's ``cost.name`` gives.
COSTS = Registry[type[Cost]]("cost")


@COSTS.register("pixel")
class PixelCost(Cost):
    """Sum of squared pixel errors to the goal image (VP2's goal-image cost)."""

    def frame_costs(self, frames: torch.Tensor, aux: Auxiliary | None = None) -> torch.Tensor:
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


@COSTS.register("lpips")
class LpipsCost(Cost):
    """LPIPS distance to the goal image (Zhang et al. 2018, AlexNet variant).

    Built by :func:`foresight.perceptual.build_lpips`: strictly loaded, hash-checked
    weights (found, or downloaded once into torch's hub cache where the network allows).
    """

    config_class = LpipsCostConfig

    def setup(self) -> None:
        """See :meth:`Cost.setup`."""
        from foresight.perceptual import build_lpips

        cfg: LpipsCostConfig = self.config  # type: ignore[assignment]
        self.net = build_lpips(cfg.weights, self.device)
        self.batch_size = cfg.batch_size

    @classmethod
    def validate(cls, config: CostConfig) -> None:
        """Refuse early (one line) when no LPIPS weights can be found."""
        from foresight.perceptual import find_weights

        find_weights(config.weights)  # type: ignore[attr-defined]

    def frame_costs(self, frames: torch.Tensor, aux: Auxiliary | None = None) -> torch.Tensor:
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
        mask: How a pixel's membership in an object is read from its colour. ``color``: a
            Gaussian kernel of its RGB distance to the object's colour, so a pixel that a
            blurry prediction mixed with the table counts little or not at all. ``unmix``: the
            share of the object's colour in the pixel when it is read as a mix of that colour
            and the background's (the goal image's median colour, the table), weighed down by
            what that mix leaves unexplained; blur spreads an object's colour but keeps its
            sum, so a smeared object keeps its mass and its centroid is where the prediction
            puts it on average. On sharp frames both give the same centroids.
        min_pixels: Below this mask mass the target counts as not visible (worst cost).
        pusher: Where the pusher-to-target term reads the pusher: ``image`` (its colour
            mask in the imagined frame) or ``commanded`` (where the actions put it, from the
            robot state: exact until a contact, and independent of the model's blur; the
            image is used when no state is given).
        shape_weight: Weight of the target's mask mismatch with its goal mask (the sum of
            absolute differences over the goal mask's mass: 0 when they coincide, 2 when
            disjoint), which a centroid alone cannot see: the orientation of a T.
        robot_goal_weight: Weight of the pusher's distance to where the task wants it to end,
            for tasks that judge it (the goal's ``robot_goal``, e.g. DINO-WM's Push-T test);
            ignored by tasks that do not.
        robot_goal_within: Where the agent term starts to count (image widths; 0: always in
            full). It counts in full once the target's centroid is within this distance of its
            goal and fades linearly to nothing at twice it: while the target is far, an agent
            term in full parks the pusher at its own goal, beside a block it can then no longer
            push home without paying for leaving it.
        orientation_weight: Weight of the target's orientation error (radians / π, in [0, 1])
            against its goal orientation, both read from the mask's image moments (see
            :meth:`ObjectCost.orientations`). Unlike ``shape_weight`` it does not vanish while
            the target is far from its goal mask, so it guides a turn from the start; it needs
            a target without rotational symmetry (a T, an L), for a box's is undefined.
    """

    name: str = "object"
    pusher_weight: float = 0.1
    color_scale: float = 0.08
    min_pixels: float = 1.0
    mask: Literal["color", "unmix"] = "color"
    pusher: Literal["image", "commanded"] = "image"
    shape_weight: float = 0.0
    robot_goal_weight: float = 0.0
    robot_goal_within: float = 0.0
    orientation_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.robot_goal_within < 0:
            raise ConfigError(f"cost robot_goal_within must be >= 0, got {self.robot_goal_within}")


@COSTS.register("object")
class ObjectCost(Cost):
    """Target-centroid-to-goal distance plus a small pusher-to-target term, from colour masks.

    The cost is the distance (in image widths) of the target's colour-mask centroid to its
    centroid in the goal image, plus ``pusher_weight`` times the pusher-to-target distance,
    plus ``shape_weight`` times the target's mask mismatch with the goal's, plus
    ``robot_goal_weight`` times the pusher's distance to its own goal when the task judges
    where the robot ends (DINO-WM's Push-T test does).

    Masks are soft (a Gaussian kernel of each pixel's RGB distance to the class colour), so
    blurry model predictions degrade gracefully and centroids are sub-pixel.
    """

    config_class = ObjectCostConfig

    def setup(self) -> None:
        """See :meth:`Cost.setup`."""
        goal = self.goal
        self.colors = torch.as_tensor(goal.colors, device=self.device)  # (P, 3)
        self.labels = torch.as_tensor(goal.labels, device=self.device)  # (P,)
        # Most of a goal image is the table: its median is the colour objects blur into.
        self.background = self.goal_frame.flatten(1).median(1).values  # (3,)
        goal_centroid, mass = self.centroids(self.goal_frame[None], [goal.target_label])
        if float(mass[0, 0]) < self.config.min_pixels:  # type: ignore[attr-defined]
            raise ConfigError("the target object is not visible in the goal image")
        self.goal_centroid = goal_centroid[0, 0]  # (2,)
        self.goal_mask = self.class_masses(self.goal_frame[None], [goal.target_label])[0, 0]
        self.goal_orientation = self.orientations(
            self.goal_mask[None], self.goal_frame.shape[-2:], self.goal_centroid[None]
        )[0]
        self.robot_goal = (
            None
            if goal.robot_goal is None
            else torch.tensor(goal.robot_goal, dtype=torch.float32, device=self.device)
        )

    def class_masses(self, frames: torch.Tensor, labels: list[int]) -> torch.Tensor:
        """``(M, L, H*W)`` soft membership of each pixel in each class of ``labels``.

        A pixel's membership in a class is a Gaussian kernel of its RGB distance to the
        nearest shade of that class's colour. The scene's colours are far apart (the fixed
        scene's by > 0.4 RGB units, drawn scenes' shades by at least their
        ``min_color_distance``, 0.25; ``color_scale`` is 0.08, so another class's pixel counts
        below 1%), and a softmax over every scene colour would cost 3x more for the same masks.
        """
        cfg: ObjectCostConfig = self.config  # type: ignore[assignment]
        if cfg.mask == "unmix":
            return self._unmixed_masses(frames, labels)
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

    def _unmixed_masses(self, frames: torch.Tensor, labels: list[int]) -> torch.Tensor:
        """``(M, L, H*W)``: each pixel read as ``background + a (shade - background)``.

        ``a`` (clamped to [0, 1]) is the pixel's share of the shade. What the mix leaves
        unexplained is weighed against ``color_scale * a`` (a Gaussian kernel), not against
        ``color_scale``: a faint blur of another colour (the pusher smeared over the table)
        leaves a small residual, but a large one for its share, so it stays out. Of a class's
        shades the one that explains the pixel best counts.
        """
        cfg: ObjectCostConfig = self.config  # type: ignore[assignment]
        rel = (frames - self.background[:, None, None]).flatten(2)  # (M, 3, HW)
        rel2 = (rel**2).sum(1)  # (M, HW)
        out = []
        for label in labels:
            best = None
            for c in self.colors[self.labels == label]:
                v = c - self.background  # (3,)
                vv = v.dot(v).clamp_min(1e-6)
                dot = torch.einsum("mcp,c->mp", rel, v)
                share = (dot / vv).clamp(0, 1)
                # |rel - share v|^2, without a (M, 3, HW) temporary per shade.
                residual = (rel2 - 2 * share * dot + share**2 * vv).clamp_min(0)
                scale = cfg.color_scale * share.clamp_min(1e-3)
                w = share * torch.exp(residual / (-2 * scale**2))
                best = w if best is None else torch.maximum(best, w)
            out.append(best)
        return torch.stack(out, 1)

    def centroids(
        self, frames: torch.Tensor, labels: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask centroids ``(M, L, 2)`` (row, col in image widths) and masses ``(M, L)``."""
        return self._centroids_of(self.class_masses(frames, labels), frames.shape[-2:])

    @staticmethod
    def _pixel_grid(size: Any, like: torch.Tensor) -> torch.Tensor:
        """``(H*W, 2)`` (row, col) of every pixel in image widths, flattened as masks are."""
        h, wd = size
        rows = torch.arange(h, device=like.device, dtype=like.dtype).repeat_interleave(wd) / wd
        cols = torch.arange(wd, device=like.device, dtype=like.dtype).repeat(h) / wd
        return torch.stack([rows, cols], -1)

    @classmethod
    def _centroids_of(cls, w: torch.Tensor, size: Any) -> tuple[torch.Tensor, torch.Tensor]:
        mass = w.sum(-1)
        c = (w @ cls._pixel_grid(size, w)) / mass.clamp_min(1e-6)[..., None]
        return c, mass

    @classmethod
    def orientations(
        cls, w: torch.Tensor, size: Any, centroids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Orientation of soft masks ``(M, H*W)`` from their moments: ``(M,)`` radians.

        The principal axis of the second central moments gives the angle up to a half turn
        (Hu 1962); the sign of the third moment along that axis (which side the mass leans
        to, e.g. a T's bar) resolves it. Angles are in image coordinates (rows, cols).

        Args:
            w: Soft masks ``(M, H*W)``.
            size: The image's ``(H, W)``.
            centroids: The masks' centroids ``(M, 2)`` when the caller has them (see
                :meth:`centroids`); computed here otherwise.
        """
        grid = cls._pixel_grid(size, w)
        if centroids is None:
            centroids = cls._centroids_of(w, size)[0]
        dr = grid[:, 0] - centroids[:, :1]  # (M, H*W)
        dc = grid[:, 1] - centroids[:, 1:]
        mu_rr, mu_cc, mu_rc = ((w * dr * dr).sum(-1), (w * dc * dc).sum(-1), (w * dr * dc).sum(-1))
        axis = 0.5 * torch.atan2(2 * mu_rc, mu_rr - mu_cc)  # angle of the major axis from rows
        along = dr * torch.cos(axis)[:, None] + dc * torch.sin(axis)[:, None]
        skew = (w * along**3).sum(-1)
        return torch.where(skew < 0, axis + torch.pi, axis)

    def frame_costs(self, frames: torch.Tensor, aux: Auxiliary | None = None) -> torch.Tensor:
        """See :meth:`Cost.frame_costs`."""
        cfg: ObjectCostConfig = self.config  # type: ignore[assignment]
        commanded = cfg.pusher == "commanded" and aux is not None
        labels = (
            [self.goal.target_label]
            if commanded
            else [self.goal.target_label, self.goal.robot_label]
        )
        w = self.class_masses(frames, labels)  # (M, L, HW)
        c, mass = self._centroids_of(w, frames.shape[-2:])
        target = c[:, 0]
        distance = (target - self.goal_centroid).norm(dim=-1)  # (M,) image widths
        cost = distance
        if cfg.shape_weight:
            mismatch = (w[:, 0] - self.goal_mask).abs().sum(-1) / self.goal_mask.sum()
            cost = cost + cfg.shape_weight * mismatch
        if cfg.orientation_weight:
            turn = self.orientations(w[:, 0], frames.shape[-2:], target) - self.goal_orientation
            error = torch.atan2(torch.sin(turn), torch.cos(turn)).abs() / torch.pi
            cost = cost + cfg.orientation_weight * error
        if cfg.robot_goal_weight and self.robot_goal is not None:
            robot = aux.robot_pixel.to(target) if commanded else c[:, 1]  # type: ignore[union-attr]
            weight = torch.full_like(cost, cfg.robot_goal_weight)
            if cfg.robot_goal_within:
                far = distance / cfg.robot_goal_within
                weight = weight * (2.0 - far).clamp(0.0, 1.0)
            cost = cost + weight * (robot - self.robot_goal).norm(dim=-1)
        if cfg.pusher_weight and commanded:
            assert aux is not None
            cost = cost + cfg.pusher_weight * (aux.robot_pixel.to(target) - target).norm(dim=-1)
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


def cost_from_dict(data: dict[str, Any], source: str) -> CostConfig:
    """Typed config of the cost named by ``data['name']``; unknown keys are errors."""
    cost = COSTS.lookup(str(data.get("name")), source)
    return from_dict(cost.config_class, data, f"{source}: 'cost'")


def build_cost(
    config: CostConfig, goal: Goal, device: str | torch.device = "cpu", executed: int = 1
) -> Cost:
    """The cost a config describes, for ``goal`` (``executed``: the MPC's ``replan_every``)."""
    return COSTS[config.name](config, goal, device, executed)

"""What a training checkpoint carries besides the model, typed: the state ``--resume`` needs.

A checkpoint is a dict (it must load with ``torch.load(weights_only=True)``), written by
:func:`~foresight.models.checkpoint.save_checkpoint` with the model's name, config and
weights. A training run adds its :class:`TrainingState`: the step, the data position, every
random generator, the optimizers' and loss scalers' states by name, the best score so far,
and which dataset it trained on. :meth:`TrainingState.from_payload` is the one place that
reads those entries back, and checks every type and range before anything is restored; the
trainer sees attributes, not string keys. :func:`optimizer_problem` and
:func:`scaler_problem` check a saved optimizer or loss-scaler state against the one it is
to drive, before torch loads it. Checkpoints written before models owned their
optimizers (one Adam, ``optimizer``/``scaler``) read as the optimizer ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from foresight.config import to_dict
from foresight.errors import CheckpointError
from foresight.training.state import rng_state_problem


@dataclass(frozen=True)
class BestScore:
    """What picked ``best.pt``: its measure, value and step (the checkpoints' ``best``).

    Attributes:
        metric: The validation measure (``train.best_metric``), or ``train_loss`` for a run
            without a valid split.
        value: Its value at ``step``.
        step: The training step of ``best.pt``.
    """

    metric: str
    value: float
    step: int

    def beaten_by(self, value: float, higher: bool) -> bool:
        """True if ``value`` is better than this score (higher or lower is better)."""
        return value > self.value if higher else value < self.value

    def describe(self) -> str:
        """``best ssim_mean 0.9012 at step 4000``."""
        return f"best {self.metric} {self.value:.4g} at step {self.step}"


def is_count(value: Any, minimum: int = 0) -> bool:
    """An ``int`` (not a bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_finite_number(value: Any) -> bool:
    """A finite ``int`` or ``float`` (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same_kind(saved: Any, current: Any) -> bool:
    """Whether an optimizer hyperparameter read from a checkpoint can stand for ``current``."""
    if current is None or isinstance(current, bool):
        return saved is None or isinstance(saved, bool)
    if isinstance(current, int | float):
        return is_finite_number(saved)
    if isinstance(current, tuple | list):
        return (
            isinstance(saved, tuple | list)
            and len(saved) == len(current)
            and all(_same_kind(a, b) for a, b in zip(saved, current, strict=True))
        )
    return isinstance(saved, type(current))


def optimizer_problem(saved: Any, optimizer: torch.optim.Optimizer) -> str | None:
    """What keeps ``saved`` (an optimizer ``state_dict``) from driving ``optimizer``.

    torch checks only the number of parameters per group: a state tensor of another shape,
    or a hyperparameter of another type, would fail at the first step instead.
    """
    if not isinstance(saved, dict):
        return "is not a mapping"
    groups, state = saved.get("param_groups"), saved.get("state")
    if not isinstance(groups, list) or not isinstance(state, dict):
        return "lacks 'param_groups' or 'state'"
    current = optimizer.param_groups
    if len(groups) != len(current):
        return f"has {len(groups)} parameter groups, the model's optimizer {len(current)}"
    shapes: dict[int, torch.Size] = {}
    for i, (group, own) in enumerate(zip(groups, current, strict=True)):
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            return f"has a damaged parameter group {i}"
        if len(group["params"]) != len(own["params"]):
            return (
                f"has {len(group['params'])} parameters in group {i}, the model "
                f"{len(own['params'])}"
            )
        for pid, param in zip(group["params"], own["params"], strict=True):
            if not is_count(pid):
                return f"has a damaged parameter id {pid!r}"
            shapes[pid] = param.shape
        for key, value in group.items():
            # Keys only one torch version knows are left to torch's own defaults.
            known = key not in ("params", "param_names") and key in own
            if known and not _same_kind(value, own[key]):
                return f"has {key} {value!r} in group {i}"
    for pid, entry in state.items():
        if pid not in shapes or not isinstance(entry, dict):
            return f"has state for an unknown parameter {pid!r}"
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                if value.ndim > 0 and value.shape != shapes[pid]:
                    return (
                        f"has '{key}' of shape {tuple(value.shape)} for a parameter of shape "
                        f"{tuple(shapes[pid])}"
                    )
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    return f"has NaN or infinite values in '{key}'"
            elif value is not None and not is_finite_number(value):
                return f"has '{key}' {value!r}, not a tensor or number"
    return None


def scaler_problem(saved: Any) -> str | None:
    """What keeps ``saved`` (a loss scaler's ``state_dict``, possibly empty) from loading."""
    if saved is None:
        return None
    if not isinstance(saved, dict) or not all(is_finite_number(v) for v in saved.values()):
        return "has a damaged loss-scaler state"
    return None


def _problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's training state (None: every field is usable).

    Types and ranges only; whether the optimizer state fits the model is checked once the
    model is built (by the trainer).
    """
    if not is_count(payload.get("step")):
        return f"has step {payload.get('step')!r}, not a count of steps"
    data = payload.get("data")
    if not isinstance(data, dict) or not (
        is_count(data.get("epoch")) and is_count(data.get("batch"))
    ):
        return "lacks a valid data position ('data': epoch and batch)"
    rng = payload.get("rng")
    if not isinstance(rng, list | tuple) or not rng:
        return "lacks the random generator states ('rng')"
    for state in rng:
        problem = rng_state_problem(state)
        if problem is not None:
            return f"has {problem} in 'rng'"
    if "world_size" in payload and not is_count(payload["world_size"], 1):
        return f"has world_size {payload['world_size']!r}, not a process count"
    if "train_seconds" in payload and not (
        is_finite_number(payload["train_seconds"]) and payload["train_seconds"] >= 0
    ):
        return f"has train_seconds {payload['train_seconds']!r}, not a duration"
    best = payload.get("best") or {}
    if not isinstance(best, dict) or (
        best
        and not (
            isinstance(best.get("metric"), str)
            and is_finite_number(best.get("value"))
            and is_count(best.get("step"))
        )
    ):
        return "has a damaged 'best' record"
    for key in ("optimizers", "scalers"):
        if key in payload and not isinstance(payload[key] or {}, dict):
            return f"has '{key}' that is not a mapping by optimizer name"
    if not isinstance(payload.get("dataset", ""), str):
        return "has a 'dataset' that is not a path"
    fingerprint = payload.get("dataset_fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, dict):
        return "has a damaged 'dataset_fingerprint'"
    return None


@dataclass(frozen=True)
class TrainingState:
    """A run's state at a checkpoint, beyond the model.

    Attributes:
        step: Optimisation steps taken in total.
        epoch: The data order's epoch at ``step``.
        batch: Batches of that epoch already consumed.
        rng: Every random generator's state, one entry per process (rank order).
        world_size: Processes that wrote it (None: written before this was recorded).
        train_seconds: Seconds of training steps so far, validation excluded.
        best: What picked ``best.pt`` (None: nothing scored yet).
        optimizers: Each optimizer's ``state_dict`` by name (None: a model with nothing to
            train, whose checkpoint cannot resume).
        scalers: Each loss scaler's ``state_dict`` by optimizer name (CUDA fp16 only).
        dataset: The ``--data`` path it trained on, as given.
        dataset_fingerprint: What identifies that dataset's content (None: an older run).
    """

    step: int
    epoch: int
    batch: int
    rng: list[Any]
    world_size: int | None = None
    train_seconds: float = 0.0
    best: BestScore | None = None
    optimizers: dict[str, Any] | None = None
    scalers: dict[str, Any] = field(default_factory=dict)
    dataset: str = "?"
    dataset_fingerprint: dict[str, Any] | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any], source: str) -> TrainingState:
        """Read and check the training state of a checkpoint's payload.

        Args:
            payload: What :func:`~foresight.models.checkpoint.read_checkpoint` returned.
            source: The file, for messages.

        Raises:
            CheckpointError: A field is missing, of the wrong type or out of range (one line).
        """
        if not ({"optimizer", "optimizers"} & set(payload)) or "step" not in payload:
            raise CheckpointError(f"{source} lacks the training state; it cannot resume")
        problem = _problem(payload)
        if problem is not None:
            raise CheckpointError(
                f"{source} {problem}; the file is damaged, so it cannot resume "
                "(start a new run with another --out)"
            )
        if "optimizers" in payload:
            optimizers, scalers = payload["optimizers"], payload.get("scalers") or {}
        else:  # written before models owned their optimizers: one Adam, "model"
            optimizers = {"model": payload["optimizer"]}
            scalers = {"model": payload["scaler"]} if payload.get("scaler") else {}
        best = payload.get("best")
        return cls(
            step=payload["step"],
            epoch=payload["data"]["epoch"],
            batch=payload["data"]["batch"],
            rng=list(payload["rng"]),
            world_size=payload.get("world_size"),
            train_seconds=float(payload.get("train_seconds", 0.0)),
            best=BestScore(best["metric"], float(best["value"]), best["step"]) if best else None,
            optimizers=optimizers,
            scalers=scalers,
            dataset=payload.get("dataset", "?"),
            dataset_fingerprint=payload.get("dataset_fingerprint"),
        )

    def payload(self) -> dict[str, Any]:
        """The checkpoint entries that hold this state (as :meth:`from_payload` reads them)."""
        entries = {
            "step": self.step,
            "rng": self.rng,
            "data": {"epoch": self.epoch, "batch": self.batch},
            "world_size": self.world_size,
            "best": to_dict(self.best) if self.best else {},
            "train_seconds": self.train_seconds,
            "dataset": self.dataset,
            # What --resume compares: a moved copy resumes, another dataset does not.
            "dataset_fingerprint": self.dataset_fingerprint,
        }
        if self.optimizers is not None:
            entries.update(optimizers=self.optimizers, scalers=self.scalers)
        return entries


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint ``--resume`` continues from: its weights and its training state.

    Attributes:
        weights: The model's ``state_dict`` (checked against the model once it is built).
        state: The rest of the run's state.
    """

    weights: dict[str, torch.Tensor]
    state: TrainingState

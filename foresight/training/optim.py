"""The trainer's side of a model's optimisation step: named optimizers, precision, DDP.

A model's :meth:`~foresight.models.base.VideoModel.train_step` sees an :class:`Optimization`:
the step counter its schedules read, the autocast context, and ``backward_step(name, loss)``,
which does for the named optimizer what every optimizer needs — loss scaling (fp16), gradient
averaging across torchrun processes, clipping, the update — so that a model with two
optimizers (a GAN) gets all of it without repeating any.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist

from foresight.models.base import OptimizerSpec, VideoModel
from foresight.training.distributed import DistContext, mean_across
from foresight.training.precision import Precision


class NonFiniteLoss(Exception):
    """A loss handed to ``backward_step`` was NaN or infinite (raised before its update)."""

    def __init__(self, value: float) -> None:
        super().__init__(f"loss is {value}")
        self.value = value


class Optimization:
    """A model's named optimizers, each with its loss scaler and LR schedule.

    Under torchrun every process holds the same weights (rank 0's are broadcast here) and
    ``backward_step`` averages gradients across processes before each update: data-parallel
    training that works the same for one optimizer or several, whatever the step does.

    Args:
        model: The model (on ``ctx.device``); its :meth:`optimizers` are built here.
        precision: Autocast and loss-scaling settings.
        ctx: Process-group context.

    Attributes:
        step: Optimisation steps taken before the current one (set by :meth:`begin`).
        specs: The model's optimizers by name.
        scalers: One loss scaler per optimizer (enabled only for fp16).
        grad_norms: Gradient norm before clipping of each optimizer's last update.
    """

    def __init__(self, model: VideoModel, precision: Precision, ctx: DistContext) -> None:
        self.model = model
        self.precision = precision
        self.ctx = ctx
        self.specs: dict[str, OptimizerSpec] = model.optimizers()
        if not self.specs:
            raise ValueError(f"{type(model).__name__}.optimizers() returned no optimizer")
        self.scalers = {name: precision.grad_scaler() for name in self.specs}
        self.grad_norms: dict[str, float] = {}
        self.step = 0
        if ctx.distributed:
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=0)

    def autocast(self) -> torch.autocast:
        """The autocast context forward passes of this step run under."""
        return self.precision.autocast()

    def begin(self, step: int) -> dict[str, float]:
        """Start optimisation step ``step`` (0-based): set every optimizer's learning rate.

        Returns:
            The learning rate of each optimizer.
        """
        self.step = step
        self.grad_norms = {}
        rates = {}
        for name, spec in self.specs.items():
            rates[name] = spec.lr_at(step)
            for group in spec.optimizer.param_groups:
                group["lr"] = rates[name]
        return rates

    def backward_step(self, name: str, loss: torch.Tensor) -> float:
        """Backward ``loss`` and update the optimizer ``name`` (only its parameters).

        Its gradients are zeroed first, so gradients another loss left on its parameters
        (e.g. the generator's loss flowing through the discriminator) never leak into it.

        Returns:
            The loss, averaged over processes.

        Raises:
            NonFiniteLoss: The loss is NaN/inf on some process; this optimizer was not stepped.
            KeyError: ``name`` is not one of the model's optimizers.
        """
        if name not in self.specs:
            raise KeyError(f"no optimizer named '{name}' (the model has {sorted(self.specs)})")
        value = float(mean_across(self.ctx, loss.detach().float()))
        if not math.isfinite(value):
            raise NonFiniteLoss(value)
        spec, scaler = self.specs[name], self.scalers[name]
        spec.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        params = spec.params
        if self.ctx.distributed:
            self._average_grads(params)
        scaler.unscale_(spec.optimizer)
        limit = spec.grad_clip if spec.grad_clip > 0 else math.inf
        self.grad_norms[name] = float(torch.nn.utils.clip_grad_norm_(params, limit))
        scaler.step(spec.optimizer)
        scaler.update()
        return value

    def _average_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Average gradients over processes in one all-reduce (missing ones count as zero)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.ctx.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Every optimizer's and scaler's state, by name (plain values and tensors)."""
        return {
            "optimizers": {n: s.optimizer.state_dict() for n, s in self.specs.items()},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Raises:
            ValueError: The saved optimizers are not this model's (names differ).
        """
        saved = state["optimizers"]
        if set(saved) != set(self.specs):
            raise ValueError(
                f"the checkpoint has optimizers {sorted(saved)}, the model {sorted(self.specs)}"
            )
        for name, spec in self.specs.items():
            spec.optimizer.load_state_dict(saved[name])
            scaler_state = (state.get("scalers") or {}).get(name)
            if scaler_state:
                self.scalers[name].load_state_dict(scaler_state)

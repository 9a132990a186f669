"""Train any registered :class:`VideoModel` through its ``train_step``; validate it.

One loop for every model, device and process count. The model owns its optimisation (its
``optimizers()`` and ``train_step``; by default one Adam over its ``loss`` with linear warm-up
and gradient clipping); the loop supplies the step counter, autocast on CUDA, gradient
averaging under torchrun (:mod:`foresight.training.optim`), a ``metrics.jsonl`` log,
validation (:mod:`foresight.training.validation`) and checkpoints that let ``--resume``
continue bit-for-bit (weights, every optimizer and loss scaler by name, step, every RNG, and
the position in the data order).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from rich.console import Console
from rich.progress import TextColumn
from torch.utils.data import DataLoader

from foresight.config import to_dict
from foresight.data.dataset import SequenceDataset
from foresight.errors import CheckpointError, ConfigError, DataError, ForesightError
from foresight.io import atomic_write_text
from foresight.models.base import ModelConfig, VideoModel
from foresight.models.checkpoint import read_checkpoint, save_checkpoint
from foresight.models.registry import build_model, config_from_dict
from foresight.progress import make_progress
from foresight.training.distributed import (
    DistContext,
    barrier,
    broadcast_flag,
    setup,
    teardown,
)
from foresight.training.optim import NonFiniteLoss, Optimization
from foresight.training.precision import Precision, pick_precision
from foresight.training.state import (
    EpochBatches,
    derived_seed,
    rng_state,
    seed_everything,
    set_rng_state,
)
from foresight.training.validation import (
    ValidationSet,
    check_best_metric,
    make_validation_set,
    validate,
)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
SAMPLES = "samples"

#: Config entries that may differ when resuming (they do not change what a step computes);
#: the ``plan:`` budget is read only by planners, so any of its keys may change too.
RESUMABLE_CHANGES = frozenset({"train.max_steps", "train.log_every", "train.num_workers"})
RESUMABLE_PREFIXES = ("plan.",)


@dataclass(frozen=True)
class TrainOptions:
    """One ``foresight train`` invocation.

    Attributes:
        config: The model config (``train.max_steps``/``train.seed`` already overridden).
        data: The HDF5 dataset.
        out: Run folder (checkpoints, metrics, strips).
        device: ``auto``, ``cpu`` or ``cuda``.
        resume: Continue the run in ``out`` instead of starting one.
        progress: Show a live progress bar (rank 0 only).
        time_limit_s: Stop (after a validation and a checkpoint) once this many seconds of
            training steps have run in total, across resumes, validation excluded; None
            trains to ``train.max_steps``. For comparisons at equal training time.
    """

    config: ModelConfig
    data: Path
    out: Path
    device: str = "auto"
    resume: bool = False
    progress: bool = True
    time_limit_s: float | None = None


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run left things.

    Attributes:
        step: Optimisation steps taken in total.
        checkpoint: The latest checkpoint.
        best: The best checkpoint so far.
        valid: The last validation record (None if validation was skipped).
        main: True in the process that wrote the files (rank 0).
    """

    step: int
    checkpoint: Path
    best: Path
    valid: dict[str, Any] | None
    main: bool = True


def with_overrides(
    config: ModelConfig, max_steps: int | None = None, seed: int | None = None
) -> ModelConfig:
    """``config`` with ``train.max_steps`` and ``train.seed`` replaced where given."""
    changes: dict[str, int] = {}
    if max_steps is not None:
        if max_steps < 1:
            raise ConfigError(f"--max-steps must be at least 1, got {max_steps}")
        changes["max_steps"] = max_steps
    if seed is not None:
        changes["seed"] = seed
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


class TrainStep:
    """One optimisation step: the model's ``train_step`` under the trainer's optimizers.

    Shared by the trainer and ``benchmarks/train_speed.py`` so the benchmark times exactly
    what training runs.

    Args:
        model: The model to train (already on ``ctx.device``).
        precision: Autocast/loss-scaling settings.
        ctx: Process-group context.
    """

    def __init__(self, model: VideoModel, precision: Precision, ctx: DistContext) -> None:
        self.model = model
        self.opt = Optimization(model, precision, ctx)

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> StepResult:
        """Take optimisation step ``step`` (0-based) on ``batch`` (on the device).

        Raises:
            NonFiniteLoss: A loss was NaN/inf on some process; its optimizer was not stepped.
        """
        rates = self.opt.begin(step)
        loss, terms = self.model.train_step(batch, self.opt)
        grad_norms = _by_optimizer("grad_norm", self.opt.grad_norms)
        return StepResult(loss, terms, _by_optimizer("lr", rates), grad_norms)


@dataclass(frozen=True)
class StepResult:
    """What one optimisation step reports.

    Attributes:
        loss: The loss ``train_step`` returned (averaged over processes).
        terms: The model's named loss terms (this process).
        lr: Learning rate per optimizer: ``lr`` for the default single optimizer, else
            ``lr_<name>``.
        grad_norm: Gradient norm before clipping, keyed like ``lr`` (``grad_norm``,
            ``grad_norm_<name>``).
    """

    loss: float
    terms: dict[str, float]
    lr: dict[str, float]
    grad_norm: dict[str, float]


def _by_optimizer(key: str, values: dict[str, float]) -> dict[str, float]:
    """``{key: v}`` for the single default optimizer, else ``{key_<name>: v}`` per optimizer."""
    if list(values) == ["model"]:
        return {key: values["model"]}
    return {f"{key}_{name}": v for name, v in values.items()}


def train(options: TrainOptions) -> TrainResult:
    """Run (or resume) training as ``options`` say; see :class:`TrainOptions`.

    Under torchrun every process calls this; rank 0 writes the files.

    Raises:
        ForesightError: Bad data, a foreign or missing checkpoint for ``--resume``, an existing
            run without ``--resume``, or a NaN/inf loss (the last good checkpoint is kept).
    """
    ctx = setup(options.device)
    try:
        return _Run(options, ctx).fit()
    finally:
        teardown(ctx)


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_differences(a, b, f"{name}."))
        elif a != b:
            out.append(name)
    return out


def _logged_step(line: str) -> float:
    """The step of a ``metrics.jsonl`` line; a line cut short by a kill counts as never logged."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


class _Run:
    """State of one training process."""

    def __init__(self, options: TrainOptions, ctx: DistContext) -> None:
        self.options = options
        self.ctx = ctx
        self.config = options.config
        self.tc = options.config.train
        self.out = options.out
        self.console = Console(stderr=True, quiet=not ctx.is_main)
        self.precision = pick_precision(self.tc.amp, ctx.device)
        self.last_saved: int | None = None
        self.best: dict[str, Any] = {}
        self.train_seconds = 0.0
        self.last_valid: dict[str, Any] | None = None

    # ---------------------------------------------------------------- files (rank 0 only)
    def _log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            with (self.out / METRICS).open("a") as f:
                f.write(json.dumps(record) + "\n")

    def _prepare_out(self, payload: dict[str, Any] | None) -> None:
        """Start the metrics log afresh, or cut it back to the checkpoint being resumed."""
        if not self.ctx.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        metrics = self.out / METRICS
        kept = ""
        if payload is not None and metrics.is_file():
            # Lines logged after the checkpoint belong to steps that will be run again.
            step = int(payload["step"])
            lines = metrics.read_text().splitlines()
            kept = "".join(line + "\n" for line in lines if _logged_step(line) <= step)
        atomic_write_text(metrics, kept)
        atomic_write_text(self.out / CONFIG, yaml.safe_dump(to_dict(self.config), sort_keys=False))

    def _check_out(self) -> dict[str, Any] | None:
        """The checkpoint to resume from (None for a fresh run), after checking it fits."""
        ckpt = self.out / CHECKPOINT
        if not self.options.resume:
            if ckpt.exists():
                raise ForesightError(
                    f"{self.out} already holds a training run ({ckpt}); pass --resume to "
                    "continue it or choose another --out"
                )
            return None
        if not ckpt.is_file():
            raise CheckpointError(
                f"--resume: {ckpt} does not exist; drop --resume to start a new run in {self.out}"
            )
        payload = read_checkpoint(ckpt, map_location="cpu")
        if payload["model"] != self.config.model:
            raise CheckpointError(
                f"--resume: {ckpt} holds model '{payload['model']}', not '{self.config.model}'; "
                "use the config it was trained with or choose another --out"
            )
        try:
            # Through the dataclass, so fields added since the checkpoint take their defaults.
            saved = to_dict(config_from_dict(payload["config"], f"checkpoint {ckpt}"))
        except ConfigError as err:
            raise CheckpointError(f"--resume: {err}; use the version that wrote it") from err
        changed = [
            k
            for k in config_differences(saved, to_dict(self.config))
            if k not in RESUMABLE_CHANGES and not k.startswith(RESUMABLE_PREFIXES)
        ]
        if changed:
            raise CheckpointError(
                f"--resume: {ckpt} was trained with a different config ({', '.join(changed)} "
                f"differ; see {self.out / CONFIG}); use that config or choose another --out"
            )
        if not ({"optimizer", "optimizers"} & set(payload)) or "step" not in payload:
            raise CheckpointError(f"--resume: {ckpt} lacks the training state; it cannot resume")
        return payload

    def _save(
        self, model: VideoModel, step: int, step_fn: TrainStep | None, position: tuple[int, int]
    ) -> None:
        """Write ``checkpoint.pt`` (every process takes part: RNG states are gathered)."""
        states = [rng_state()]
        if self.ctx.distributed:
            states = [None] * self.ctx.world_size
            dist.all_gather_object(states, rng_state())
        if self.ctx.is_main:
            extra: dict[str, Any] = {
                "step": step,
                "rng": states,
                "data": {"epoch": position[0], "batch": position[1]},
                "world_size": self.ctx.world_size,
                "best": self.best,
                "train_seconds": self.train_seconds,
                "dataset": str(self.options.data),
            }
            if step_fn is not None:
                extra.update(step_fn.opt.state_dict())
            save_checkpoint(self.out / CHECKPOINT, model, **extra)
        self.last_saved = step

    def _validate(
        self, model: VideoModel, vset: ValidationSet, step: int, train_loss: float | None
    ) -> dict[str, Any] | None:
        """Validate (rank 0), log, and update ``best.pt``; other ranks wait."""
        record = None
        if self.ctx.is_main:
            if vset.dataset is not None:
                record = validate(
                    model, vset, step, self.ctx.device, self.precision, self.out / SAMPLES
                )
                self._log(record)
                self.console.print(f"step {step}: valid " + _summary(record))
                key, higher = self.tc.best_metric, self.tc.best_mode == "max"
                value = record[key]
            else:
                key, value, higher = "train_loss", train_loss, False
            if value is not None and (
                not self.best
                or (value > self.best["value"] if higher else value < self.best["value"])
            ):
                self.best = {"metric": key, "value": value, "step": step}
                summary = {k: v for k, v in (record or {}).items() if not isinstance(v, list)}
                save_checkpoint(self.out / BEST, model, step=step, valid=summary, best=self.best)
        barrier(self.ctx)
        return record

    # ---------------------------------------------------------------- the run
    def fit(self) -> TrainResult:
        payload = self._check_out()
        self._prepare_out(payload)
        seed_everything(self.tc.seed)
        model = build_model(self.config).to(self.ctx.device)
        vset = make_validation_set(self.options.data, self.config)
        if vset.note:
            self.console.print(f"[yellow]note:[/] {vset.note}")
        if not type(model).trainable:
            return self._fit_untrainable(model, vset)
        dataset = SequenceDataset(
            self.options.data,
            length=self.config.window,
            split="train",
            image_size=self.config.image_size,
            frame_dtype=type(model).frame_dtype,
        )
        order = EpochBatches(
            dataset, self.tc.batch_size, self.tc.seed, self.ctx.rank, self.ctx.world_size
        )
        if order.per_epoch == 0:
            raise DataError(
                f"{self.options.data}: the train split has {len(dataset)} windows of "
                f"{self.config.window} frames, fewer than one batch per process "
                f"({self.tc.batch_size}); lower train.batch_size or collect more episodes"
            )
        if self.ctx.is_main:
            check_best_metric(model, vset, self.ctx.device)
        step_fn = TrainStep(model, self.precision, self.ctx)
        step, position = 0, (0, 0)
        if payload is not None:
            step, position = self._restore(payload, model, step_fn)
        else:
            # Each process draws its own training noise; the model init above is shared.
            seed_everything(derived_seed(self.tc.seed, self.ctx.rank))
        params = sum(p.numel() for p in model.parameters())
        self.console.print(
            f"training {self.config.model} ({params / 1e6:.2f}M parameters) on "
            f"{self.ctx.device} ({self.precision.name}) x {self.ctx.world_size} process(es): "
            f"{len(dataset)} train windows of {self.config.window} frames, "
            f"{order.per_epoch} batches of {self.tc.batch_size} per epoch and process"
            + (f", step {step} of {self.tc.max_steps}" if payload is not None else "")
        )
        try:
            step = self._loop(model, step_fn, order, dataset, vset, step, position)
        except KeyboardInterrupt:
            self.console.print(
                f"interrupted at step {step}: add --resume to the same command to continue "
                + (
                    f"from the checkpoint at step {self.last_saved}"
                    if self.last_saved is not None
                    else "(no checkpoint was written yet, so it starts over)"
                )
            )
            raise
        return self._result(step)

    def _result(self, step: int) -> TrainResult:
        # Ranks leave together: a rank that tears down the gloo group while rank 0 still
        # writes the last checkpoint was seen to abort (SIGABRT) in CI under load.
        barrier(self.ctx)
        return TrainResult(
            step, self.out / CHECKPOINT, self.out / BEST, self.last_valid, self.ctx.is_main
        )

    def _restore(
        self, payload: dict[str, Any], model: VideoModel, step_fn: TrainStep
    ) -> tuple[int, tuple[int, int]]:
        model.load_state_dict(payload["state_dict"])
        if "optimizers" in payload:
            state = {"optimizers": payload["optimizers"], "scalers": payload.get("scalers")}
        else:  # written before models owned their optimizers: one Adam, "model"
            state = {"optimizers": {"model": payload["optimizer"]}}
            state["scalers"] = {"model": payload["scaler"]} if payload.get("scaler") else {}
        try:
            step_fn.opt.load_state_dict(state)
        except ValueError as err:
            raise CheckpointError(f"--resume: {err}; it cannot resume this model") from err
        self.best = dict(payload.get("best") or {})
        self.train_seconds = float(payload.get("train_seconds", 0.0))
        self.last_saved = int(payload["step"])
        states = payload["rng"]
        if payload.get("world_size") != self.ctx.world_size:
            self.console.print(
                f"[yellow]note:[/] the checkpoint was written by {payload.get('world_size')} "
                f"process(es), this run has {self.ctx.world_size}: the data order and noise "
                "continue differently than an uninterrupted run would"
            )
        set_rng_state(states[self.ctx.rank % len(states)])
        return int(payload["step"]), (int(payload["data"]["epoch"]), int(payload["data"]["batch"]))

    def _fit_untrainable(self, model: VideoModel, vset: ValidationSet) -> TrainResult:
        self.console.print(f"{self.config.model} has nothing to train: validating it once")
        self.last_valid = self._validate(model, vset, 0, None)
        self._save(model, 0, None, (0, 0))
        if not (self.out / BEST).is_file() and self.ctx.is_main:
            save_checkpoint(self.out / BEST, model, step=0)
        return self._result(0)

    def _stream(
        self, dataset: SequenceDataset, order: EpochBatches, epoch: int, batch: int
    ) -> Iterator[tuple[tuple[int, int], dict[str, torch.Tensor]]]:
        """Batches forever from ``(epoch, batch)``, each with the position after it."""
        while True:
            loader = DataLoader(
                dataset,
                batch_sampler=order.epoch(epoch, batch),
                num_workers=self.tc.num_workers,
                pin_memory=self.ctx.device.type == "cuda",
                # Its own generator: a loader draws worker seeds when iterated, which must not
                # shift the global stream (a resumed run starts its loader mid-epoch).
                generator=torch.Generator().manual_seed(
                    derived_seed(self.tc.seed, self.ctx.rank, epoch)
                ),
            )
            for item in loader:
                batch += 1
                yield (epoch, batch), item
            epoch, batch = epoch + 1, 0

    def _loop(
        self,
        model: VideoModel,
        step_fn: TrainStep,
        order: EpochBatches,
        dataset: SequenceDataset,
        vset: ValidationSet,
        step: int,
        position: tuple[int, int],
    ) -> int:
        tc = self.tc
        limit = self.options.time_limit_s
        model.train()
        sums: dict[str, float] = {}
        interval_steps, interval_time = 0, 0.0
        show = self.ctx.is_main and self.options.progress
        progress = make_progress(self.console, TextColumn("loss {task.fields[loss]}"))
        with progress if show else contextlib.nullcontext():
            task = progress.add_task("training", total=tc.max_steps, completed=step, loss="-")
            stream = self._stream(dataset, order, *position)
            # A run resumed with its time already spent takes no further step.
            spent = limit is not None and broadcast_flag(self.ctx, self.train_seconds >= limit)
            while step < tc.max_steps and not spent:
                start = time.perf_counter()
                position, batch = next(stream)
                batch = {k: v.to(self.ctx.device, non_blocking=True) for k, v in batch.items()}
                try:
                    result = step_fn(batch, step)
                except NonFiniteLoss as err:
                    self._log({"step": step + 1, "split": "train", "event": "non_finite_loss"})
                    kept = (
                        f"the last good checkpoint {self.out / CHECKPOINT} (step "
                        f"{self.last_saved}) is kept"
                        if self.last_saved is not None
                        else "no checkpoint had been written yet"
                    )
                    raise ForesightError(
                        f"training stopped: the loss became {err.value} at step {step + 1}; "
                        f"{kept}. Lower train.lr or train.grad_clip, or raise "
                        "train.warmup_steps"
                    ) from None
                step += 1
                elapsed = time.perf_counter() - start
                interval_time += elapsed
                self.train_seconds += elapsed
                interval_steps += 1
                loss = result.loss
                for k, v in {"loss": loss, **result.terms, **result.grad_norm}.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                if show:
                    progress.update(task, completed=step, loss=f"{loss:.4f}")
                mean_loss = sums["loss"] / interval_steps
                # Rank 0's clock decides, so every process stops at the same step.
                out_of_time = limit is not None and broadcast_flag(
                    self.ctx, self.train_seconds >= limit
                )
                last = step == tc.max_steps or out_of_time
                if step % tc.log_every == 0 or last:
                    self._log(
                        {
                            "step": step,
                            "split": "train",
                            **{k: v / interval_steps for k, v in sums.items()},
                            **result.lr,
                            "seq_per_s": interval_steps
                            * tc.batch_size
                            * self.ctx.world_size
                            / max(interval_time, 1e-9),
                            "epoch": position[0],
                            "train_seconds": round(self.train_seconds, 3),
                        }
                    )
                    sums, interval_steps, interval_time = {}, 0, 0.0
                if step % tc.eval_every == 0 or last:
                    self.last_valid = self._validate(model, vset, step, mean_loss)
                    self._save(model, step, step_fn, position)
                if out_of_time:
                    self._log({"step": step, "split": "train", "event": "time_limit"})
                    if self.ctx.is_main:
                        self.console.print(
                            f"time limit: stopped at step {step} after "
                            f"{self.train_seconds:.0f} s of training"
                        )
                    break
        if self.last_saved != step:
            # Resumed at or past max_steps: nothing ran, but the run folder stays complete.
            self._save(model, step, step_fn, position)
        return step


def _summary(record: dict[str, Any]) -> str:
    """One console line of a validation record: rollout scores, else the model's measures."""
    if "psnr_mean" in record:
        return (
            f"psnr {record['psnr_mean']:.2f} (best of {record['num_samples']} "
            f"{record['psnr_best']:.2f}), ssim {record['ssim_mean']:.4f} "
            f"(best {record['ssim_best']:.4f})"
        )
    skip = {"step", "split", "sequences"}
    return ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in skip) or "no measures"

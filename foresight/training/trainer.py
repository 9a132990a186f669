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

import numpy as np
import torch
import torch.distributed as dist
import yaml
from rich.console import Console
from rich.progress import TextColumn
from torch.utils.data import DataLoader

from foresight.config import check_seed, to_dict
from foresight.data.dataset import SequenceDataset
from foresight.data.hdf5 import DemoFile
from foresight.errors import CheckpointError, ConfigError, DataError, ForesightError
from foresight.io import atomic_write_text
from foresight.models.base import ModelConfig, VideoModel
from foresight.models.checkpoint import (
    BEST,
    CHECKPOINT,
    check_weights,
    read_checkpoint,
    save_checkpoint,
)
from foresight.models.registry import (
    build_model,
    canonical_model,
    config_from_dict,
    model_class,
)
from foresight.progress import make_progress
from foresight.rundir import name_differences, settings_differences
from foresight.training.distributed import (
    DistContext,
    barrier,
    broadcast_flag,
    setup,
    teardown,
)
from foresight.training.interrupts import StepBoundary, interrupted_line
from foresight.training.optim import NonFiniteLoss, Optimization
from foresight.training.precision import Precision, kernel_settings, pick_precision
from foresight.training.resume import (
    BestScore,
    ResumePoint,
    TrainingState,
    optimizer_problem,
    scaler_problem,
)
from foresight.training.state import (
    EpochBatches,
    derived_seed,
    rng_state,
    seed_everything,
    set_rng_state,
)
from foresight.training.tracking import Tracker, check_trackers
from foresight.training.validation import (
    ValidationSet,
    ValidRecord,
    check_best_metric,
    make_validation_set,
    validate,
)

METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
SAMPLES = "samples"

#: Config entries that may differ when resuming (they do not change what a step computes);
#: the ``plan:`` budget is read only by planners, so any of its keys may change too.
RESUMABLE_CHANGES = frozenset(
    {
        "train.max_steps",
        "train.log_every",
        "train.log",
        "train.num_workers",
        "train.data_memory_gb",
        "checkpoint_blocks",  # the VPN's activation checkpointing: the same loss and gradients
    }
)
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
        allow_other_data: With ``resume``, continue on ``data`` even when it is not the
            dataset the checkpoint was trained on (its data order then starts afresh).
    """

    config: ModelConfig
    data: Path
    out: Path
    device: str = "auto"
    resume: bool = False
    progress: bool = True
    time_limit_s: float | None = None
    allow_other_data: bool = False


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run left things.

    Attributes:
        step: Optimisation steps taken in total.
        checkpoint: The latest checkpoint.
        best: The best checkpoint so far.
        valid: The last validation record (None if validation was skipped).
        main: True in the process that wrote the files (rank 0).
        best_score: What picked ``best`` (None if nothing was scored).
    """

    step: int
    checkpoint: Path
    best: Path
    valid: ValidRecord | None
    main: bool = True
    best_score: BestScore | None = None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`, after the trainer said where it stopped and how to go on."""


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
        changes["seed"] = check_seed(seed)
    try:
        return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))
    except ValueError as err:  # the config's own range checks
        raise ConfigError(str(err)) from err


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
        self.model = model.use_memory_format()
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
        with kernel_settings(ctx.device, options.config.train.deterministic):
            return _Run(options, ctx).fit()
    finally:
        teardown(ctx)


def _logged_step(line: str) -> float:
    """The step of a ``metrics.jsonl`` line; a line cut short by a kill counts as never logged."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


#: The dataset fingerprint's fields (:meth:`DemoFile.fingerprint`), in a user's words.
FINGERPRINT_WORDS = {
    "episodes": "episode count",
    "steps": "step count",
    "image_size": "frame size",
    "train": "train split",
    "valid": "valid split",
    "attrs": "collection settings",
}


def _describe_data(fingerprint: dict[str, Any]) -> str:
    return (
        f"{fingerprint.get('episodes', '?')} episodes, {fingerprint.get('steps', '?')} steps, "
        f"{fingerprint.get('image_size', '?')} px frames"
    )


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
        self.best: BestScore | None = None
        self.train_seconds = 0.0
        self.last_valid: ValidRecord | None = None
        #: Steps taken so far (what an interruption reports); None until the loop starts.
        self.step: int | None = None
        #: The (step, data position) the model, optimizer and RNG stand at, between steps;
        #: None in the middle of one (an interruption then saves nothing).
        self.resting: tuple[int, tuple[int, int]] | None = None
        self.resumed = False
        self.fingerprint: dict[str, Any] = {}
        self.env_args: dict[str, Any] = {}
        self.other_data = False
        self.tracker_classes = check_trackers(self.tc.log)
        self.trackers: list[Tracker] = []

    # ---------------------------------------------------------------- files (rank 0 only)
    def _log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            with (self.out / METRICS).open("a") as f:
                f.write(json.dumps(record) + "\n")
            for tracker in self.trackers:
                tracker.log(record)

    def _log_image(self, step: int, image: np.ndarray) -> None:
        for tracker in self.trackers:
            tracker.image(step, "valid/samples", image)

    def _open_trackers(self, resume: ResumePoint | None) -> None:
        """Open ``train.log``'s trackers (rank 0), once the run folder is ready."""
        if not self.ctx.is_main:
            return
        resume_step = None if resume is None else resume.state.step
        config = to_dict(self.config)
        for cls in self.tracker_classes:
            self.trackers.append(cls(self.out, config, resume_step))

    def _close_trackers(self) -> None:
        while self.trackers:
            self.trackers.pop().close()

    def _prepare_out(self, resume: ResumePoint | None) -> None:
        """Start the metrics log afresh, or cut it back to the checkpoint being resumed."""
        if not self.ctx.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        metrics = self.out / METRICS
        kept = ""
        if resume is not None and metrics.is_file():
            # Lines logged after the checkpoint belong to steps that will be run again.
            step = resume.state.step
            lines = metrics.read_text().splitlines()
            kept = "".join(line + "\n" for line in lines if _logged_step(line) <= step)
        atomic_write_text(metrics, kept)
        atomic_write_text(self.out / CONFIG, yaml.safe_dump(to_dict(self.config), sort_keys=False))

    def _check_out(self) -> ResumePoint | None:
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
        if canonical_model(payload["model"]) != self.config.model:
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
            for k in settings_differences(saved, to_dict(self.config))
            if k not in RESUMABLE_CHANGES and not k.startswith(RESUMABLE_PREFIXES)
        ]
        if changed:
            raise CheckpointError(
                f"--resume: {ckpt} was trained with a different config "
                f"({name_differences(changed)} differ; see {self.out / CONFIG}); use that config "
                "or choose another --out"
            )
        state = TrainingState.from_payload(payload, f"--resume: {ckpt}")
        return ResumePoint(payload["state_dict"], state)

    def _check_data(self, resume: ResumePoint | None) -> None:
        """Validate the dataset, check it fits the model and, on resume, the checkpoint."""
        data = self.options.data
        with DemoFile(data) as f:  # validates every episode, once for the whole run
            self.fingerprint = f.fingerprint()
            # Recorded in checkpoints, so planning knows which env the model has seen.
            self.env_args = f.env_args
            # One model action is frame_skip env actions.
            dims = {"action_dim": f.action_dim * self.config.frame_skip, "state_dim": f.state_dim}
            if not f.split("train") and model_class(self.config.model).trainable:
                raise DataError(
                    f"{data}: mask/train lists no episodes, so there is nothing to train on; "
                    "re-create it with 'foresight collect' and a smaller --valid-fraction"
                )
        for key, size in dims.items():
            if getattr(self.config, key) != size:
                skip = self.config.frame_skip
                has = (
                    f"{size} ({size // skip} x frame_skip {skip})"
                    if key == "action_dim" and skip > 1
                    else size
                )
                raise ConfigError(
                    f"{self.config.model} is configured with {key} {getattr(self.config, key)}, "
                    f"but {data} has {has}; set {key}: {size} in the model config"
                )
        if resume is None:
            return
        ckpt = self.out / CHECKPOINT
        saved, saved_path = resume.state.dataset_fingerprint, resume.state.dataset
        if saved is None:
            self.console.print(
                f"[yellow]note:[/] {ckpt} does not record which dataset it was trained on "
                f"(written by an older foresight; its --data was {saved_path}): make sure "
                f"{data} is that dataset"
            )
            return
        differ = [k for k in FINGERPRINT_WORDS if saved.get(k) != self.fingerprint.get(k)]
        differ += sorted(
            k
            for k in set(saved) | set(self.fingerprint)
            if k not in FINGERPRINT_WORDS and saved.get(k) != self.fingerprint.get(k)
        )
        if not differ:
            return
        what = ", ".join(FINGERPRINT_WORDS.get(k, k) for k in differ)
        if not self.options.allow_other_data:
            raise CheckpointError(
                f"--resume: {ckpt} was trained on {saved_path} ({_describe_data(saved)}), but "
                f"--data {data} is another dataset ({_describe_data(self.fingerprint)}; {what} "
                "differ); pass the dataset it was trained on, or add --allow-other-data to "
                "continue on this one"
            )
        self.other_data = True
        self.console.print(
            f"[yellow]note:[/] --allow-other-data: continuing on {data}, not {saved_path} "
            f"which {ckpt} was trained on ({what} differ); its data order starts afresh"
        )

    def _save(
        self, model: VideoModel, step: int, step_fn: TrainStep | None, position: tuple[int, int]
    ) -> None:
        """Write ``checkpoint.pt`` (every process takes part: RNG states are gathered)."""
        states = [rng_state()]
        if self.ctx.distributed:
            states = [None] * self.ctx.world_size
            dist.all_gather_object(states, rng_state())
        if self.ctx.is_main:
            optim = step_fn.opt.state_dict() if step_fn is not None else {}
            state = TrainingState(
                step=step,
                epoch=position[0],
                batch=position[1],
                rng=states,
                world_size=self.ctx.world_size,
                train_seconds=self.train_seconds,
                best=self.best,
                optimizers=optim.get("optimizers"),
                scalers=optim.get("scalers", {}),
                dataset=str(self.options.data),
                dataset_fingerprint=self.fingerprint,
            )
            save_checkpoint(self.out / CHECKPOINT, model, **state.payload(), env_args=self.env_args)
        self.last_saved = step

    def _validate(
        self, model: VideoModel, vset: ValidationSet, step: int, train_loss: float | None
    ) -> ValidRecord | None:
        """Validate (rank 0), log, and update ``best.pt``; other ranks wait."""
        record = None
        if self.ctx.is_main:
            if vset.dataset is not None:
                record = validate(
                    model,
                    vset,
                    step,
                    self.ctx.device,
                    self.precision,
                    self.out / SAMPLES,
                    on_strip=lambda image: self._log_image(step, image),
                )
                self._log(record.line())
                self.console.print(f"step {step}: valid {record.describe()}")
                key, higher = self.tc.best_metric, self.tc.best_mode == "max"
                value = record.measures[key]
            else:
                key, value, higher = "train_loss", train_loss, False
            if value is not None and (self.best is None or self.best.beaten_by(value, higher)):
                self.best = BestScore(key, value, step)
                save_checkpoint(
                    self.out / BEST,
                    model,
                    step=step,
                    valid=record.line(per_step=False) if record else {},
                    best=to_dict(self.best),
                    env_args=self.env_args,
                )
        barrier(self.ctx)
        return record

    # ---------------------------------------------------------------- the run
    def fit(self) -> TrainResult:
        try:
            return self._fit()
        except KeyboardInterrupt:
            self.console.print(interrupted_line(self.step, self.last_saved, self.resumed))
            raise TrainingInterrupted() from None
        finally:
            self._close_trackers()

    def _fit(self) -> TrainResult:
        # Everything that can be refused (checkpoint, dataset, model, optimizer state) is
        # checked before _prepare_out touches the run folder.
        resume = self._check_out()
        self.resumed = resume is not None
        self._check_data(resume)
        seed_everything(self.tc.seed)
        model = build_model(self.config).to(self.ctx.device)
        if self.ctx.distributed and self.ctx.device.type == "cuda":
            # Every rank normalises with the whole step's batch statistics, so the running
            # statistics rank 0 saves are the model's, not one shard's (SyncBatchNorm needs
            # CUDA: under gloo on CPU each rank keeps its own, and rank 0's are saved).
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        vset = make_validation_set(self.options.data, self.config)
        if vset.note:
            self.console.print(f"[yellow]note:[/] {vset.note}")
        if not type(model).trainable:
            self._prepare_out(resume)
            self._open_trackers(resume)
            return self._fit_untrainable(model, vset)
        dataset = SequenceDataset(
            self.options.data,
            length=self.config.window,
            split="train",
            image_size=self.config.image_size,
            frame_dtype=type(model).frame_dtype,
            validate=False,  # _check_data has just validated the file
            memory_bytes=int(self.tc.data_memory_gb * 2**30),
            frame_skip=self.config.frame_skip,
        )
        per_process = self._per_process_batch()
        order = EpochBatches(dataset, per_process, self.tc.seed, self.ctx.rank, self.ctx.world_size)
        if order.per_epoch == 0:
            raise DataError(
                f"{self.options.data}: the train split has {len(dataset)} windows of "
                f"{self.config.window} frames, fewer than one batch of {self.tc.batch_size}; "
                "lower train.batch_size or collect more episodes"
            )
        if self.ctx.is_main:
            check_best_metric(model, vset, self.ctx.device)
        step_fn = TrainStep(model, self.precision, self.ctx)
        step, position = 0, (0, 0)
        if resume is not None:
            step, position = self._restore(resume, model, step_fn, order)
        else:
            # Each process draws its own training noise; the model init above is shared.
            seed_everything(derived_seed(self.tc.seed, self.ctx.rank))
        self._prepare_out(resume)
        self._open_trackers(resume)
        params = sum(p.numel() for p in model.parameters())
        split = (
            f"in memory, {dataset.memory_used / 2**20:.0f} MiB"
            if dataset.memory_used
            else "read from the file"
        )
        self.console.print(
            f"training {self.config.model} ({params / 1e6:.2f}M parameters) on "
            f"{self.ctx.device} ({self.precision.name}) x {self.ctx.world_size} process(es)"
            + (f" ({dist.get_backend()})" if self.ctx.distributed else "")
            + ": "
            f"{len(dataset)} train windows of {self.config.window} frames ({split}), "
            f"{order.per_epoch} batches of {self.tc.batch_size} per epoch"
            + (f" ({per_process} per process)" if self.ctx.distributed else "")
            + (f", step {step} of {self.tc.max_steps}" if resume is not None else "")
        )
        step = self._loop(model, step_fn, order, dataset, vset, step, position)
        return self._result(step)

    def _per_process_batch(self) -> int:
        """This process's share of ``train.batch_size`` (the batch of the whole step)."""
        size, world = self.tc.batch_size, self.ctx.world_size
        if size % world:
            raise ConfigError(
                f"train.batch_size {size} is the batch of a whole step and must split evenly "
                f"over the {world} processes; use a multiple of {world} or another process count"
            )
        return size // world

    def _result(self, step: int) -> TrainResult:
        # Ranks leave together: a rank that tears down the gloo group while rank 0 still
        # writes the last checkpoint was seen to abort (SIGABRT) in CI under load.
        barrier(self.ctx)
        return TrainResult(
            step,
            self.out / CHECKPOINT,
            self.out / BEST,
            self.last_valid,
            self.ctx.is_main,
            self.best,
        )

    def _restore(
        self, resume: ResumePoint, model: VideoModel, step_fn: TrainStep, order: EpochBatches
    ) -> tuple[int, tuple[int, int]]:
        """Load weights, optimizer state, generators and data position (all checked first)."""
        source = f"--resume: {self.out / CHECKPOINT}"
        saved = resume.state
        check_weights(model, resume.weights, source)
        state = {"optimizers": saved.optimizers or {}, "scalers": saved.scalers}
        specs = step_fn.opt.specs
        if set(state["optimizers"]) != set(specs):
            raise CheckpointError(
                f"{source} has optimizers {sorted(state['optimizers'])}, the model "
                f"{sorted(specs)}; it cannot resume this model"
            )
        for name, spec in specs.items():
            problem = optimizer_problem(state["optimizers"][name], spec.optimizer)
            if problem is None:
                problem = scaler_problem(state["scalers"].get(name))
            if problem is not None:
                raise CheckpointError(
                    f"{source}: the state of optimizer '{name}' {problem}; the file is damaged "
                    "or from another model, so it cannot resume"
                )
        same_world = saved.world_size == self.ctx.world_size
        epoch, batch = saved.epoch, saved.batch
        if self.other_data:
            # The saved position counts batches of another file's windows: start an epoch.
            epoch, batch = epoch + 1, 0
        elif same_world and batch > order.per_epoch:
            raise CheckpointError(
                f"{source}: its data position (batch {batch} of epoch {epoch}) is past the "
                f"{order.per_epoch} batches of an epoch of {self.options.data}; the file is "
                "damaged or the dataset changed, so it cannot resume"
            )
        try:
            model.load_state_dict(resume.weights)
            step_fn.opt.load_state_dict(state)
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            text = str(err).strip()
            detail = text.splitlines()[0][:200] if text else type(err).__name__
            raise CheckpointError(
                f"{source}: its weights or optimizer state do not fit this model ({detail}); "
                "it cannot resume"
            ) from err
        self.best = saved.best
        self.train_seconds = saved.train_seconds
        self.last_saved = saved.step
        states = saved.rng
        if not same_world:
            self.console.print(
                f"[yellow]note:[/] the checkpoint was written by {saved.world_size} "
                f"process(es), this run has {self.ctx.world_size}: the data order and noise "
                "continue differently than an uninterrupted run would"
            )
        set_rng_state(states[self.ctx.rank % len(states)])
        return saved.step, (epoch, batch)

    def _fit_untrainable(self, model: VideoModel, vset: ValidationSet) -> TrainResult:
        self.console.print(f"{self.config.model} has nothing to train: validating it once")
        self.last_valid = self._validate(model, vset, 0, None)
        self._save(model, 0, None, (0, 0))
        if not (self.out / BEST).is_file() and self.ctx.is_main:
            save_checkpoint(self.out / BEST, model, step=0, env_args=self.env_args)
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
        model.train()
        show = self.ctx.is_main and self.options.progress
        progress = make_progress(self.console, TextColumn("loss {task.fields[loss]}"))
        self.step = step
        with progress if show else contextlib.nullcontext(), StepBoundary() as boundary:
            task = progress.add_task("training", total=self.tc.max_steps, completed=step, loss="-")
            stream = self._stream(dataset, order, *position)
            bar = (progress, task) if show else None
            try:
                self._steps(model, step_fn, vset, step, position, stream, bar, boundary)
            except KeyboardInterrupt:
                self._save_interrupted(model, step_fn)
                raise
        # Where the steps stopped (no step is in flight once _steps has returned).
        step, position = self.resting or (step, position)
        if self.last_saved != step:
            # Resumed at or past max_steps: nothing ran, but the run folder stays complete.
            self._save(model, step, step_fn, position)
        return step

    def _save_interrupted(self, model: VideoModel, step_fn: TrainStep) -> None:
        """On Ctrl-C (or SIGTERM): save the last finished step, so ``--resume`` loses nothing.

        Only between steps (``self.resting``), never in the middle of one or of a validation
        (the weights, optimizer and RNG then match no step), and only in a single process
        (the ranks of a distributed run stand at different places and cannot save together).
        """
        if self.resting is None or self.ctx.distributed:
            return
        step, position = self.resting
        if step != self.last_saved:
            self._save(model, step, step_fn, position)

    def _steps(
        self,
        model: VideoModel,
        step_fn: TrainStep,
        vset: ValidationSet,
        step: int,
        position: tuple[int, int],
        stream: Iterator[tuple[tuple[int, int], dict[str, torch.Tensor]]],
        bar: tuple[Any, Any] | None,
        boundary: StepBoundary,
    ) -> None:
        """Training steps until ``max_steps`` or the time limit (where: ``self.resting``).

        ``bar`` is the progress bar and its task (None: not shown). An interrupt during a step
        is held until the step is done (``boundary``; not in a distributed run), so that the
        step can be saved; one during a validation is not.
        """
        tc = self.tc
        limit = self.options.time_limit_s
        sums: dict[str, float] = {}
        interval_steps, interval_time = 0, 0.0
        self.resting = (step, position)
        # A run resumed with its time already spent takes no further step.
        spent = limit is not None and broadcast_flag(self.ctx, self.train_seconds >= limit)
        while step < tc.max_steps and not spent:
            # From here until the step's bookkeeping is done, the model, optimizer, RNG
            # and data position match no step: an interrupt saves nothing.
            self.resting = None
            boundary.holding = not self.ctx.distributed
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
            self.step = step
            elapsed = time.perf_counter() - start
            interval_time += elapsed
            self.train_seconds += elapsed
            self.resting = (step, position)
            interval_steps += 1
            loss = result.loss
            for k, v in {"loss": loss, **result.terms, **result.grad_norm}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if bar is not None:
                bar[0].update(bar[1], completed=step, loss=f"{loss:.4f}")
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
                        "seq_per_s": interval_steps * tc.batch_size / max(interval_time, 1e-9),
                        "epoch": position[0],
                        "train_seconds": round(self.train_seconds, 3),
                    }
                )
                sums, interval_steps, interval_time = {}, 0, 0.0
            boundary.check()  # the step and its log line are done: an interrupt held stops here
            if step % tc.eval_every == 0 or last:
                # Validation may draw random numbers: saved halfway, a resumed run would
                # go on from another RNG state than this one does.
                self.resting = None
                self.last_valid = self._validate(model, vset, step, mean_loss)
                self._save(model, step, step_fn, position)
                self.resting = (step, position)
            if out_of_time:
                self._log({"step": step, "split": "train", "event": "time_limit"})
                if self.ctx.is_main:
                    self.console.print(
                        f"time limit: stopped at step {step} after "
                        f"{self.train_seconds:.0f} s of training"
                    )
                break

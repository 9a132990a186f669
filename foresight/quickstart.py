"""``foresight quickstart``: the whole loop in one command, resumable stage by stage.

collect -> train each model -> evaluate models and baselines on a task suite -> report.
Every stage leaves its result in ``DIR`` and is skipped (or resumed) when run again, so an
interrupted quickstart continues where it stopped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from foresight.config import load_config, resolve_config
from foresight.data.collect import collect_dataset
from foresight.errors import ConfigError, ForesightError
from foresight.evaluation import evaluate
from foresight.models import load_model_config
from foresight.parallel import LOCAL, Backend
from foresight.progress import make_progress
from foresight.report import build_report
from foresight.results import EvaluateOptions, Evaluation
from foresight.training import TrainOptions, train, with_overrides


@dataclass(frozen=True)
class QuickstartConfig:
    """What the quickstart runs (``configs/quickstart/<name>.yaml``).

    Attributes:
        episodes: Episodes to collect.
        steps: Actions per episode.
        image_size: Frame size on disk.
        collect_workers: Collection processes.
        models: Model presets or YAML paths to train and evaluate (a relative path is read
            next to the quickstart file when it is there); each is labelled by its preset or
            file name.
        max_steps: Training steps per model (None: each config's own).
        baselines: Evaluated without training: ``oracle``, ``random``, ``zero``, ``copy_last``.
        evaluate: How every model and baseline is evaluated (the options of
            ``foresight evaluate``; ``future`` None: the shortest ``eval_future_frames`` of
            the trained models, so their per-step curves line up).
    """

    episodes: int = 2000
    steps: int = 30
    image_size: int = 64
    collect_workers: int = 2
    models: tuple[str, ...] = ("vrnn_fast",)
    max_steps: int | None = None
    baselines: tuple[str, ...] = ("oracle", "random", "copy_last")
    evaluate: EvaluateOptions = field(default_factory=EvaluateOptions)

    def __post_init__(self) -> None:
        # Checked here, not by the stage that uses a value: a bad max_steps must not
        # surface only after the collection has run.
        for key in ("episodes", "steps", "collect_workers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"'{key}' must be at least 1, got {getattr(self, key)}")
        if self.image_size < 8:
            raise ConfigError(f"'image_size' must be at least 8, got {self.image_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"'max_steps' must be at least 1 (or null), got {self.max_steps}")
        if not self.models and not self.baselines:
            raise ConfigError("'models' and 'baselines' are both empty: nothing to evaluate")


class Quickstart:
    """The quickstart's stages over one output folder.

    Args:
        out: Output folder (data, training runs, evaluations, report).
        config: What to run.
        device: ``auto``, ``cpu`` or ``cuda``.
        backend: Where collection and planning episodes run.
    """

    def __init__(
        self, out: Path, config: QuickstartConfig, device: str = "auto", backend: Backend = LOCAL
    ) -> None:
        self.out = out
        self.cfg = config
        self.device = device
        self.backend = backend
        self.console = Console(stderr=True)
        self.data = out / "data.h5"

    def run(self) -> Path:
        """Run every stage (skipping finished ones); return the report's HTML path."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.collect()
        trained = [self.train(name) for name in self.cfg.models]
        runs = [(ckpt, label) for ckpt, label, _ in trained]
        runs += [(name, name) for name in self.cfg.baselines]
        # Every model predicts the same number of frames, so per-step curves line up.
        future = min((f for _, _, f in trained), default=None)
        evaluated = [self.evaluate(model, label, future) for model, label in runs]
        self._stage("report")
        html_path, md_path = build_report(evaluated, self.out / "report")
        self.console.print(f"report: {html_path} (and {md_path})")
        return html_path

    def _stage(self, title: str) -> None:
        self.console.rule(f"[bold]quickstart: {title}")

    def collect(self) -> None:
        """Collect the dataset (resumable).

        A complete file made with the same settings is kept; other settings are a one-line
        error rather than a silently reused dataset.
        """
        from foresight.envs import load_env

        cfg = self.cfg
        self._stage(f"collect {cfg.episodes} episodes -> {self.data}")
        collect_dataset(
            self.data,
            cfg.episodes,
            load_env("push", {"image_size": cfg.image_size}),
            steps=cfg.steps,
            workers=cfg.collect_workers,
            console=self.console,
            backend=self.backend,
        )

    def train(self, name: str) -> tuple[str, str, int]:
        """Train (or resume) one model; return its checkpoint, label and evaluation horizon."""
        config = with_overrides(load_model_config(name), self.cfg.max_steps, None)
        # Named after the preset (or YAML file): two presets of one model family can both run.
        label = Path(name).stem
        run_dir = self.out / "train" / label
        self._stage(f"train {label} for {config.train.max_steps} steps -> {run_dir}")
        resume = (run_dir / "checkpoint.pt").exists()
        result = train(TrainOptions(config, self.data, run_dir, self.device, resume, True))
        return str(result.checkpoint), label, config.eval_future_frames

    def evaluate(self, model: str, label: str, future: int | None) -> Path:
        """Evaluate one model or baseline (planning resumes; finished ones are skipped)."""
        options = self.cfg.evaluate
        if options.future is None:
            options = dataclasses.replace(options, future=future)
        run_dir = self.out / "eval" / label
        n = options.episodes
        tasks = f"{n} '{options.suite}'" if n else f"the '{options.suite}' suite's"
        self._stage(f"evaluate {label} on {tasks} tasks -> {run_dir}")
        if self._evaluated(run_dir, label, options):
            self.console.print("already evaluated: skipped")
            return run_dir
        # An evaluation made with other options is replaced (its planning too); an
        # interrupted one (no evaluation.json yet) resumes its planning.
        redo = (run_dir / "evaluation.json").exists()
        with make_progress(self.console) as progress:
            evaluate(
                model, run_dir, data=self.data, options=options, device=self.device,
                label=label, progress=progress, overwrite=redo, backend=self.backend,
            )  # fmt: skip
        return run_dir

    def _evaluated(self, run_dir: Path, label: str, options: EvaluateOptions) -> bool:
        """Whether ``run_dir`` holds this evaluation, finished (else it is made again)."""
        if not (run_dir / "evaluation.json").exists():
            return False
        try:
            done = Evaluation.load(run_dir)
        except ForesightError as err:
            self.console.print(f"{err}: evaluating again", soft_wrap=True, highlight=False)
            return False
        if done.label != label or done.options != options:
            self.console.print("evaluated with other options (or by an older foresight): again")
            return False
        return True


def _beside(config_file: Path, model: str) -> str:
    """A relative model YAML path, read next to ``config_file`` when a file is there."""
    candidate = config_file.parent / model
    if model.endswith((".yaml", ".yml")) and candidate.is_file():
        return str(candidate)
    return model


def run_quickstart(
    out: Path, preset: str = "default", device: str = "auto", backend: Backend = LOCAL
) -> Path:
    """Run (or resume) the quickstart preset ``preset`` into ``out``.

    ``backend``: where collection and planning episodes run (:mod:`foresight.parallel`).
    """
    path = resolve_config(preset, "quickstart")
    config = load_config(QuickstartConfig, path, kind="quickstart")
    models = tuple(_beside(path, m) for m in config.models)
    for model in models:  # every model config is checked before the first stage runs
        with_overrides(load_model_config(model), config.max_steps, None)
    from foresight.models import untrained_models
    from foresight.planners.suite import NAMED_POLICIES

    known = (*NAMED_POLICIES, *untrained_models())
    unknown = [b for b in config.baselines if b not in known]
    if unknown:
        raise ConfigError(
            f"{path}: unknown baseline '{unknown[0]}' (baselines: {', '.join(known)})"
        )
    return Quickstart(out, dataclasses.replace(config, models=models), device, backend).run()

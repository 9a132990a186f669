"""What ``foresight evaluate`` takes and writes: its options and ``evaluation.json``'s schema.

* :class:`EvaluateOptions`: every option of ``foresight evaluate`` (and of the quickstart's
  ``evaluate:`` block), with its default and help text; the CLI flags are generated from it.
* :class:`Evaluation`: the content of ``RUN_DIR/evaluation.json``, written by
  :func:`foresight.evaluation.evaluate` and read by ``foresight report`` and the quickstart.
* :class:`EffectiveBudget`: the planner budget a planning run used (also in the
  ``summary.json`` of ``foresight plan``).
* :class:`PlanSummary`: the content of a planning run's ``RUN_DIR/summary.json``, written by
  :func:`foresight.planners.suite.run_suite` and read into an evaluation's ``control``.

``evaluation.json`` is strict JSON: a measured number that is not finite (a PSNR of
infinity where a prediction is exact, an FVD of NaN) is written as the string ``"nan"``,
``"inf"`` or ``"-inf"`` wherever the schema holds a float, and read back as that float. Files
written before (bare ``NaN``/``Infinity``, which Python's ``json`` reads) are read too.

This module imports no torch, so the CLI can build its parser from it cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foresight.config import OMIT_IF_NONE, from_dict, to_dict
from foresight.errors import ConfigError, ForesightError
from foresight.flags import option, overrides_field
from foresight.io import atomic_write_text

#: Written by this version.
EVALUATION_FORMAT = "foresight-evaluation/3"
#: Read by this version. Version 1 lacks ``options`` and ``control.budget`` (shown as not
#: recorded), version 2 the ``ranking`` block (not measured); every other key kept its name
#: and meaning, so each reads as it is.
READABLE_FORMATS = ("foresight-evaluation/1", "foresight-evaluation/2", EVALUATION_FORMAT)


@dataclass(frozen=True)
class EvaluateOptions:
    """How ``foresight evaluate`` judges a model.

    The run's identity (model, data, output folder, label, device) is given separately.

    Attributes:
        suite: Task suite preset or YAML.
        samples: N sampled futures per valid sequence.
        sequences: Valid sequences scored.
        future: Predicted frames per sequence (None: the model's ``eval_future_frames``).
        episodes: Suite episodes (None: the suite's).
        planner: Planner preset or YAML.
        planner_overrides: ``KEY=VALUE`` overrides of the planner config
            (``cost.mask=unmix``), checked like its YAML keys.
        workers: Parallel planning episodes.
        lpips_weights: LPIPS weights path (None: the search order of
            :mod:`foresight.perceptual`).
        i3d: Kinetics-400 I3D state dict for FVD (None: FVD n/a).
        seed: Seed of the prediction samples.
        control: Run the planning part.
        ranking_states: States of the open-loop ranking comparison (0: not measured).
    """

    suite: str = field(default="easy", metadata=option("task suite: easy, hard or a YAML path"))
    samples: int = field(default=3, metadata=option("N futures sampled per sequence"))
    sequences: int = field(default=64, metadata=option("valid sequences scored"))
    future: int | None = field(
        default=None,
        metadata=option(
            "predicted frames per sequence (default: the model's eval_future_frames); "
            "give every model the same value to compare them"
        ),
    )
    episodes: int | None = field(default=None, metadata=option("suite episodes (default: suite's)"))
    planner: str = field(
        default="cem", metadata=option("planner preset (cem, icem, fast, mppi) or YAML path")
    )
    planner_overrides: tuple[str, ...] = overrides_field(
        "the planner config", "cost.mask=unmix optimizer.samples=128", name="planner_overrides"
    )
    workers: int = field(default=1, metadata=option("parallel planning episodes"))
    lpips_weights: str | None = field(
        default=None,
        metadata=option(
            "AlexNet/LPIPS weights (else $FORESIGHT_LPIPS_WEIGHTS, else torch hub cache)"
        ),
    )
    i3d: str | None = field(
        default=None,
        metadata=option(
            "Kinetics-400 I3D state dict (pytorch-i3d names) for FVD; without it FVD is n/a"
        ),
    )
    seed: int = field(default=0, metadata=option("seed of the sampled futures"))
    control: bool = field(
        default=True, metadata=option("skip planning (prediction only)", flag="--no-control")
    )
    ranking_states: int = field(
        default=20,
        metadata=option(
            "states at which the model's order of the planner's candidates is compared "
            "with the simulator's (0: skip; --no-control skips it too)"
        ),
    )

    def __post_init__(self) -> None:
        for name in ("samples", "sequences", "future", "episodes", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{name} ({flag}) must be at least 1, got {value}")
        if self.ranking_states < 0:
            raise ConfigError(
                f"ranking_states (--ranking-states) must be 0 or more, got {self.ranking_states}"
            )


@dataclass(frozen=True)
class EffectiveBudget:
    """The planner budget a planning run used.

    The planner preset's values, with those the model's ``plan:`` block sets on top.

    Attributes:
        samples: Candidate action sequences per optimizer iteration.
        iterations: Optimizer iterations per planning step.
        batch_size: Sequences per model ``rollout`` call.
        num_samples: Futures imagined per candidate.
        from_model: The fields the model's config set (empty: all the planner preset's).
    """

    samples: int
    iterations: int
    batch_size: int
    num_samples: int
    from_model: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """``model`` when the model's config set any field, else ``preset``."""
        return "model" if self.from_model else "preset"

    def label(self) -> str:
        """Short display form: ``200 x 3 (preset)``; futures per candidate when above one."""
        text = f"{self.samples} x {self.iterations}"
        if self.num_samples > 1:
            text += f" x {self.num_samples} futures"
        return f"{text} ({self.source})"


#: Written into a planning run's ``summary.json`` by this version. Files written before the
#: format existed have no ``format`` key and the same fields (``ever_success_rate`` and
#: ``budget`` may be missing), so they read as they are.
PLAN_SUMMARY_FORMAT = "foresight-plan-summary/1"


@dataclass(frozen=True)
class KindSuccess:
    """Task success among the episodes of one kind of task (see ``ForesightEnv.task_kind``).

    Attributes:
        kind: The env's label of the kind, e.g. the target's shape.
        successes: Episodes of this kind whose success test held at the end.
        episodes: Episodes of this kind.
    """

    kind: str
    successes: int
    episodes: int


@dataclass(frozen=True, kw_only=True)
class PlanSummary:
    """``summary.json`` of a planning run: one policy's task success on a suite.

    Attributes:
        format: Schema version (:data:`PLAN_SUMMARY_FORMAT` when written by this version).
        success_rate: Share of episodes whose success test held at the end.
        successes: Those episodes.
        ever_success_rate: Share whose success test held at some step (None when an episode
            was recorded before this was).
        episodes: Episodes planned.
        mean_final_distance: Mean target-to-goal distance after the last step (the env's
            unit: metres on Push-v0).
        seconds_per_step: Mean wall time of a planning call.
        model_seconds_per_step: Of that, time inside the model.
        model: What planned (a named policy, or a checkpoint path).
        suite: Suite name.
        planner: Optimizer name (``none`` for a baseline that does not plan).
        cost: Cost name (``none`` likewise).
        horizon: Planning horizon (0 likewise).
        budget: The planner budget used (None: a baseline that does not plan).
        seed: Suite seed.
        by_kind: Success per kind of task, when the env labels its tasks and every episode
            has a label (None otherwise, and in files written before this was).
        tasks: The task ids counted, when a run chose them (``--tasks``); None: tasks
            ``0 .. episodes-1``.
    """

    format: str = PLAN_SUMMARY_FORMAT
    success_rate: float
    successes: int
    ever_success_rate: float | None = None
    episodes: int
    mean_final_distance: float
    seconds_per_step: float
    model_seconds_per_step: float
    model: str
    suite: str
    planner: str
    cost: str
    horizon: int
    budget: EffectiveBudget | None = None
    seed: int
    by_kind: tuple[KindSuccess, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    tasks: tuple[int, ...] | None = field(default=None, metadata=OMIT_IF_NONE)

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps(to_dict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "summary.json") -> PlanSummary:
        """Parse and check ``text``; any problem is a one-line :class:`ForesightError`."""
        again = "re-run 'foresight plan'"
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            raise ForesightError(f"{source} is not a planning summary ({err}); {again}") from err
        if not isinstance(data, dict):
            raise ForesightError(f"{source} is not a planning summary; {again}")
        fmt = data.setdefault("format", PLAN_SUMMARY_FORMAT)
        if fmt != PLAN_SUMMARY_FORMAT:
            raise ForesightError(
                f"{source} has format {fmt!r}, which this version of foresight does not read "
                f"({PLAN_SUMMARY_FORMAT}); {again} with this version"
            )
        try:
            return from_dict(cls, data, source)
        except ConfigError as err:
            raise ForesightError(f"{err}; the file is damaged or foreign, {again}") from err

    @classmethod
    def load(cls, path: Path) -> PlanSummary:
        """Read ``path`` (a planning run folder or its ``summary.json``); one-line errors."""
        path, text = _run_file_text(path, "summary.json", "plan")
        return cls.from_json(text, str(path))


@dataclass(frozen=True)
class MetricCurves:
    """One metric per future step, aggregated over the N sampled futures.

    Attributes:
        mean_of_n: The average over the samples, per step.
        best_of_n: Per sequence the sample whose score averaged over the future is best.
    """

    mean_of_n: tuple[float, ...]
    best_of_n: tuple[float, ...]


@dataclass(frozen=True)
class Fvd:
    """Fréchet Video Distance between the true and the sampled videos.

    Attributes:
        value: The distance.
        real_videos: True videos embedded.
        generated_videos: Sampled videos embedded.
        frames: Frames per video (context + predicted).
        note: How to read it.
    """

    value: float
    real_videos: int
    generated_videos: int
    frames: int
    note: str = ""


@dataclass(frozen=True)
class Prediction:
    """Prediction quality on the dataset's valid split.

    Attributes:
        reason: Why the whole block is n/a (a planner baseline, no data); None when measured.
        unavailable: Why single measures are n/a (``lpips``, ``fvd``).
        metrics: Curves per metric (``psnr``, ``ssim``, ``lpips``).
        fvd: FVD, when measured.
        protocol: How the numbers were made, in words.
        samples: N futures per sequence.
        sequences: Sequences scored.
        strip: Image of true vs sampled futures, relative to the run folder.
        strip_layout: How to read the strip.
    """

    reason: str | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, MetricCurves] = field(default_factory=dict)
    fvd: Fvd | None = None
    protocol: str | None = None
    samples: int | None = None
    sequences: int | None = None
    strip: str | None = None
    strip_layout: str | None = None

    def __post_init__(self) -> None:
        if self.reason is None and self.protocol is None:
            raise ValueError("'prediction' has neither metrics (a 'protocol') nor a 'reason'")
        # The loader copies these mappings as they are; a report formats them as text.
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.unavailable.items()):
            raise ValueError("'unavailable' must map metric names to reasons (strings)")
        if not all(isinstance(v, MetricCurves) for v in self.metrics.values()):
            raise ValueError("'metrics' must map metric names to mean_of_n/best_of_n curves")


@dataclass(frozen=True)
class Control:
    """Task success on a suite (the fields of the planning run's ``summary.json``).

    Attributes:
        unavailable: Why planning was not measured; None when measured.
        success_rate: Share of successful episodes.
        successes: Successful episodes.
        episodes: Episodes planned.
        ci95: 95% Wilson interval of the success rate.
        mean_final_distance: Target-to-goal distance after the last step (m).
        seconds_per_step: Mean wall time of a planning call.
        model_seconds_per_step: Of that, time inside the model.
        model: What planned (``oracle``, ``random``, ``zero`` or a checkpoint path).
        suite: Suite name.
        planner: Optimizer name (``none`` for baselines that do not plan).
        cost: Cost name.
        horizon: Planning horizon.
        seed: Suite seed.
        budget: The planner budget used (None: a baseline that does not plan, or a
            version-1 file).
        gifs: Episode GIFs, relative to the run folder.
    """

    unavailable: str | None = None
    success_rate: float | None = None
    successes: int | None = None
    episodes: int | None = None
    ci95: tuple[float, float] | None = None
    mean_final_distance: float | None = None
    seconds_per_step: float | None = None
    model_seconds_per_step: float | None = None
    model: str | None = None
    suite: str | None = None
    planner: str | None = None
    cost: str | None = None
    horizon: int | None = None
    seed: int | None = None
    budget: EffectiveBudget | None = None
    gifs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        required = ("success_rate", "successes", "episodes", "ci95", "mean_final_distance")
        missing = [k for k in required if getattr(self, k) is None]
        if self.unavailable is None and missing:
            raise ValueError(f"'control' lacks {', '.join(missing)} and gives no 'unavailable'")


@dataclass(frozen=True)
class Ranking:
    """How the model orders the planner's candidates beside the simulator (open-loop).

    See :mod:`foresight.planners.ranking`; each value is the mean over states.

    Attributes:
        unavailable: Why it was not measured; None when measured.
        rho: Spearman's correlation of the model's candidate costs with the simulator's.
        elite_overlap: Share of the simulator's best ``elites`` among the model's.
        regret: The simulator's cost of the model's pick above the best, per the costs'
            spread (median minus best): 0 is the best pick, 1 a median one.
        states: States compared.
        candidates: Candidates scored per state.
        elites: The ``k`` of ``elite_overlap``.
        suite: Suite whose tasks gave the states.
        seed: Seed of the states' exploration steps and of the candidates.
    """

    unavailable: str | None = None
    rho: float | None = None
    elite_overlap: float | None = None
    regret: float | None = None
    states: int | None = None
    candidates: int | None = None
    elites: int | None = None
    suite: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.unavailable is None and self.states is None:
            raise ValueError("'ranking' has neither 'states' nor an 'unavailable' reason")


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """``evaluation.json``: one model judged by task success and prediction metrics.

    Attributes:
        format: Schema version (:data:`EVALUATION_FORMAT` when written by this version).
        label: Display name in reports.
        model: Model name, or the planner baseline's.
        checkpoint: The checkpoint planned with (None for planner baselines).
        options: What was asked (None in version-1 files).
        prediction: Prediction quality.
        control: Task success.
        ranking: How the model orders the planner's candidates beside the simulator (None in
            files from before it was measured).
    """

    format: str = EVALUATION_FORMAT
    label: str
    model: str
    checkpoint: str | None = None
    options: EvaluateOptions | None = None
    prediction: Prediction
    control: Control
    ranking: Ranking | None = None

    def to_json(self) -> str:
        """The file's text (strict JSON); fields that are None are left out."""
        return json.dumps(_plain(self), indent=1, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "evaluation.json") -> Evaluation:
        """Parse and check ``text``; any problem is a one-line :class:`ForesightError`."""
        again = "re-run 'foresight evaluate'"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ForesightError(f"{source} is not valid JSON ({err}); {again}") from err
        except RecursionError as err:
            raise ForesightError(f"{source} is nested too deeply to be an evaluation") from err
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt not in READABLE_FORMATS:
            if isinstance(fmt, str) and fmt.startswith("foresight-evaluation/"):
                raise ForesightError(
                    f"{source} has format {fmt}, which this version of foresight does not "
                    f"read ({', '.join(READABLE_FORMATS)}); {again} with this version"
                )
            raise ForesightError(
                f"{source} is not a foresight evaluation ({EVALUATION_FORMAT} expected)"
            )
        try:
            # The config loader refuses non-finite floats (no setting means anything at NaN),
            # but a measurement may be NaN: set those aside and put them back once checked.
            found: dict[tuple[Any, ...], float] = {}
            data = _set_aside_non_finite(cls, data, (), found)
            pred = data.get("prediction")
            if isinstance(pred, dict) and isinstance(pred.get("metrics"), dict):
                # from_dict copies dict values as they are: build the curves here.
                metrics = {
                    str(name): _curves(curves, f"{source}: metric '{name}'")
                    for name, curves in pred["metrics"].items()
                }
                data["prediction"] = {**pred, "metrics": metrics}
            result = from_dict(cls, data, source)
            for path, number in found.items():
                result = _put_back(result, path, number)
        except ConfigError as err:
            raise ForesightError(f"{err}; the file is damaged or foreign, {again}") from err
        return result

    def save(self, path: Path) -> None:
        """Write to ``path`` atomically (readers never see half a file)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Evaluation:
        """Read ``path`` (a run folder or its ``evaluation.json``); one-line errors."""
        path, text = _run_file_text(path, "evaluation.json", "evaluate")
        return cls.from_json(text, str(path))


def _run_file_text(path: Path, name: str, verb: str) -> tuple[Path, str]:
    """The file ``name`` of a run folder (or ``path`` itself) and its text; one-line errors.

    Args:
        path: A run folder, or the file.
        name: The file a run folder holds (``evaluation.json``).
        verb: The ``foresight`` verb that writes it.
    """
    path = path / name if path.is_dir() else path
    if not path.is_file():
        raise ForesightError(f"{path} does not exist; run 'foresight {verb}' first")
    try:
        return path, path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        article = "an" if name[0] in "aeiou" else "a"
        raise ForesightError(
            f"{path} is not {article} {name} (not UTF-8 text, byte {err.start}); give a run folder "
            f"written by 'foresight {verb}' or its {name}"
        ) from err


def _curves(value: Any, where: str) -> MetricCurves:
    """One metric's curves from the file (``from_dict`` wants a mapping; say so if not)."""
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: expected a mapping of mean_of_n and best_of_n, got {value!r:.60}"
        )
    return from_dict(MetricCurves, value, where)


#: How ``evaluation.json`` writes a number that is not finite (strict JSON has no NaN).
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def non_finite_name(value: float) -> str:
    """``nan``, ``inf`` or ``-inf``: the name :data:`NON_FINITE` gives ``value``."""
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _non_finite(value: Any) -> float | None:
    """The non-finite number ``value`` stands for (a name, or a bare NaN), else None."""
    if isinstance(value, str):
        return NON_FINITE.get(value.strip().lower())
    if isinstance(value, float) and not math.isfinite(value):
        return value
    return None


def _set_aside_non_finite(
    tp: Any, value: Any, path: tuple[Any, ...], found: dict[tuple[Any, ...], float]
) -> Any:
    """``value`` with each non-finite number where ``tp``'s schema holds a float set to 0.

    The numbers set aside go to ``found``, by their path (field names, keys and indices).
    Values that do not fit the schema are left as they are for ``from_dict`` to refuse.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _set_aside_non_finite(options[0], value, path, found) if len(options) == 1 else value
    if tp is float:
        number = _non_finite(value)
        if number is None:
            return value
        found[path] = number
        return 0.0
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        return {
            k: _set_aside_non_finite(hints[k], v, (*path, k), found) if k in hints else v
            for k, v in value.items()
        }
    if origin in (list, tuple) and isinstance(value, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                return value
            items = list(args)
        else:
            items = [args[0] if args else Any] * len(value)
        return [
            _set_aside_non_finite(a, v, (*path, i), found)
            for i, (a, v) in enumerate(zip(items, value, strict=True))
        ]
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: _set_aside_non_finite(args[1], v, (*path, k), found) for k, v in value.items()}
    return value


def _put_back(obj: Any, path: tuple[Any, ...], number: float) -> Any:
    """``obj`` with the value at ``path`` (see :func:`_set_aside_non_finite`) set to ``number``."""
    if not path:
        return number
    head, rest = path[0], path[1:]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{head: _put_back(getattr(obj, head), rest, number)})
    if isinstance(obj, dict):
        return {**obj, head: _put_back(obj[head], rest, number)}
    if isinstance(obj, tuple | list):
        items = list(obj)
        items[head] = _put_back(items[head], rest, number)
        return type(obj)(items)
    return obj


def non_finite_steps(curve: Sequence[float]) -> str | None:
    """Where a per-step curve is not finite, in words (None when every step is finite).

    For example ``nan at future steps 2-4, 7`` or ``inf at future step 1; nan at future step
    3``. Steps count from 1; at most a few ranges are listed per kind.
    """
    parts = []
    for name in NON_FINITE:
        steps = [
            i + 1
            for i, v in enumerate(curve)
            if not math.isfinite(v) and non_finite_name(v) == name
        ]
        if steps:
            parts.append(f"{name} at future step{'s' if len(steps) > 1 else ''} {_ranges(steps)}")
    return "; ".join(parts) or None


def _ranges(steps: list[int], most: int = 3) -> str:
    """``1-3, 5``: sorted integers as ranges, the first ``most`` of them, then how many more."""
    runs: list[list[int]] = []
    for s in steps:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:most])
    return text + (f" and {len(runs) - most} more" if len(runs) > most else "")


def curve_mean(curve: Sequence[float]) -> float | None:
    """The mean over the future steps, or None for an empty curve.

    Non-finite steps are not skipped: one NaN step makes the mean NaN, so a broken step is
    never averaged away (show :func:`non_finite_steps` beside it).
    """
    # sum, not math.fsum: fsum raises on inf + -inf where the mean is simply NaN.
    return sum(curve) / len(curve) if len(curve) else None


def _plain(value: Any) -> Any:
    """JSON-able values of a dataclass tree; None-valued fields are dropped."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is not None:
                out[f.name] = _plain(v)
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return non_finite_name(value)
    return value

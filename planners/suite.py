"""Run a planner (or baseline) on a fixed, seeded task suite: the API behind ``foresight plan``.

:func:`run_suite` is what both ``foresight plan`` and ``foresight evaluate`` call. Task ``i``
is ``sample_tasks(env, suite.tasks, seed, ...)[i]`` and episode ``i`` draws all its randomness
from ``(seed, i)``, so results do not depend on the number of workers, and every model meets
the same task instances.

A checkpoint's config may ask for its own planner budget (its ``plan:`` block: samples,
iterations, batch size, futures per candidate); it overrides the planner preset's values.
``settings.json`` holds the planner as run (budget applied) and ``summary.json`` the budget
used (``budget``: its values and which of them the model set).

A run directory holds ``settings.json`` (what was run), ``episodes.jsonl`` (one line per
episode, in task order, rewritten atomically after each episode), ``summary.json`` and
``gifs/task_NNNN.gif`` (executed frames | best imagined future | goal). Re-running the same
command resumes: finished episodes are kept, also when it asks for more or fewer episodes (the
summary counts tasks ``0 .. episodes-1``; ``episodes.jsonl`` keeps every record).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.table import Table

from foresight.config import check_seed, to_dict
from foresight.device import resolve_device
from foresight.envs.spec import DEFAULT_ENV, EnvSpec
from foresight.errors import ConfigError
from foresight.io import atomic_write_text, check_out_dir
from foresight.parallel import LOCAL, Backend, run_jobs
from foresight.planners.config import (
    PlannerConfig,
    apply_budget,
    load_planner,
    planner_from_dict,
    planner_to_dict,
)
from foresight.planners.costs import COSTS
from foresight.planners.mpc import (
    EpisodeResult,
    MPCPolicy,
    Policy,
    RandomPolicy,
    ZeroPolicy,
    run_episode,
)
from foresight.planners.predictors import ModelPredictor, OraclePredictor
from foresight.registry import Registry
from foresight.results import EffectiveBudget, KindSuccess, PlanSummary
from foresight.rundir import RunDir
from foresight.visualize import grid, save_gif
from foresight.workers import ignore_interrupts

if TYPE_CHECKING:
    from foresight.models import ModelConfig


@dataclass(frozen=True)
class AgentSpec:
    """Everything a worker process needs to build the policy (plain, picklable values).

    Attributes:
        model: ``oracle``, ``random``, ``zero``, or a checkpoint path.
        planner: Planner settings (used by ``oracle`` and checkpoints).
        env: The env the episodes run in (the suite's).
        replan_every: Actions executed from each plan.
        device: ``cpu``, ``cuda``, ...
    """

    model: str
    planner: dict[str, Any]
    env: EnvSpec
    replan_every: int
    device: str


def _oracle(spec: AgentSpec, planner: PlannerConfig, image_size: int | None = None) -> Policy:
    predictor = OraclePredictor(spec.env.with_image_size(image_size))
    return MPCPolicy(predictor, planner, spec.replan_every, "cpu")


#: The most episodes one run plans (tasks are drawn up front), so a typo fails at once.
MAX_EPISODES = 100_000

#: Frame side of the ``cpu`` model presets: ``oracle32`` plans on true frames this size, so
#: its success separates what the cost loses at that resolution from what a model gets wrong.
MODEL_RESOLUTION = 32


def _checkpoint(spec: AgentSpec, planner: PlannerConfig) -> Policy:
    from foresight.models import load_model

    model = load_model(spec.model, spec.device)
    predictor = ModelPredictor(model, planner.num_samples, planner.batch_size, spec.device)
    return MPCPolicy(predictor, planner, spec.replan_every, spec.device)


@dataclass(frozen=True)
class NamedPolicy:
    """A policy ``--model`` names instead of a checkpoint (it is not a video model).

    Attributes:
        build: ``build(spec, planner)`` -> the policy, in the worker process.
        about: What it is, in a few words (reports say it where a model's metrics would be).
        plans: Whether it plans (so needs a cost and takes the model's planning budget).
    """

    build: Callable[[AgentSpec, PlannerConfig], Policy]
    about: str
    plans: bool = True


#: Policies by the name ``--model`` accepts; anything else is a checkpoint path.
NAMED_POLICIES = Registry[NamedPolicy]("policy")
NAMED_POLICIES.add(
    "oracle",
    NamedPolicy(_oracle, "the simulator itself: it replays the true dynamics, not a video model"),
)
NAMED_POLICIES.add(
    f"oracle{MODEL_RESOLUTION}",
    NamedPolicy(
        partial(_oracle, image_size=MODEL_RESOLUTION),
        f"the simulator, rendering at {MODEL_RESOLUTION}x{MODEL_RESOLUTION} "
        "(the cpu models' resolution)",
    ),
)
NAMED_POLICIES.add(
    "random", NamedPolicy(lambda spec, planner: RandomPolicy(), "random actions, no model", False)
)
NAMED_POLICIES.add(
    "zero", NamedPolicy(lambda spec, planner: ZeroPolicy(), "no motion, no model", False)
)


def build_policy(spec: AgentSpec) -> Policy:
    """The policy ``spec.model`` names (a checkpoint path when not a built-in name)."""
    planner = planner_from_dict(spec.planner, "planner config")
    named = NAMED_POLICIES.get(spec.model)
    return (named.build if named else _checkpoint)(spec, planner)


def check_model(model: str | Path, env: EnvSpec | None = None) -> tuple[str, ModelConfig | None]:
    """Validate ``--model`` early (one-line error for a missing or foreign checkpoint).

    Args:
        model: A policy name, a checkpoint path, or a training run directory (its
            ``best.pt``, else its ``checkpoint.pt``).
        env: The env the model will plan in: a checkpoint trained on data from another env
            is refused (checkpoints from before envs were recorded are taken as they are).

    Returns:
        The policy name, or the checkpoint file's absolute path (so a run started with a
        relative path resumes from anywhere, and records which file of a run directory it
        used); and the checkpoint's model config (None for named policies).
    """
    model = str(model)
    if model in NAMED_POLICIES:
        return model, None
    from foresight.models.checkpoint import model_from_payload, read_checkpoint, resolve_checkpoint

    model = str(resolve_checkpoint(model))
    payload = read_checkpoint(model)
    config = model_from_payload(payload, model).config
    trained_in = payload.get("env_args", {}).get("env_name")
    if env is not None and trained_in is not None and trained_in != env.name:
        raise ConfigError(
            f"{model} was trained on data from {trained_in}, but the suite's tasks are in "
            f"{env.name}; choose a suite of {trained_in}, or a model trained in {env.name}"
        )
    return str(Path(model).resolve()), config


@dataclass(frozen=True)
class PlanningInputs:
    """A model and planner checked against each other, as planning and ranking use them.

    Attributes:
        model: The policy name, or the checkpoint file's absolute path.
        planner: The planner to run: the model's ``plan:`` budget applied where it plans.
        budget: The budget it runs with (None for baselines, which use none).
        plans: Whether the model plans (False for ``random`` and ``zero``).
    """

    model: str
    planner: PlannerConfig
    budget: EffectiveBudget | None
    plans: bool


def check_planning(
    model: str | Path, planner: str | Path | PlannerConfig, env: EnvSpec
) -> PlanningInputs:
    """Check ``--model`` and ``--planner`` before any episode runs (one-line errors).

    Args:
        model: A policy name, checkpoint path or training run directory (see
            :func:`check_model`).
        planner: Planner preset, YAML path, or config.
        env: The env the model will plan in.

    Returns:
        The checked inputs; the planner's cost is validated only where the model plans.

    Raises:
        ConfigError: Bad planner or cost, or a model trained in another env;
        CheckpointError: A bad checkpoint.
    """
    planner_cfg = planner if isinstance(planner, PlannerConfig) else load_planner(planner)
    model, model_cfg = check_model(model, env)
    plans = model not in NAMED_POLICIES or NAMED_POLICIES[model].plans
    budget = None
    if plans:  # baselines need no cost and use no budget
        COSTS[planner_cfg.cost.name].validate(planner_cfg.cost)
        planner_cfg, budget = apply_budget(planner_cfg, model_cfg.plan if model_cfg else None)
    return PlanningInputs(model, planner_cfg, budget, plans)


# One policy and env per worker process, reused across its episodes (renderers and models
# are costly to build). Module-level because multiprocessing initializers can only leave
# state here.
_worker: dict[str, Any] = {}


def _init_worker(
    spec: AgentSpec, threads: int, shipped: bytes | None = None, pooled: bool = False
) -> None:
    """Build this worker's policy and env (``shipped``: the checkpoint's bytes, via Ray)."""
    if pooled:
        ignore_interrupts()

    if threads:
        torch.set_num_threads(threads)
    if shipped is None:
        policy = build_policy(spec)
    else:
        # A Ray worker reads no file of the driver's: the checkpoint came through the object
        # store, and this copy lives only while the model is built from it.
        with tempfile.TemporaryDirectory(prefix="foresight-") as tmp:
            local = Path(tmp) / "checkpoint.pt"
            local.write_bytes(shipped)
            policy = build_policy(dataclasses.replace(spec, model=str(local)))
    env = spec.env.with_image_size(policy.image_size).make()
    _worker.update(policy=policy, env=env, spec=spec)


def _close_worker() -> None:
    _worker.pop("policy").close()
    _worker.pop("env").close()


def _run_one(job: tuple[Any, int, int]) -> EpisodeResult:
    task, seed, steps = job
    rng = np.random.default_rng([seed, task.task_id, 1])
    torch.manual_seed(int(rng.integers(2**31)))
    return run_episode(_worker["env"], _worker["policy"], task, steps, rng)


def run_episodes(
    spec: AgentSpec,
    tasks: list[Any],
    seed: int,
    steps: int,
    workers: int = 1,
    threads: int | None = None,
    backend: Backend = LOCAL,
) -> Iterator[EpisodeResult]:
    """Run one episode per task, yielding results as they finish (any order).

    Args:
        spec: What to build in each worker.
        tasks: The tasks, one episode each.
        seed: Suite seed; episode ``i`` draws from ``(seed, i)``.
        steps: Actions per episode.
        workers: Parallel workers (local: processes, 1 in this process; ray: actors).
        threads: Torch threads per worker; None: 1 on CPU (episodes are the unit of
            parallelism: small per-step tensors gain little from threads, and on a busy
            machine OpenMP threads that wait on each other made the cost 50x slower, measured),
            torch's default on CUDA.
        backend: Where the workers run (:mod:`foresight.parallel`).
    """
    if not tasks:
        return
    if threads is None:
        threads = 1 if spec.device == "cpu" else 0
    jobs = [(t, seed, steps) for t in tasks]
    shipped = None
    if backend.remote:
        # Workers elsewhere cannot read this machine's checkpoint: it travels once per node.
        shipped = None if spec.model in NAMED_POLICIES else Path(spec.model).read_bytes()
    else:
        # Episodes are CPU-bound: more processes than cores only add start-up cost.
        workers = max(1, min(workers, os.cpu_count() or 1))
    gpus = 1.0 if spec.device.startswith("cuda") else 0.0
    before = torch.get_num_threads()
    try:
        yield from run_jobs(
            backend,
            _init_worker,
            (spec, threads, shipped),
            _run_one,
            jobs,
            min(workers, len(jobs)),
            close=_close_worker,
            gpus=gpus,
        )
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class SuiteResult:
    """What :func:`run_suite` returns.

    Attributes:
        summary: The content of ``summary.json``.
        episodes: ``episodes.jsonl`` lines, in task order.
    """

    summary: PlanSummary
    episodes: list[dict[str, Any]]


def summarize(
    records: list[dict[str, Any]],
    model: str,
    suite: str,
    planner: PlannerConfig | None,
    budget: EffectiveBudget | None,
    seed: int,
) -> PlanSummary:
    """``summary.json`` from episode records (``planner`` None: a baseline that does not plan).

    ``budget`` is the planner budget used (None: a baseline that does not plan).
    """
    n = len(records)

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in records])) if n else 0.0

    success = [r["success"] for r in records]
    # Episodes recorded before "ever" was (their runs resume) leave it unknown.
    ever = [r["ever_success"] for r in records if "ever_success" in r]
    kinds = [r["kind"] for r in records if isinstance(r.get("kind"), str)]
    by_kind = None
    if kinds and len(kinds) == n:
        by_kind = tuple(
            KindSuccess(k, sum(r["success"] for r in records if r["kind"] == k), kinds.count(k))
            for k in sorted(set(kinds))
        )
    return PlanSummary(
        success_rate=mean("success"),
        successes=int(sum(success)),
        ever_success_rate=float(np.mean(ever)) if ever and len(ever) == n else None,
        episodes=n,
        mean_final_distance=mean("final_distance"),
        seconds_per_step=mean("seconds_per_step"),
        model_seconds_per_step=mean("model_seconds_per_step"),
        model=model,
        suite=suite,
        planner=planner.optimizer.name if planner else "none",
        cost=planner.cost.name if planner else "none",
        horizon=planner.horizon if planner else 0,
        budget=budget,
        seed=seed,
        by_kind=by_kind,
    )


def kinds_line(summary: PlanSummary) -> str | None:
    """``box 10/12 · ell 1/8``: success per kind of task, or None for a suite of one kind."""
    if summary.by_kind is None or len(summary.by_kind) < 2:
        return None
    return " · ".join(f"{k.kind} {k.successes}/{k.episodes}" for k in summary.by_kind)


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.0%}"


def summary_table(summary: PlanSummary, title: str = "foresight plan") -> Table:
    """A rich table of a ``summary.json``."""
    table = Table(title=title)
    left = ("model", "suite", "planner", "budget")
    cols = (*left, "episodes", "success", "mean final dist", "s/step")
    for col in cols:
        table.add_column(col, justify="left" if col in left else "right")
    s = summary
    # A caption, not a column: the table already fills an 80-column terminal.
    ever = _percent(s.ever_success_rate)
    table.caption = f"success: at the end; the success test held at some step: {ever}"
    kinds = kinds_line(s)
    if kinds is not None:
        table.caption += f"\nsuccess by kind of task: {kinds}"
    if s.tasks is not None:
        table.caption += f"\ntasks: {', '.join(map(str, s.tasks))}"
    table.add_row(
        s.model,
        s.suite,
        "none" if s.planner == "none" else f"{s.planner}/{s.cost}",
        s.budget.label() if s.budget else "none",
        str(s.episodes),
        f"{s.success_rate:.0%} ({s.successes}/{s.episodes})",
        f"{s.mean_final_distance * 100:.1f} cm",
        f"{s.seconds_per_step:.3f}",
    )
    return table


def episode_gif(result: EpisodeResult, path: Path, scale: int = 2) -> Path:
    """GIF of an episode: executed frame | best imagined final frame | goal, per step."""
    frames = result.frames
    t = len(frames)
    if result.imagined is not None:
        # The imagined future shown beside frame t is the one planned from frame t.
        imagined = np.concatenate([result.imagined, result.imagined[-1:]])
    else:
        imagined = np.zeros_like(frames)
    goal = np.broadcast_to(result.goal, frames.shape)
    tiles = np.stack([frames, imagined, goal], axis=1)  # (T+1, 3, H, W, 3)
    images = np.stack([grid(tiles[i][None], gap=2, scale=scale) for i in range(t)])
    return save_gif(images, path)


def _read_records(path: Path) -> dict[int, dict[str, Any]]:
    if not path.is_file():
        return {}
    records = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            records[int(rec["task_id"])] = rec
    return records


def _prepare_out(out: Path, settings: dict[str, Any], overwrite: bool) -> dict[int, dict]:
    """Check ``out`` against ``settings``; return the episodes already done there."""
    run = RunDir(
        out,
        "a 'foresight plan' run",
        owned=("episodes.jsonl", "summary.json"),
        # Runs from before envs had names all ran in the default env; runs from before the
        # planner fields below ran with their defaults.
        legacy={
            "env_name": DEFAULT_ENV,
            "planner.to_episode_end": False,
            "planner.cost.robot_goal_within": 0.0,
            "planner.replan_every": None,
        },
        error=ConfigError,
        # Episode i depends only on (seed, i), so asking for more (or fewer) episodes keeps
        # the ones done; runs recorded the count in their settings before this.
        ignored=("episodes",),
    )
    return _read_records(out / "episodes.jsonl") if run.open(settings, overwrite) else {}


def _check_tasks(tasks: Sequence[int] | None, episodes: int | None) -> tuple[int, ...] | None:
    """The chosen task ids, sorted and unique (None: tasks ``0 .. N-1``)."""
    if tasks is None:
        return None
    if episodes is not None:
        raise ConfigError("give --episodes or --tasks, not both")
    chosen = tuple(sorted(set(tasks)))
    if not chosen:
        raise ConfigError("--tasks names no task: give ids such as --tasks 15,42")
    if chosen[0] < 0 or chosen[-1] >= MAX_EPISODES:
        raise ConfigError(f"--tasks ids must be from 0 to {MAX_EPISODES - 1:,}, got {chosen}")
    return chosen


def run_suite(
    model: str | Path,
    suite: str | Path = "easy",
    out: str | Path | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    planner: str | Path | PlannerConfig = "cem",
    tasks: Sequence[int] | None = None,
    workers: int = 1,
    device: str = "auto",
    threads: int | None = None,
    gifs: bool = True,
    overwrite: bool = False,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    backend: Backend = LOCAL,
) -> SuiteResult:
    """Plan on a task suite and judge by task success.

    Args:
        model: ``oracle``, ``random``, ``zero``, or a checkpoint path.
        suite: Suite preset (``easy``, ``hard``) or YAML path.
        out: Run directory (None: write nothing).
        episodes: Tasks ``0 .. episodes-1`` (default: the suite's ``episodes``).
        seed: Suite seed (default: the suite's ``seed``).
        planner: Planner preset (``cem``, ``mppi``), YAML path, or config; a checkpoint's
            ``plan:`` budget overrides its samples, iterations, batch size and futures per
            candidate (see :func:`~foresight.planners.config.apply_budget`).
        tasks: Plan and summarize only these task ids (instead of ``episodes``): task ``i``
            depends only on ``(seed, i)``, so task 15 alone is task 15 of the whole suite.
        workers: Parallel worker processes.
        device: Model device (``auto``: CUDA when available).
        threads: Torch threads per worker (None: 1 on CPU, torch's default on CUDA).
        gifs: Write a GIF per episode under ``out/gifs``.
        overwrite: Replace a run in ``out`` made with other settings.
        on_episode: Called with each episode record as it finishes (progress display).
        on_start: Called with the number of episodes once the inputs are checked.
        backend: Where the episodes run (:mod:`foresight.parallel`); results are the same.

    Returns:
        The summary and the per-episode records.

    Raises:
        ConfigError: Bad suite, planner, or run directory; CheckpointError: bad checkpoint.
    """
    from foresight.envs import load_suite, sample_tasks

    suite_cfg = load_suite(suite)
    chosen = _check_tasks(tasks, episodes)
    n = suite_cfg.episodes if episodes is None else episodes
    if chosen is not None:
        n = chosen[-1] + 1
    if not 1 <= n <= MAX_EPISODES:
        raise ConfigError(f"--episodes must be from 1 to {MAX_EPISODES:,}, got {n}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    seed = check_seed(suite_cfg.seed if seed is None else seed)
    device = str(resolve_device(device))
    if out is not None:
        check_out_dir(Path(out))
    env = suite_cfg.env_spec()
    inputs = check_planning(model, planner, env)
    model, planner_cfg, plans = inputs.model, inputs.planner, inputs.plans
    spec = AgentSpec(
        model=model,
        planner=planner_to_dict(planner_cfg),
        env=env,
        replan_every=planner_cfg.replan_every or suite_cfg.replan_every,
        device=device,
    )
    settings = {
        "model": model,
        "suite": to_dict(suite_cfg),
        "env_name": env.name,
        "env": env.config,
        # The planner as run, the model's budget applied: a run with another budget is
        # refused, while runs made before budgets existed still resume.
        "planner": spec.planner,
        "seed": seed,
    }
    out = Path(out) if out is not None else None
    done = _prepare_out(out, settings, overwrite) if out is not None else {}
    # Every record stays in episodes.jsonl (a later run may ask for them again); the summary
    # counts tasks 0 .. n-1, or the chosen ones.
    records = dict(done)
    every_task = sample_tasks(env, suite_cfg.tasks, seed, n)
    if chosen is not None:
        every_task = [t for t in every_task if t.task_id in chosen]
    counted = range(n) if chosen is None else chosen
    env_config = env.typed()
    kinds = {t.task_id: env.env_class.task_kind(env_config, t) for t in every_task}

    def stamp_kind(task_id: int, rec: dict[str, Any]) -> dict[str, Any]:
        if kinds.get(task_id) is not None:
            rec["kind"] = kinds[task_id]
        return rec

    # Episodes recorded before kinds were get theirs from the task, which is the same.
    records = {i: stamp_kind(i, rec) for i, rec in records.items()}
    tasks = [t for t in every_task if t.task_id not in records]
    if on_start is not None:
        on_start(len(counted))
    if on_episode is not None:
        for i in counted:
            if i in records:
                on_episode(records[i])
    episodes_run = run_episodes(
        spec, tasks, seed, suite_cfg.episode_steps, workers, threads, backend
    )
    for res in episodes_run:
        rec = records[res.task_id] = stamp_kind(res.task_id, res.record())
        if out is not None:
            if gifs:
                episode_gif(res, out / "gifs" / f"task_{res.task_id:04d}.gif")
            lines = "".join(json.dumps(records[i]) + "\n" for i in sorted(records))
            atomic_write_text(out / "episodes.jsonl", lines)
        if on_episode is not None:
            on_episode(rec)
    ordered = [records[i] for i in counted]
    planner_run = planner_cfg if plans else None
    summary = summarize(ordered, model, suite_cfg.name, planner_run, inputs.budget, seed)
    if chosen is not None:
        summary = dataclasses.replace(summary, tasks=chosen)
    if out is not None:
        atomic_write_text(out / "summary.json", summary.to_json())
    return SuiteResult(summary=summary, episodes=ordered)

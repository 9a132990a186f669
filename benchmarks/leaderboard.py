"""One leaderboard: every `cpu` model preset, the same data and training time, judged by planning.

For each preset (every ``configs/model/*.yaml`` but the ``*_paper`` ones, or ``--models``):

    foresight train --config NAME --data DATA --out OUT/NAME --max-steps 100000 \\
        --time-limit MINUTES
    foresight evaluate --model OUT/NAME/checkpoint.pt --data DATA --out OUT/eval/NAME \\
        --suite SUITE --episodes N --workers W --planner PLANNER

then ``foresight report OUT/eval/* --out OUT/report`` over every evaluated model (and the
``--baselines``, planned with the same planner), and a table here: training steps in the
time, task success, final distance, PSNR/SSIM mean-of-N, seconds per planning step, and the
Spearman correlation of each offline metric with success (seed 000's question: do pixel
metrics rank models as the robot does?).

With several ``--suite``s each model trains once and is evaluated on every suite: ``easy``
in ``OUT/eval`` and ``OUT/report``, any other suite in ``OUT/eval_SUITE`` and
``OUT/report_SUITE``, one table each.

Each model trains alone: on 2 cores, anything running beside a timed training takes its
steps. A model whose evaluation exists is skipped, and an interrupted training resumes, so
the same command continues an interrupted leaderboard (or adds a suite to a finished one). Logs
go to ``OUT/logs/``. One model is about ``MINUTES`` of training plus 7-15 minutes of evaluation
a suite on 2 cores.

    python benchmarks/leaderboard.py --data data/push.h5 --out runs/leaderboard \\
        [--models vrnn_fast svg_prime] [--minutes 23.56] [--suite easy hard] [--episodes 20] \\
        [--planner fast] [--baselines oracle copy_last]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from foresight.config import configs_dir
from foresight.models import untrained_models
from foresight.report import correlations, load_runs, table_rows

#: Planner baselines ``foresight evaluate`` takes instead of a checkpoint.
PLANNER_BASELINES = ("oracle", "random", "zero")


def cpu_presets() -> list[str]:
    """Every model preset sized for a CPU (all but the ``*_paper`` ones)."""
    names = (p.stem for p in (configs_dir() / "model").glob("*.yaml"))
    return sorted(n for n in names if not n.endswith("_paper"))


def foresight(argv: list[str], log: Path) -> None:
    """Run one CLI call in its own process, its output to ``log``; stop the board if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    Console(stderr=True).print(f"$ foresight {' '.join(argv)}  (log: {log})")
    with log.open("a") as out:
        command = [sys.executable, "-m", "foresight.cli", *argv]
        code = subprocess.call(command, stdout=out, stderr=out)
    if code != 0:
        raise SystemExit(f"foresight {argv[0]} exited with {code}; see {log}")


def trained_steps(run: Path) -> int | None:
    """The last training step ``metrics.jsonl`` records (None without one)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return None
    steps = [json.loads(line).get("step") for line in path.read_text().splitlines() if line]
    steps = [s for s in steps if isinstance(s, int)]
    return max(steps) if steps else None


def earlier_evaluation(args: argparse.Namespace, suite: str, out: Path) -> bool:
    """Whether ``out`` holds an evaluation with this board's suite, episodes and planner.

    One made with other settings stops the board: skipping it would put another protocol's
    row into this board's report.
    """
    path = out / "evaluation.json"
    if not path.is_file():
        return False
    options = json.loads(path.read_text()).get("options", {})
    wanted = {"suite": suite, "episodes": args.episodes, "planner": args.planner}
    differ = [k for k, v in wanted.items() if options.get(k) != v]
    if differ:
        raise SystemExit(f"{path} was evaluated with other {', '.join(differ)}; pass another --out")
    return True


def evaluate_args(args: argparse.Namespace, suite: str, model: str, out: Path) -> list[str]:
    """The ``foresight evaluate`` call for one model (a checkpoint or a planner baseline)."""
    argv = ["evaluate", "--model", model, "--out", str(out), "--suite", suite]
    argv += ["--episodes", str(args.episodes), "--workers", str(args.workers)]
    argv += ["--planner", args.planner]
    if model not in PLANNER_BASELINES:
        argv += ["--data", str(args.data)]
    return argv


def board_dirs(out: Path, suite: str) -> tuple[Path, Path]:
    """A suite's evaluation and report folders: ``eval``/``report`` for ``easy`` (the folders
    boards used when they had one suite), ``eval_SUITE``/``report_SUITE`` for any other."""
    if suite == "easy":
        return out / "eval", out / "report"
    return out / f"eval_{suite}", out / f"report_{suite}"


def print_board(args: argparse.Namespace, suite: str, evaluated: list[Path], report: Path) -> None:
    """One suite's table and its metric-success correlations."""
    runs = load_runs(evaluated)
    header, rows = table_rows(runs)
    title = f"leaderboard: {suite}, {args.planner} planner, {args.minutes} min"
    table = Table(title=title)
    table.add_column("steps")
    for column in header:
        table.add_column(column)
    for folder, row in zip(evaluated, rows, strict=True):
        steps = trained_steps(args.out / folder.name)
        table.add_row(str(steps) if steps is not None else "-", *row)
    console = Console()
    console.print(table)
    for entry in correlations(runs):
        console.print(entry["sentence"])
    console.print(f"report: {report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset every model trains on")
    parser.add_argument("--out", type=Path, required=True, help="leaderboard folder")
    parser.add_argument("--models", nargs="+", default=None, help="presets (default: all cpu)")
    parser.add_argument("--baselines", nargs="*", default=["oracle"], help="planner baselines")
    parser.add_argument("--minutes", type=float, default=23.56, help="training time per model")
    parser.add_argument(
        "--suite",
        "--suites",
        dest="suites",
        nargs="+",
        default=["easy"],
        help="suites to plan on, each trained model evaluated on every one",
    )
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--planner", default="fast")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    known = cpu_presets()
    models = args.models or known
    unknown = [m for m in models if m not in known]
    if unknown:
        raise SystemExit(f"no cpu model preset named {', '.join(unknown)} (presets: {known})")
    logs = args.out / "logs"
    names = [*models, *args.baselines]
    for name in names:
        outs = {suite: board_dirs(args.out, suite)[0] / name for suite in args.suites}
        todo = [suite for suite, out in outs.items() if not earlier_evaluation(args, suite, out)]
        model = name
        if name in models:
            run = args.out / name
            model = str(run / "checkpoint.pt")
            # A model with nothing to learn (copy_last) has no training state to resume: its
            # checkpoint, once written, is final.
            final = name in untrained_models() and (run / "checkpoint.pt").is_file()
            if todo and not final:
                # A run whose time is spent resumes to no further step; an interrupted one goes on.
                train = ["train", "--config", name, "--data", str(args.data), "--out", str(run)]
                train += ["--max-steps", "100000", "--time-limit", str(args.minutes)]
                resume = ["--resume"] if run.exists() else []
                foresight(train + resume, logs / f"{name}.train.log")
        for suite in todo:
            log = logs / f"{name}.{suite}.evaluate.log"
            foresight(evaluate_args(args, suite, model, outs[suite]), log)
    for suite in args.suites:
        evaluations, report = board_dirs(args.out, suite)
        folders = [evaluations / name for name in names]
        foresight(
            ["report", *map(str, folders), "--out", str(report)], logs / f"report.{suite}.log"
        )
        print_board(args, suite, folders, report)


if __name__ == "__main__":
    main()

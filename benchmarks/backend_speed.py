"""What running episodes on Ray costs: collection and planning, local processes vs Ray actors.

Times ``foresight collect`` (``--episodes`` episodes of 30 steps) and ``foresight plan``
(``--plan-episodes`` episodes of the oracle with the ``fast`` planner) end to end, each with
``--workers`` local processes and with as many Ray actors: once on a Ray instance already
running (what a cluster user sees), and once cold, where the command starts and stops its own
local instance. Prints episodes/s and the overhead against local processes (aim: <= 10% at
200 collection episodes). Results are identical on every backend (tests/test_parallel.py).

    python benchmarks/backend_speed.py [--episodes 200] [--plan-episodes 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from foresight.cli import main as cli


def timed(argv: list[str]) -> float:
    """Seconds one CLI call takes (its own output swallowed)."""
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        code = cli(argv)
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {code}")
    return time.perf_counter() - start


def commands(tmp: Path, args: argparse.Namespace, backend: list[str]) -> dict[str, list[str]]:
    n = len(list(tmp.iterdir()))
    workers = ["--workers", str(args.workers)]
    return {
        "collect": ["collect", "--out", str(tmp / f"c{n}.h5"), "--episodes", str(args.episodes)]
        + workers
        + backend,
        "plan": ["plan", "--model", "oracle", "--planner", "fast", "--no-gifs"]
        + ["--episodes", str(args.plan_episodes), "--out", str(tmp / f"p{n}")]
        + workers
        + backend,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200, help="collection episodes")
    parser.add_argument("--plan-episodes", type=int, default=6, help="planning episodes")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import ray

    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for label, backend in (("local processes", []), ("ray, cold start", ["--backend", "ray"])):
            for verb, argv in commands(tmp, args, backend).items():
                rows.setdefault(label, {})[verb] = timed(argv)
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        try:
            for verb, argv in commands(tmp, args, ["--backend", "ray"]).items():
                rows.setdefault("ray, running instance", {})[verb] = timed(argv)
        finally:
            ray.shutdown()

    counts = {"collect": args.episodes, "plan": args.plan_episodes}
    table = Table(title=f"episodes on each backend, {args.workers} workers")
    table.add_column("backend")
    for verb in counts:
        table.add_column(f"{verb} s", justify="right")
        table.add_column(f"{verb} episodes/s", justify="right")
        table.add_column(f"{verb} overhead", justify="right")
    base = rows["local processes"]
    for label, times in rows.items():
        cells = [label]
        for verb, n in counts.items():
            cells += [f"{times[verb]:.1f}", f"{n / times[verb]:.2f}"]
            cells.append(f"{times[verb] / base[verb] - 1:+.0%}")
        table.add_row(*cells)
    table.caption = f"collect: {args.episodes} x 30 steps; plan: oracle, fast planner, easy"
    Console().print(table)


if __name__ == "__main__":
    main()

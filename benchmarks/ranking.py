"""How checkpoints, and costs, order a planner's candidates beside the simulator: a table.

For each ``--model`` and each ``--variant`` (planner overrides, e.g. a cost setting), the
open-loop ranking measure of ``foresight evaluate`` (:mod:`foresight.planners.ranking`):
Spearman's rho between the model's and the simulator's costs of the candidates the planner's
first iteration draws, the share of the simulator's elites among the model's, and the regret
of the model's pick, each the mean over ``--states`` states of the suite's tasks. Seconds a
state, against a whole suite's planning in minutes, so it screens cost settings and
checkpoints before the episodes judge them (docs/pusht.md shows where it agreed with them).
The simulator is scored with the same variant: compare variants that read the same thing from
the simulator's sharp frames in different ways (where the agent is read from, how a mask is
read), not ones that weigh things differently, which change the reference too.

    python benchmarks/ranking.py --suite pusht --planner pusht_skip \\
        --model runs/pusht_decay --model runs/pusht_svg_prime/best.pt \\
        --variant "" --variant "cost.pusher=image cost.mask=color" [--states 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from foresight.planners.config import load_planner
from foresight.planners.ranking import rank_agreement
from foresight.progress import make_progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="checkpoint or run dir")
    parser.add_argument("--suite", default="easy", help="suite whose tasks give the states")
    parser.add_argument("--planner", default="cem", help="planner preset or YAML")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help="planner overrides, space-separated KEY=VALUE ('' = the preset as it is)",
    )
    parser.add_argument("--states", type=int, default=20, help="states compared per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the states and candidates")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variant if args.variant is not None else [""]

    table = Table(title=f"ranking against the simulator: {args.suite}, {args.planner}")
    for column in ("model", "variant", "rho", "elite overlap", "regret", "s / state"):
        table.add_column(column, justify="left" if column in ("model", "variant") else "right")
    rows = [(model, variant) for model in args.model for variant in variants]
    with make_progress() as progress:
        bar = progress.add_task("ranking states", total=len(rows) * args.states)
        for model, variant in rows:
            planner = load_planner(args.planner, variant.split())
            start = time.perf_counter()
            ranking, states = rank_agreement(
                model,
                args.suite,
                planner,
                args.states,
                args.seed,
                "cpu",
                on_state=lambda _: progress.advance(bar),
            )
            seconds = (time.perf_counter() - start) / len(states)
            table.add_row(
                model,
                variant or "(preset)",
                *(
                    "n/a" if v is None else f"{v:.3f}"
                    for v in (ranking.rho, ranking.elite_overlap, ranking.regret)
                ),
                f"{seconds:.1f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()

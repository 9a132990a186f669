"""``foresight collect``: gather an env's exploration episodes into an HDF5 dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from foresight.data.collect import collect_dataset
from foresight.io import output_lock


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``collect``."""
    p = subparsers.add_parser(
        "collect",
        help="collect random-action episodes of an env into HDF5",
        description="Collect interaction-rich random episodes of an env (its exploration "
        "policy) into a robomimic-style HDF5 file. Interrupted runs resume when the same "
        "command is run again; once the file is complete, the same command leaves it as it is.",
    )
    p.add_argument("--out", type=Path, required=True, help="output .h5 file")
    p.add_argument("--episodes", type=int, required=True, help="number of episodes")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="parallel worker processes (at most one per core is used)",
    )
    p.add_argument("--seed", type=int, default=0, help="dataset seed (episode i uses (seed, i))")
    p.add_argument("--image-size", type=int, default=None, help="frame size (default: config)")
    p.add_argument("--steps", type=int, default=30, help="actions per episode (T)")
    p.add_argument(
        "--env",
        default="push",
        help="the env: a preset of configs/env/ (push), an env YAML, or a registered env id "
        "(foresight/Push-v0)",
    )
    # The flag's name before envs had names; kept so existing scripts run.
    p.add_argument("--config", dest="env", help=argparse.SUPPRESS)
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of episodes held out")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out file (without it, only a complete file with the same "
        "settings is accepted, and kept as it is)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override the env config's values, checked like its YAML keys "
        "(e.g. friction=0.6 max_step=0.02)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect, resume, assemble."""
    from foresight.envs import load_env

    overrides = {} if args.image_size is None else {"image_size": args.image_size}
    env = load_env(args.env, overrides, args.overrides)
    with output_lock(args.out, "foresight collect"):
        collect_dataset(
            args.out,
            args.episodes,
            env,
            seed=args.seed,
            steps=args.steps,
            workers=args.workers,
            valid_fraction=args.valid_fraction,
            overwrite=args.overwrite,
        )
    return 0

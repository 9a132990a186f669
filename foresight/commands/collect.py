"""``foresight collect``: gather an env's exploration episodes into an HDF5 dataset."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from foresight.data.collect import collect_dataset
from foresight.flags import add_flags, from_args, option, overrides_field
from foresight.io import output_lock
from foresight.parallel import Backend


@dataclass(frozen=True, kw_only=True)
class CollectFlags:
    """The flags of ``foresight collect`` (see :func:`foresight.data.collect.collect_dataset`).

    Attributes:
        out: Output ``.h5`` file.
        episodes: Episodes to collect.
        workers: Parallel worker processes.
        seed: Dataset seed; episode ``i`` uses ``(seed, i)``.
        image_size: Frame size (None: the env config's).
        steps: Actions per episode.
        env: Env preset, env YAML, or registered env id.
        valid_fraction: Share of episodes held out.
        overwrite: Replace an existing file.
        overrides: ``KEY=VALUE`` overrides of the env config.
    """

    out: Path = field(metadata=option("output .h5 file"))
    episodes: int = field(metadata=option("number of episodes"))
    workers: int = field(
        default=1, metadata=option("parallel worker processes (at most one per core is used)")
    )
    seed: int = field(default=0, metadata=option("dataset seed (episode i uses (seed, i))"))
    image_size: int | None = field(default=None, metadata=option("frame size (default: config)"))
    steps: int = field(default=30, metadata=option("actions per episode (T)"))
    env: str = field(
        default="push",
        metadata=option(
            "the env: a preset of configs/env/ (push), an env YAML, or a registered env id "
            "(foresight/Push-v0)"
        ),
    )
    valid_fraction: float = field(default=0.1, metadata=option("share of episodes held out"))
    overwrite: bool = field(
        default=False,
        metadata=option(
            "replace an existing --out file (without it, only a complete file with the same "
            "settings is accepted, and kept as it is)"
        ),
    )
    overrides: tuple[str, ...] = overrides_field("the env config", "friction=0.6 max_step=0.02")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``collect``."""
    p = subparsers.add_parser(
        "collect",
        help="collect random-action episodes of an env into HDF5",
        description="Collect interaction-rich random episodes of an env (its exploration "
        "policy) into a robomimic-style HDF5 file. Interrupted runs resume when the same "
        "command is run again; once the file is complete, the same command leaves it as it is.",
    )
    add_flags(p, CollectFlags)
    add_flags(p, Backend)
    # The --env flag's name before envs had names; kept so existing scripts run.
    p.add_argument("--config", dest="env", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect, resume, assemble."""
    from foresight.envs import load_env

    flags = from_args(CollectFlags, args)
    backend = from_args(Backend, args)  # checked before any work
    overrides = {} if flags.image_size is None else {"image_size": flags.image_size}
    env = load_env(flags.env, overrides, list(flags.overrides))
    with output_lock(flags.out, "foresight collect"):
        collect_dataset(
            flags.out,
            flags.episodes,
            env,
            seed=flags.seed,
            steps=flags.steps,
            workers=flags.workers,
            valid_fraction=flags.valid_fraction,
            overwrite=flags.overwrite,
            backend=backend,
        )
    return 0

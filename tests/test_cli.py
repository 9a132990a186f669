"""The CLI as a user runs it: a subprocess, from any directory."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from foresight.cli import build_parser
from foresight.commands.collect import CollectFlags
from foresight.commands.plan import PlanFlags
from foresight.commands.train import TrainFlags
from foresight.flags import from_args

VERBS = ("collect", "data", "train", "plan", "evaluate", "report", "lpips-export", "quickstart")


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "foresight.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_help_lists_every_verb():
    # The registered subcommands, not the help text: its description names most verbs anyway.
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(sub.choices) == sorted(VERBS)
    result = run("--help")
    assert result.returncode == 0
    # Subcommand rows are indented by four spaces; wrapped help text by more.
    rows = [line for line in result.stdout.splitlines() if line[:4] == "    " and line[4:5].strip()]
    listed = {row.split()[0] for row in rows}
    assert set(VERBS) <= listed, result.stdout


def test_collect_then_info_end_to_end(tmp_path):
    out = tmp_path / "d.h5"
    result = run(
        "collect",
        "--out",
        str(out),
        "--episodes",
        "3",
        "--steps",
        "5",
        "--image-size",
        "16",
        "--workers",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    info = run("data", "info", str(out), cwd=tmp_path)
    assert info.returncode == 0 and "3 (train 2, valid 1)" in info.stdout


def test_unknown_config_key_is_one_line(tmp_path):
    cfg = tmp_path / "env.yaml"
    cfg.write_text("imagesize: 32\n")
    result = run(
        "collect", "--out", str(tmp_path / "x.h5"), "--episodes", "1", "--config", str(cfg)
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'imagesize'" in lines[0]


# Each verb's options as one typed object: (verb, flags class, the required flags, their values).
FLAGGED = [
    ("collect", CollectFlags, ["--out", "d.h5", "--episodes", "3"],
     {"out": Path("d.h5"), "episodes": 3}),
    ("plan", PlanFlags, ["--model", "oracle", "--out", "r"], {"model": "oracle", "out": Path("r")}),
    ("train", TrainFlags, ["--config", "vrnn", "--data", "d.h5", "--out", "r"],
     {"config": "vrnn", "data": Path("d.h5"), "out": Path("r")}),
]  # fmt: skip


@pytest.mark.parametrize(("verb", "cls", "argv", "values"), FLAGGED)
def test_flags_are_generated_from_each_verbs_dataclass(verb, cls, argv, values):
    parser = build_parser()
    assert from_args(cls, parser.parse_args([verb, *argv])) == cls(**values)
    # Every field is a flag (a true boolean as --no-<name>), and overrides are positional.
    flags = {a.dest: a for a in parser._subparsers._group_actions[0].choices[verb]._actions}
    for f in dataclasses.fields(cls):
        assert f.name in flags, f.name
    assert flags["overrides"].option_strings == []
    words = ["a.b=1", "c=2"]
    assert from_args(cls, parser.parse_args([verb, *argv, *words])).overrides == tuple(words)


def test_flag_values_are_typed_and_negative_booleans_flip():
    parser = build_parser()
    args = ["plan", "--model", "oracle", "--out", "r", "--episodes", "4", "--no-gifs"]
    flags = from_args(PlanFlags, parser.parse_args(args))
    assert flags.episodes == 4 and flags.gifs is False and flags.device == "auto"
    args = ["train", "--config", "vrnn", "--data", "d", "--out", "r", "--no-progress"]
    flags = from_args(TrainFlags, parser.parse_args([*args, "--time-limit", "1.5"]))
    assert flags.progress is False and flags.time_limit == 1.5 and flags.max_steps is None
    # The name --env had before envs had names still works.
    args = ["collect", "--out", "d.h5", "--episodes", "1", "--config", "push_random"]
    assert from_args(CollectFlags, parser.parse_args(args)).env == "push_random"

"""The CLI as a user runs it: a subprocess, from any directory."""

from __future__ import annotations

import argparse
import subprocess
import sys

from foresight.cli import build_parser

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

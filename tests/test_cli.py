"""The CLI as a user runs it: a subprocess, from any directory."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "foresight.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_help_lists_every_verb():
    result = run("--help")
    assert result.returncode == 0
    for verb in ("collect", "train", "plan", "evaluate", "report", "data"):
        assert verb in result.stdout


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

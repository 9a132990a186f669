"""``foresight plan`` end to end (subprocess) and its one-line errors on bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from foresight.cli import main
from foresight.models import PlanBudget, build_model, load_model_config, save_checkpoint
from foresight.models.checkpoint import CHECKPOINT_FORMAT

TINY_PLANNER = """
optimizer: {name: cem, samples: 12, iterations: 1, elites: 3}
horizon: 4
cost: {name: object}
"""


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "foresight.cli", "plan", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("model", ["zero", "oracle"])
def test_plan_cli_writes_a_run(tmp_path: Path, model: str) -> None:
    planner = tmp_path / "tiny.yaml"
    planner.write_text(TINY_PLANNER)
    out = tmp_path / "run"
    args = ["--model", model, "--suite", "easy", "--episodes", "1", "--seed", "3"]
    proc = _plan(*args, "--out", str(out), "--planner", str(planner))
    assert proc.returncode == 0, proc.stderr
    assert "success" in proc.stdout  # the rich summary table
    lines = (out / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["task_id"] == 0 and rec["steps"] == 30 and rec["seconds_per_step"] >= 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("success_rate", "episodes", "mean_final_distance", "seconds_per_step"):
        assert key in summary
    assert summary["episodes"] == 1 and summary["model"] == model
    assert summary["mean_final_distance"] == pytest.approx(rec["final_distance"])
    gif = out / "gifs" / "task_0000.gif"
    assert gif.stat().st_size > 1000
    # Same command again: resumes (nothing left to do), same records.
    again = _plan(*args, "--out", str(out), "--planner", str(planner))
    assert again.returncode == 0, again.stderr
    assert (out / "episodes.jsonl").read_text().splitlines() == lines


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(["plan", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_plan_bad_inputs_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "run"), "--episodes", "1"]
    assert "does not exist" in _error(capsys, "--model", str(tmp_path / "nope.pt"), *out)

    foreign = tmp_path / "foreign.pt"
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": "warp_drive",
            "config": {"model": "warp_drive"},
            "state_dict": {},
        },
        foreign,
    )
    assert "unknown model 'warp_drive'" in _error(capsys, "--model", str(foreign), *out)

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: mine\ntasks: {num_objects: [1, 1]}\nepisode_stepz: 5\n")
    err = _error(capsys, "--model", "zero", "--suite", str(suite), *out)
    assert "unknown key 'episode_stepz'" in err

    planner = tmp_path / "planner.yaml"
    planner.write_text("optimizer: {name: cem, eliets: 3}\n")
    err = _error(capsys, "--model", "oracle", "--planner", str(planner), *out)
    assert "unknown key 'eliets'" in err

    lpips_yaml = tmp_path / "lpips.yaml"
    lpips_yaml.write_text(f"cost: {{name: lpips, weights: {tmp_path / 'missing.pth'}}}\n")
    err = _error(capsys, "--model", "oracle", "--planner", str(lpips_yaml), *out)
    assert "LPIPS weights" in err

    assert "from 1 to" in _error(
        capsys, "--model", "zero", "--out", str(tmp_path / "r"), "--episodes", "0"
    )
    assert "no suite preset" in _error(capsys, "--model", "zero", "--suite", "medium", *out)
    assert "15,42" in _error(capsys, "--model", "zero", "--tasks", "1,x", *out)
    assert "not both" in _error(capsys, "--model", "zero", "--tasks", "1", *out)
    assert not (tmp_path / "run").exists()  # nothing was started


def test_plan_refuses_a_run_dir_with_other_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["plan", "--model", "zero", "--out", str(out), "--episodes", "1"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    err = _error(capsys, "--model", "random", "--out", str(out), "--episodes", "1")
    assert "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_plan_uses_and_records_the_models_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], short_suite: Callable[..., Path]
) -> None:
    """A model config's plan block overrides the preset; the run records it and refuses a
    different budget in the same folder unless --overwrite."""
    config = dataclasses.replace(
        load_model_config("copy_last"), plan=PlanBudget(samples=8, iterations=1)
    )
    ckpt = save_checkpoint(tmp_path / "model.pt", build_model(config))
    suite = short_suite()
    out = tmp_path / "run"
    args = ["--model", str(ckpt), "--suite", str(suite), "--episodes", "1", "--out", str(out)]
    assert main(["plan", *args, "--device", "cpu", "--no-gifs"]) == 0
    assert "(model)" in capsys.readouterr().out  # the summary table names the source
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budget"] == {
        "samples": 8,
        "iterations": 1,
        "batch_size": 200,
        "num_samples": 1,
        "from_model": ["samples", "iterations"],
    }
    settings = json.loads((out / "settings.json").read_text())
    assert settings["planner"]["optimizer"]["samples"] == 8

    # The same checkpoint file, now asking for another budget: other settings.
    config = dataclasses.replace(config, plan=PlanBudget(samples=12, iterations=1))
    save_checkpoint(ckpt, build_model(config))
    err = _error(capsys, *args, "--device", "cpu", "--no-gifs")
    assert "planner.optimizer.samples differ" in err and "--overwrite" in err
    assert main(["plan", *args, "--device", "cpu", "--no-gifs", "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["budget"]["samples"] == 12


def test_plan_takes_dotted_planner_overrides(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--model", "oracle", "--episodes", "1", "--no-gifs", "--out", str(out))
    result = _plan(*args, "optimizer.samples=8", "optimizer.elites=2", "optimizer.iterations=1")
    assert result.returncode == 0, result.stderr
    settings = json.loads((out / "settings.json").read_text())
    assert settings["planner"]["optimizer"]["samples"] == 8
    assert settings["planner"]["optimizer"]["elites"] == 2
    bad = _plan(*args, "optimizer.sample=8")
    assert bad.returncode == 2 and "unknown key 'sample'" in bad.stderr

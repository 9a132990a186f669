"""``foresight evaluate`` and ``foresight quickstart`` on real data, models and planning."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from skimage.metrics import peak_signal_noise_ratio

from foresight.cli import main
from foresight.data.dataset import SequenceDataset
from foresight.evaluation import evaluate, wilson_interval
from foresight.results import EVALUATION_FORMAT, EvaluateOptions, Evaluation


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 20), (20, 20), (5, 10), (3, 17)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-3) and hi == pytest.approx(ci.high, abs=1e-3)
    assert lo <= k / n <= hi


def test_copy_last_psnr_matches_scikit_image(tiny_h5: Path, tmp_path: Path) -> None:
    """copy_last's score is known in closed form: the last context frame against each truth."""
    out = tmp_path / "copy_last"
    options = EvaluateOptions(samples=2, sequences=4, future=5, control=False)
    result = evaluate("copy_last", out, data=tiny_h5, options=options)
    pred = result.prediction
    dataset = SequenceDataset(tiny_h5, 7, split="valid", image_size=32, stride=7)
    n = min(4, len(dataset))
    assert n >= 2 and pred.sequences == n and pred.samples == 2
    curve = pred.metrics["psnr"].mean_of_n
    assert len(curve) == 5
    # copy_last is deterministic: best-of-N is mean-of-N.
    assert pred.metrics["psnr"].best_of_n == pytest.approx(curve)

    idx = np.unique(np.linspace(0, len(dataset) - 1, n).round().astype(int))
    expected = np.zeros(5)
    for i in idx:
        frames = dataset[int(i)]["frames"].numpy()  # (T, C, H, W) in [0, 1]
        for t in range(5):
            expected[t] += peak_signal_noise_ratio(frames[2 + t], frames[1], data_range=1.0)
    assert curve == pytest.approx(expected / len(idx), abs=1e-3)

    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["format"] == EVALUATION_FORMAT and saved["model"] == "copy_last"
    assert saved["options"]["samples"] == 2 and saved["options"]["control"] is False
    assert "fvd" in pred.unavailable
    assert saved["control"] == {"unavailable": "planning skipped (--no-control)", "gifs": []}
    assert Evaluation.load(out) == result
    assert (out / "strip.png").stat().st_size > 0


def test_evaluate_cli_plans_and_reports_n_a_for_planner_baselines(
    tiny_h5: Path, tmp_path: Path
) -> None:
    out = tmp_path / "zero"
    args = ["evaluate", "--model", "zero", "--data", str(tiny_h5), "--out", str(out)]
    assert main([*args, "--episodes", "2"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    control = result["control"]
    assert control["episodes"] == 2 and control["success_rate"] == 0.0
    assert control["ci95"][0] == 0.0 and 0.5 < control["ci95"][1] < 1.0
    assert result["prediction"]["reason"].startswith("no motion")
    assert len(control["gifs"]) == 2 and all((out / g).is_file() for g in control["gifs"])
    assert "budget" not in control  # zero does not plan: it has no budget


def test_evaluate_records_the_budget_a_model_planned_with(
    tmp_path: Path, short_suite: Callable[..., Path]
) -> None:
    """A model's plan block overrides the planner preset's budget; the result says so."""
    from foresight.models import PlanBudget, build_model, load_model_config, save_checkpoint

    config = dataclasses.replace(
        load_model_config("copy_last"), plan=PlanBudget(samples=8, iterations=1)
    )
    ckpt = save_checkpoint(tmp_path / "model.pt", build_model(config))
    options = EvaluateOptions(episodes=1, suite=str(short_suite()))
    result = evaluate(str(ckpt), tmp_path / "eval", options=options, device="cpu")
    budget = result.control.budget
    assert budget is not None
    assert (budget.samples, budget.iterations) == (8, 1)
    assert budget.batch_size == 200 and budget.num_samples == 1  # the cem preset's
    assert budget.from_model == ("samples", "iterations") and budget.source == "model"
    summary = json.loads((tmp_path / "eval" / "plan" / "summary.json").read_text())
    assert summary["budget"]["samples"] == 8 and summary["budget"]["from_model"] == [
        "samples",
        "iterations",
    ]
    settings = json.loads((tmp_path / "eval" / "plan" / "settings.json").read_text())
    assert settings["planner"]["optimizer"]["samples"] == 8
    assert settings["planner"]["optimizer"]["elites"] == 2  # cem keeps its elite share
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert saved["control"]["budget"]["iterations"] == 1


def test_evaluate_bad_inputs_are_one_line_errors(
    tiny_h5: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["evaluate", "--data", str(tiny_h5), "--out", str(tmp_path / "r"), "--no-control"]
    assert main([*base, "--model", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main([*base, "--model", "copy_last", "--samples", "0"]) == 2
    assert "--samples" in capsys.readouterr().err
    assert main([*base, "--model", "copy_last", "--future", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--future" in err[0]


def test_quickstart_tiny_end_to_end_and_resume(tmp_path: Path) -> None:
    """The README's first command, as a user runs it: the whole loop, then a no-op rerun."""
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "foresight.cli", "quickstart", "--tiny", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]

    labels = ["svg_lp_tiny", "oracle", "random", "copy_last"]
    results = {k: json.loads((out / "eval" / k / "evaluation.json").read_text()) for k in labels}
    assert results["oracle"]["control"]["success_rate"] == 1.0
    assert results["random"]["control"]["success_rate"] == 0.0
    # Every video model predicted the same horizon, so the curves line up.
    horizons = {len(results[k]["prediction"]["metrics"]["psnr"]["mean_of_n"]) for k in labels[::3]}
    assert horizons == {8}
    html = (out / "report" / "report.html").read_text()
    root = ET.fromstring(html.split("\n", 1)[1])
    assert [tr.find("td").text for tr in root.findall(".//table/tbody/tr")] == labels

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("already evaluated: skipped") == 4
    assert "already complete" in " ".join(again.stderr.split())


def test_an_evaluation_asked_for_fewer_episodes_counts_the_first_ones(tmp_path: Path) -> None:
    out = tmp_path / "zero"
    args = ["evaluate", "--model", "zero", "--out", str(out)]
    assert main([*args, "--episodes", "2"]) == 0
    records = (out / "plan" / "episodes.jsonl").read_text()
    assert main([*args, "--episodes", "1"]) == 0
    result = Evaluation.load(out)
    assert result.control.episodes == 1 and result.options.episodes == 1
    # Only this run's GIF, not the other episode's, which stays with its record.
    assert result.control.gifs == ("plan/gifs/task_0000.gif",)
    assert (out / "plan" / "gifs" / "task_0001.gif").is_file()
    assert (out / "plan" / "episodes.jsonl").read_text() == records  # nothing planned again
    assert main([*args, "--episodes", "1", "--overwrite"]) == 0
    assert "overwrite" not in json.loads((out / "evaluation.json").read_text())["options"]


def test_the_summary_table_shows_non_finite_steps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from foresight import evaluation
    from foresight.results import Control, Fvd, MetricCurves, Prediction

    nan = float("nan")
    fake = Evaluation(
        label="x",
        model="m",
        prediction=Prediction(
            protocol="p",
            metrics={"psnr": MetricCurves((30.0, nan, 20.0), (31.0, 30.0, 29.0))},
            fvd=Fvd(value=nan, real_videos=2, generated_videos=2, frames=3),
        ),
        control=Control(unavailable="planning skipped (--no-control)"),
    )
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: fake)
    assert main(["evaluate", "--model", "copy_last", "--out", str(tmp_path / "e")]) == 0
    table = capsys.readouterr().out
    assert "n/a: nan at future step 2" in table and "25.000" not in table
    assert "30.000" in table  # best-of-N is finite
    assert "FVD" in table and table.count("n/a: nan") == 2


def test_evaluate_takes_dotted_planner_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "oracle"
    args = ["evaluate", "--model", "oracle", "--episodes", "1", "--planner", "fast"]
    words = ["optimizer.samples=8", "optimizer.elites=2", "optimizer.iterations=1"]
    assert main([*args, "--out", str(out), *words, "cost.mask=unmix"]) == 0
    result = Evaluation.load(out)
    assert result.options.planner_overrides == (*words, "cost.mask=unmix")
    settings = json.loads((out / "plan" / "settings.json").read_text())
    assert settings["planner"]["cost"]["mask"] == "unmix"
    assert result.control.budget.samples == 8 and result.control.budget.iterations == 1
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad"), "cost.mask=blur"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "mask" in err and "\n" not in err
    assert not (tmp_path / "bad").exists()

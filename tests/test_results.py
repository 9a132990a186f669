"""``evaluation.json``'s schema and the options of ``foresight evaluate``, each defined once."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from foresight.cli import build_parser
from foresight.config import load_config
from foresight.errors import ForesightError
from foresight.flags import from_args
from foresight.quickstart import QuickstartConfig
from foresight.results import (
    EVALUATION_FORMAT,
    PLAN_SUMMARY_FORMAT,
    Control,
    EffectiveBudget,
    EvaluateOptions,
    Evaluation,
    Fvd,
    KindSuccess,
    MetricCurves,
    PlanSummary,
    Prediction,
    Ranking,
    curve_mean,
    non_finite_steps,
)


def _evaluation() -> Evaluation:
    return Evaluation(
        label="svg",
        model="svg_lp",
        checkpoint="/runs/svg/checkpoint.pt",
        options=EvaluateOptions(samples=2, episodes=5, future=8),
        prediction=Prediction(
            metrics={"psnr": MetricCurves((30.0, float("inf")), (31.0, 29.5))},
            unavailable={"lpips": "no LPIPS weights"},
            fvd=Fvd(value=12.5, real_videos=4, generated_videos=8, frames=10),
            protocol="4 valid sequences",
            samples=2,
            sequences=4,
            strip="strip.png",
        ),
        control=Control(
            success_rate=0.4,
            successes=2,
            episodes=5,
            ci95=(0.1, 0.8),
            mean_final_distance=0.07,
            seconds_per_step=0.2,
            planner="cem",
            budget=EffectiveBudget(8, 1, 200, 1, from_model=("samples", "iterations")),
            gifs=("plan/gifs/task_0000.gif",),
        ),
        ranking=Ranking(rho=0.6, elite_overlap=0.5, regret=0.3, states=20, candidates=64),
    )


def test_evaluation_round_trips_through_its_file(tmp_path: Path) -> None:
    result = _evaluation()
    result.save(tmp_path / "evaluation.json")
    assert Evaluation.load(tmp_path) == result
    data = json.loads((tmp_path / "evaluation.json").read_text())
    assert data["format"] == EVALUATION_FORMAT
    # The documented key names, and no keys for what is not there.
    assert data["prediction"]["metrics"]["psnr"]["best_of_n"] == [31.0, 29.5]
    assert data["control"]["budget"]["from_model"] == ["samples", "iterations"]
    assert "reason" not in data["prediction"] and "unavailable" not in data["control"]
    assert data["ranking"]["rho"] == 0.6 and "unavailable" not in data["ranking"]


def test_a_version_2_file_reads_without_a_ranking() -> None:
    data = json.loads(_evaluation().to_json())
    del data["ranking"]
    result = Evaluation.from_json(json.dumps({**data, "format": "foresight-evaluation/2"}))
    assert result.ranking is None and result.control == _evaluation().control


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a foresight evaluation"),
        ('{"format": "foresight-checkpoint/1"}', "not a foresight evaluation"),
        ('{"format": "foresight-evaluation/4"}', "does not read"),
        ('{"format": "foresight-evaluation/3", "label": "x"}', "damaged or foreign"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_foreign_corrupt_or_newer_files_are_one_line_errors(text: str, match: str) -> None:
    with pytest.raises(ForesightError, match=match) as err:
        Evaluation.from_json(text, "run/evaluation.json")
    assert "\n" not in str(err.value)


def test_damaged_blocks_are_refused() -> None:
    data = json.loads(_evaluation().to_json())
    data["control"] = {"success_rate": 0.5}  # neither numbers nor a reason
    with pytest.raises(ForesightError, match="'control' lacks"):
        Evaluation.from_json(json.dumps(data))
    data = json.loads(_evaluation().to_json())
    data["prediction"]["metrics"]["psnr"]["median_of_n"] = [1.0]
    with pytest.raises(ForesightError, match="unknown key 'median_of_n'"):
        Evaluation.from_json(json.dumps(data))


def test_version_1_files_are_read() -> None:
    v1 = {
        "format": "foresight-evaluation/1",
        "label": "oracle",
        "model": "oracle",
        "checkpoint": None,
        "prediction": {"reason": "the simulator itself", "unavailable": {}},
        "control": {
            "success_rate": 1.0,
            "successes": 2,
            "episodes": 2,
            "mean_final_distance": 0.01,
            "seconds_per_step": 0.3,
            "model_seconds_per_step": 0.2,
            "model": "oracle",
            "suite": "easy",
            "planner": "cem",
            "cost": "object",
            "horizon": 10,
            "seed": 0,
            "ci95": [0.34, 1.0],
            "gifs": ["plan/gifs/task_0000.gif"],
        },
    }
    result = Evaluation.from_json(json.dumps(v1))
    assert result.options is None and result.control.budget is None
    assert result.control.ci95 == (0.34, 1.0)


def _evaluate_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["evaluate", "--model", "zero", "--out", "r", *argv])


def test_flags_are_generated_from_the_options() -> None:
    assert from_args(EvaluateOptions, _evaluate_args()) == EvaluateOptions()
    args = _evaluate_args(
        "--samples", "5", "--future", "8", "--lpips-weights", "w.pt", "--no-control"
    )  # fmt: skip
    options = from_args(EvaluateOptions, args)
    assert options == EvaluateOptions(samples=5, future=8, lpips_weights="w.pt", control=False)
    with pytest.raises(ForesightError, match="--sequences"):
        from_args(EvaluateOptions, _evaluate_args("--sequences", "0"))


def test_the_quickstart_embeds_the_options(tmp_path: Path) -> None:
    path = tmp_path / "qs.yaml"
    path.write_text("evaluate: {samples: 5, episodes: 2}\n")
    config = load_config(QuickstartConfig, path)
    assert config.evaluate == dataclasses.replace(EvaluateOptions(), samples=5, episodes=2)
    path.write_text("evaluate: {sampels: 5}\n")
    with pytest.raises(ForesightError, match="unknown key 'sampels'"):
        load_config(QuickstartConfig, path)


def _v2(**changes) -> str:
    """A version-2 file's text with some blocks changed (``None`` removes a key)."""
    data = json.loads(_evaluation().to_json())
    for path, value in changes.items():
        *parents, key = path.split("__")
        block = data
        for name in parents:
            block = block[name]
        if value is None:
            del block[key]
        else:
            block[key] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (_v2(label=5), "'label': expected a string, got 5"),
        (_v2(prediction=[1]), "'prediction': expected a mapping"),
        (_v2(prediction__metrics=[1]), "'metrics': expected a mapping"),
        (_v2(prediction__metrics={"psnr": 5}), "metric 'psnr': expected a mapping"),
        (_v2(prediction__metrics={"psnr": None}), "metric 'psnr': expected a mapping"),
        (
            _v2(prediction__metrics={"psnr": {"mean_of_n": "x", "best_of_n": []}}),
            "'mean_of_n': expected a list",
        ),
        (
            _v2(prediction__metrics={"psnr": {"mean_of_n": ["x"], "best_of_n": []}}),
            "'mean_of_n'[0]: expected a number, got 'x'",
        ),
        (_v2(prediction__unavailable={"lpips": 5}), "'unavailable' must map metric names"),
        (_v2(prediction__unavailable=["lpips"]), "'unavailable': expected a mapping"),
        (_v2(prediction__strip=3), "'strip': expected a string"),
        (_v2(control__gifs="a.gif"), "'gifs': expected a list"),
        (_v2(control__ci95=[0.1]), "'ci95': expected 2 values"),
        (_v2(control__success_rate="high"), "'success_rate': expected a number"),
        (_v2(options__samples=True), "'samples': expected an integer"),
        (_v2(ranking__rho="x"), "'rho': expected a number"),
        (_v2(ranking={"rho": 0.5}), "neither 'states' nor an 'unavailable' reason"),
    ],
)
def test_values_of_the_wrong_type_are_one_line_errors(text: str, match: str) -> None:
    with pytest.raises(ForesightError, match=re.escape(match)) as err:
        Evaluation.from_json(text, "run/evaluation.json")
    assert "\n" not in str(err.value) and str(err.value).startswith("run/evaluation.json")


def test_non_finite_numbers_are_written_as_strict_json_and_read_back(tmp_path: Path) -> None:
    nan, inf = float("nan"), float("inf")
    result = dataclasses.replace(
        _evaluation(),
        prediction=dataclasses.replace(
            _evaluation().prediction,
            metrics={"psnr": MetricCurves((30.0, nan, inf), (-inf, 29.5, nan))},
            fvd=Fvd(value=nan, real_videos=4, generated_videos=8, frames=10),
        ),
    )
    result.save(tmp_path / "evaluation.json")
    text = (tmp_path / "evaluation.json").read_text()

    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} in evaluation.json")

    data = json.loads(text, parse_constant=refuse)  # strict JSON: no NaN or Infinity
    assert data["prediction"]["metrics"]["psnr"]["mean_of_n"] == [30.0, "nan", "inf"]
    assert data["prediction"]["metrics"]["psnr"]["best_of_n"] == ["-inf", 29.5, "nan"]
    assert data["prediction"]["fvd"]["value"] == "nan"
    back = Evaluation.load(tmp_path)
    psnr = back.prediction.metrics["psnr"]
    assert psnr.mean_of_n[0] == 30.0 and math.isnan(psnr.mean_of_n[1])
    assert psnr.mean_of_n[2] == inf and psnr.best_of_n[0] == -inf
    assert math.isnan(back.prediction.fvd.value)
    assert back.control == result.control and back.options == result.options


def test_bare_nan_written_by_older_versions_is_read() -> None:
    data = json.loads(_evaluation().to_json())
    data["prediction"]["metrics"]["psnr"]["mean_of_n"] = [30.0, float("nan")]
    data["control"]["mean_final_distance"] = float("nan")
    text = json.dumps(data)
    assert "NaN" in text  # what json.dumps writes by default, and versions before this one
    result = Evaluation.from_json(text)
    assert math.isnan(result.prediction.metrics["psnr"].mean_of_n[1])
    assert math.isnan(result.control.mean_final_distance)
    v1 = {**data, "format": "foresight-evaluation/1"}
    del v1["options"]
    assert math.isnan(Evaluation.from_json(json.dumps(v1)).control.mean_final_distance)


def test_a_string_nan_stays_text_where_the_schema_holds_text() -> None:
    result = Evaluation.from_json(_v2(label="nan", prediction__strip="inf"))
    assert result.label == "nan" and result.prediction.strip == "inf"
    with pytest.raises(ForesightError, match="'successes': expected an integer"):
        Evaluation.from_json(_v2(control__successes="nan"))


def test_non_finite_steps_are_named_and_never_averaged_away() -> None:
    nan, inf = float("nan"), float("inf")
    assert non_finite_steps([1.0, 2.0]) is None
    assert curve_mean([1.0, 2.0]) == 1.5 and curve_mean([]) is None
    assert math.isnan(curve_mean([30.0, nan]))
    assert math.isnan(curve_mean([inf, -inf]))
    assert non_finite_steps([1.0, nan, nan, 2.0, nan, inf]) == (
        "nan at future steps 2-3, 5; inf at future step 6"
    )
    many = [nan, 1.0] * 6
    assert non_finite_steps(many) == "nan at future steps 1, 3, 5 and 3 more"


#: A planning run's summary.json as written before the file had a format (no "format", no
#: "ever_success_rate"): runs made then still read.
OLD_PLAN_SUMMARY = {
    "success_rate": 0.5,
    "successes": 1,
    "episodes": 2,
    "mean_final_distance": 0.031,
    "seconds_per_step": 0.9,
    "model_seconds_per_step": 0.7,
    "model": "runs/vrnn/checkpoint.pt",
    "suite": "easy",
    "planner": "cem",
    "cost": "object",
    "horizon": 10,
    "budget": None,
    "seed": 0,
}


def test_plan_summary_round_trips_and_reads_files_from_before_its_format(tmp_path: Path) -> None:
    old = PlanSummary.from_json(json.dumps(OLD_PLAN_SUMMARY))
    assert old.ever_success_rate is None and old.format == PLAN_SUMMARY_FORMAT
    new = dataclasses.replace(
        old,
        ever_success_rate=1.0,
        budget=EffectiveBudget(200, 3, 200, 1, ("samples",)),
        by_kind=(KindSuccess("box", 1, 1),),
    )
    (tmp_path / "summary.json").write_text(new.to_json())
    assert PlanSummary.load(tmp_path) == new
    assert json.loads(new.to_json())["format"] == PLAN_SUMMARY_FORMAT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not a planning summary"),
        ("[1, 2]", "is not a planning summary"),
        (json.dumps({**OLD_PLAN_SUMMARY, "format": "foresight-plan-summary/9"}), "does not read"),
        (json.dumps({**OLD_PLAN_SUMMARY, "success": 1}), "success"),
        (json.dumps({k: v for k, v in OLD_PLAN_SUMMARY.items() if k != "model"}), "model"),
        (
            json.dumps({**OLD_PLAN_SUMMARY, "by_kind": [{"kind": "box", "successes": "1"}]}),
            "by_kind",
        ),
    ],
)
def test_a_damaged_plan_summary_is_one_line(text: str, message: str) -> None:
    with pytest.raises(ForesightError, match=message) as err:
        PlanSummary.from_json(text)
    assert "\n" not in str(err.value)

"""Bad input to ``report``, ``evaluate`` and ``data preview``: one clear line, exit 2, nothing lost.

Each case runs through the real CLI (see :mod:`badinput`): foreign, damaged or mistyped
evaluation folders, outputs that cannot be written or are already there, and an evaluation
folder asked to plan with other settings. Below the table: the ways out (``--overwrite``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from badinput import Case, check_case, mkdir, then, write

from foresight.cli import main
from foresight.results import EVALUATION_FORMAT

#: An evaluation that planned nothing and predicted nothing: the smallest valid file.
MINIMAL = {
    "format": EVALUATION_FORMAT,
    "label": "m",
    "model": "zero",
    "prediction": {"reason": "no motion, no model"},
    "control": {"unavailable": "planning skipped (--no-control)"},
}
ZERO = ("evaluate", "--model", "zero", "--episodes", "1")
NO_CONTROL = ("evaluate", "--model", "copy_last", "--no-control", "--sequences", "2")
PREVIEW = ("data", "preview", "{h5}")


def _evaluation(name: str, **changes):
    """Setup: ``tmp/name/evaluation.json``, :data:`MINIMAL` with top-level keys changed."""
    return write(f"{name}/evaluation.json", {**MINIMAL, **changes})


def _copy_evaluated(name: str):
    """Setup: a copy of the 1-episode ``zero`` evaluation the module fixture made."""
    return lambda inputs: shutil.copytree(inputs["evaluated"], inputs["tmp"] / name)


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

CASES = [
    # ---------------------------------------------------------------- report: outputs
    Case(
        "report-out-is-a-file",
        ("report", "{tmp}/e", "--out", "{tmp}/rep"),
        "--out",
        then(_evaluation("e"), write("rep", "my notes")),
    ),
    Case(
        "report-out-inside-a-file",
        ("report", "{tmp}/e", "--out", "{tmp}/rep/sub"),
        "is a file, not a folder",
        then(_evaluation("e"), write("rep", "my notes")),
    ),
    # ---------------------------------------------------------------- report: run arguments
    Case("report-run-missing", ("report", "{tmp}/none", "--out", "{tmp}/r"), "none does not exist"),
    Case(
        "report-run-folder-without-evaluation",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "evaluation.json does not exist; run 'foresight evaluate'",
        mkdir("e"),
    ),
    Case(
        "report-run-is-an-image",
        ("report", "{tmp}/strip.png", "--out", "{tmp}/r"),
        "strip.png is not an evaluation.json (not UTF-8",
        write("strip.png", PNG),
    ),
    Case(
        "report-run-is-other-text",
        ("report", "{tmp}/notes.txt", "--out", "{tmp}/r"),
        "notes.txt is not valid JSON",
        write("notes.txt", "a note, not an evaluation\n"),
    ),
    Case(
        "report-json-truncated",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "e/evaluation.json is not valid JSON",
        write("e/evaluation.json", json.dumps(MINIMAL)[:40]),
    ),
    Case(
        "report-json-empty",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "e/evaluation.json is not valid JSON",
        write("e/evaluation.json", ""),
    ),
    Case(
        "report-json-a-list",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "e/evaluation.json is not a foresight evaluation",
        write("e/evaluation.json", "[1, 2, 3]"),
    ),
    Case(
        "report-json-a-number",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "e/evaluation.json is not a foresight evaluation",
        write("e/evaluation.json", "12"),
    ),
    Case(
        "report-json-newer-format",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "does not read",
        _evaluation("e", format="foresight-evaluation/99"),
    ),
    Case(
        "report-json-label-not-text",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "'label': expected a string, got 5",
        _evaluation("e", label=5),
    ),
    Case(
        "report-json-prediction-a-list",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "'prediction': expected a mapping",
        _evaluation("e", prediction=["psnr"]),
    ),
    Case(
        "report-json-metric-a-number",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "metric 'psnr': expected a mapping of mean_of_n and best_of_n",
        _evaluation("e", prediction={"protocol": "p", "metrics": {"psnr": 30}}),
    ),
    Case(
        "report-json-curve-of-text",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "'mean_of_n'[1]: expected a number, got 'high'",
        _evaluation(
            "e",
            prediction={
                "protocol": "p",
                "metrics": {"psnr": {"mean_of_n": [30, "high"], "best_of_n": [31, 32]}},
            },
        ),
    ),
    Case(
        "report-json-reason-not-text",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "'unavailable' must map metric names to reasons",
        _evaluation("e", prediction={"reason": "r", "unavailable": {"lpips": 0}}),
    ),
    Case(
        "report-json-gifs-not-a-list",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "'gifs': expected a list",
        _evaluation("e", control={"unavailable": "u", "gifs": "plan/gifs/task_0000.gif"}),
    ),
    Case(
        "report-json-control-incomplete",
        ("report", "{tmp}/e", "--out", "{tmp}/r"),
        "'control' lacks",
        _evaluation("e", control={"success_rate": 0.5}),
    ),
    Case(
        "report-one-bad-run-among-good-keeps-the-old-report",
        ("report", "{tmp}/good", "{tmp}/bad", "--out", "{tmp}/r"),
        "bad/evaluation.json is not valid JSON",
        then(
            _evaluation("good"),
            write("bad/evaluation.json", "{"),
            write("r/report.html", "<p>the last report</p>"),
            write("r/report.md", "the last report"),
        ),
    ),
    # ---------------------------------------------------------------- evaluate
    Case(
        "evaluate-suite-changed-in-an-evaluated-folder",
        (*ZERO, "--suite", "hard", "--out", "{tmp}/e"),
        "pass --overwrite to replace it",
        _copy_evaluated("e"),
    ),
    Case(
        "evaluate-plan-folder-not-a-plan-run",
        (*ZERO, "--out", "{tmp}/e"),
        "not a 'foresight plan' run",
        write("e/plan/episodes.jsonl", '{"task_id": 0}\n'),
    ),
    Case(
        "evaluate-episodes-0",
        ("evaluate", "--model", "zero", "--episodes", "0", "--out", "{tmp}/e"),
        "--episodes",
    ),
    Case(
        "evaluate-suite-unknown-in-an-evaluated-folder",
        (*ZERO, "--suite", "nosuch", "--out", "{tmp}/e"),
        "no suite preset named 'nosuch'",
        _copy_evaluated("e"),
    ),
    Case(
        "evaluate-planner-unknown",
        (*ZERO, "--planner", "nosuch", "--out", "{tmp}/e"),
        "no planner preset named 'nosuch'",
    ),
    Case(
        "evaluate-checkpoint-missing",
        ("evaluate", "--model", "{tmp}/none.pt", "--out", "{tmp}/e"),
        "none.pt does not exist",
    ),
    Case(
        "evaluate-data-missing",
        (*NO_CONTROL, "--data", "{tmp}/none.h5", "--out", "{tmp}/e"),
        "none.h5 does not exist",
    ),
    Case(
        "evaluate-data-not-hdf5",
        (*NO_CONTROL, "--data", "{tmp}/d.h5", "--out", "{tmp}/e"),
        "not a readable HDF5 file",
        write("d.h5", "not a dataset"),
    ),
    Case(
        "evaluate-data-bad-before-planning",
        (*ZERO[:2], "copy_last", *ZERO[3:], "--data", "{tmp}/d.h5", "--out", "{tmp}/e"),
        "not a readable HDF5 file",
        write("d.h5", "not a dataset"),
    ),
    Case(
        "evaluate-future-0",
        (*NO_CONTROL, "--data", "{h5}", "--future", "0", "--out", "{tmp}/e"),
        "--future",
    ),
    Case(
        "evaluate-i3d-missing",
        (*NO_CONTROL, "--data", "{h5}", "--i3d", "{tmp}/i3d.pt", "--out", "{tmp}/e"),
        "i3d.pt do not exist",
    ),
    Case(
        "evaluate-out-inside-a-file",
        (*ZERO, "--out", "{tmp}/f/e"),
        "is a file, not a folder",
        write("f", "x"),
    ),
    # ---------------------------------------------------------------- data preview
    Case(
        "preview-out-exists",
        (*PREVIEW, "--out", "{tmp}/grid.png"),
        "grid.png exists; pass --overwrite or choose another --out",
        write("grid.png", PNG),
    ),
    Case(
        "preview-out-is-a-folder",
        (*PREVIEW, "--out", "{tmp}/pictures"),
        "--out",
        mkdir("pictures"),
    ),
    Case(
        "preview-out-is-a-folder-even-with-overwrite",
        (*PREVIEW, "--out", "{tmp}/pictures", "--overwrite"),
        "is a folder, not a file",
        then(mkdir("pictures"), write("pictures/mine.png", PNG)),
    ),
    Case(
        "preview-out-inside-a-file",
        (*PREVIEW, "--out", "{tmp}/f/grid.png"),
        "is a file, not a folder",
        write("f", "x"),
    ),
    Case("preview-scale-0", (*PREVIEW, "--out", "{tmp}/g.png", "--scale", "0"), "--scale"),
    Case("preview-frames-0", (*PREVIEW, "--out", "{tmp}/g.png", "--frames", "0"), "--frames"),
    Case(
        "preview-data-missing",
        ("data", "preview", "{tmp}/none.h5", "--out", "{tmp}/g.png"),
        "none.h5 does not exist",
    ),
    Case(
        "preview-data-not-hdf5",
        ("data", "preview", "{tmp}/d.h5", "--out", "{tmp}/g.png"),
        "not a readable HDF5 file",
        write("d.h5", PNG),
    ),
]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished evaluation folder: the ``zero`` baseline, one ``easy`` episode."""
    out = tmp_path_factory.mktemp("evaluated") / "zero"
    assert main([*ZERO, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(
    case: Case,
    tmp_path: Path,
    tiny_h5: Path,
    evaluated: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    check_case(case, {"tmp": tmp_path, "h5": tiny_h5, "evaluated": evaluated}, capsys)


def test_a_failed_preview_writes_nothing(tmp_path: Path, tiny_h5: Path) -> None:
    out = tmp_path / "g.png"
    assert main([*(w.format(h5=tiny_h5) for w in PREVIEW), "--out", str(out), "--scale", "0"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_preview_overwrite_replaces_the_file_atomically(tmp_path: Path, tiny_h5: Path) -> None:
    out = tmp_path / "grid.png"
    out.write_bytes(b"an older picture")
    args = ["data", "preview", str(tiny_h5), "--out", str(out), "--episodes", "2"]
    assert main([*args, "--overwrite"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temporary file left


def test_evaluate_overwrite_is_the_way_out(evaluated: Path, tmp_path: Path) -> None:
    out = tmp_path / "e"
    shutil.copytree(evaluated, out)
    assert main([*ZERO, "--suite", "hard", "--out", str(out)]) == 2
    assert main([*ZERO, "--suite", "hard", "--out", str(out), "--overwrite"]) == 0
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["control"]["suite"] == "hard" and saved["options"]["suite"] == "hard"


def test_evaluate_asked_for_more_episodes_plans_only_the_new_ones(
    evaluated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "e"
    shutil.copytree(evaluated, out)
    first = (out / "plan" / "episodes.jsonl").read_text()
    assert main([*ZERO[:-1], "2", "--out", str(out)]) == 0
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["control"]["episodes"] == 2 and saved["options"]["episodes"] == 2
    assert (out / "plan" / "episodes.jsonl").read_text().startswith(first)

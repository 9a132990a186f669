"""RunDir: the one settings check, resume and fresh start of collect's parts and plan's runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from foresight.errors import ConfigError, ForesightError
from foresight.rundir import SETTINGS, RunDir, name_differences, settings_differences

SETTINGS_A = {
    "env": "push",
    "seed": 0,
    "planner": {"optimizer": {"samples": 64, "iterations": 3}},
    "n": 2,
}


def run_dir(path: Path) -> RunDir:
    return RunDir(path, "a test run", owned=("records.jsonl", "part_*.npz"), legacy={"env": "push"})


def test_a_new_folder_starts_and_the_same_settings_resume(tmp_path: Path) -> None:
    run = run_dir(tmp_path / "run")
    assert run.open(SETTINGS_A, overwrite=False) is False
    assert json.loads((tmp_path / "run" / SETTINGS).read_text()) == SETTINGS_A
    (tmp_path / "run" / "records.jsonl").write_text("done\n")
    assert run.open(SETTINGS_A, overwrite=False) is True
    # The same settings resume even with --overwrite: an interrupted overwrite continues.
    assert run.open(SETTINGS_A, overwrite=True) is True
    assert (tmp_path / "run" / "records.jsonl").read_text() == "done\n"


def test_other_settings_are_refused_naming_what_differs(tmp_path: Path) -> None:
    run = run_dir(tmp_path / "run")
    run.open(SETTINGS_A, overwrite=False)
    other = {**SETTINGS_A, "planner": {"optimizer": {"samples": 8, "iterations": 3}}, "n": 3}
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(ForesightError) as err:
        run.open(other, overwrite=False)
    message = str(err.value)
    assert "(n, planner.optimizer.samples differ)" in message and "--overwrite" in message
    assert "\n" not in message
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


def test_overwrite_removes_the_runs_files_and_nothing_else(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    run = run_dir(folder)
    run.open(SETTINGS_A, overwrite=False)
    for name in ("records.jsonl", "part_0.npz", "part_1.npz", "notes.txt"):
        (folder / name).write_text(name)
    (folder / ".part_2.npz.abc.tmp").write_text("half")  # a killed writer's temporary
    other = {**SETTINGS_A, "seed": 1}
    assert run.open(other, overwrite=True) is False
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", SETTINGS]
    assert json.loads((folder / SETTINGS).read_text()) == other


def test_legacy_settings_read_with_the_value_older_runs_had(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    before_env = {k: v for k, v in SETTINGS_A.items() if k != "env"}
    (folder / SETTINGS).write_text(json.dumps(before_env))  # written before "env" existed
    assert run_dir(folder).open(SETTINGS_A, overwrite=False) is True
    with pytest.raises(ForesightError, match=r"\(env differ\)"):
        run_dir(folder).open({**SETTINGS_A, "env": "pusht"}, overwrite=False)


def test_a_nested_legacy_setting_fills_only_where_the_run_asked_for_it(tmp_path: Path) -> None:
    """A planner field added since: older runs resume, a run of another cost gains no key."""
    legacy = {"planner.cost.within": 0.0}
    old = {"planner": {"cost": {"name": "object", "weight": 1.0}}, "seed": 3}
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / SETTINGS).write_text(json.dumps(old))
    run = RunDir(folder, "a test run", legacy=legacy)
    asked = {"planner": {"cost": {"name": "object", "weight": 1.0, "within": 0.0}}, "seed": 3}
    assert run.open(asked, overwrite=False) is True
    changed = {"planner": {"cost": {"name": "object", "weight": 1.0, "within": 0.1}}, "seed": 3}
    with pytest.raises(ForesightError, match=r"\(planner\.cost\.within differ\)"):
        run.open(changed, overwrite=False)
    # A cost without the field: the stored run is read as it was written, and resumes.
    pixel = {"planner": {"cost": {"name": "pixel"}}, "seed": 3}
    (folder / SETTINGS).write_text(json.dumps(pixel))
    assert run.open(pixel, overwrite=False) is True
    assert run.stored_settings(pixel) == pixel


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]"])
def test_damaged_settings_need_overwrite(tmp_path: Path, content: bytes) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / SETTINGS).write_bytes(content)
    with pytest.raises(ForesightError, match="--overwrite") as err:
        run_dir(folder).open(SETTINGS_A, overwrite=False)
    assert "\n" not in str(err.value)
    assert run_dir(folder).open(SETTINGS_A, overwrite=True) is False


def test_a_folder_of_run_files_without_settings_is_not_taken(tmp_path: Path) -> None:
    """What an interrupted fresh start leaves (its files, no settings), or someone's folder."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "records.jsonl").write_text("someone else's\n")
    with pytest.raises(ForesightError, match="no settings.json"):
        run_dir(folder).open(SETTINGS_A, overwrite=False)
    assert (folder / "records.jsonl").read_text() == "someone else's\n"
    assert not (folder / SETTINGS).exists()
    # A folder with other files only (a user's notes) is a fine place to start.
    (folder / "records.jsonl").unlink()
    (folder / "notes.txt").write_text("mine")
    assert run_dir(folder).open(SETTINGS_A, overwrite=False) is False


def test_a_file_where_the_folder_goes_is_an_error_of_the_callers_class(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("a file")
    run = RunDir(tmp_path / "run", "a test run", error=ConfigError)
    with pytest.raises(ConfigError, match="is a file where a test run would be kept"):
        run.open(SETTINGS_A, overwrite=True)
    assert (tmp_path / "run").read_text() == "a file"


def test_differences_follow_nested_settings_and_a_long_list_is_cut() -> None:
    old = {"a": 1, "env": {"image_size": 64, "objects": [1, 2]}, "gone": 0}
    new = {"a": 1, "env": {"image_size": 32, "objects": [1, 3]}, "added": 0}
    assert settings_differences(old, new) == [
        "added",
        "env.image_size",
        "env.objects",
        "gone",
    ]
    assert name_differences([f"k{i}" for i in range(9)], limit=3) == "k0, k1, k2 and 6 more"

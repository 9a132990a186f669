"""Experiment tracking (``train.log``): TensorBoard and W&B get what ``metrics.jsonl`` gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_models import tiny_model

from foresight.cli import main
from foresight.config import to_dict
from foresight.errors import ConfigError
from foresight.training.tracking import TRACKERS, Tracker, check_trackers


def _config(tmp_path: Path, max_steps: int = 4) -> Path:
    config = to_dict(tiny_model("svg_det").config)
    config["train"].update(
        batch_size=2, max_steps=max_steps, warmup_steps=1, log_every=1, eval_every=2,
        eval_batches=1, eval_samples=1,
    )  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _train(config: Path, data: Path, run: Path, *extra: str) -> int:
    argv = ["train", "--config", str(config), "--data", str(data), "--out", str(run)]
    return main([*argv, "--device", "cpu", "--no-progress", *extra])


def _jsonl(run: Path, split: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("split") == split]


def _events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_tensorboard_gets_every_jsonl_scalar_and_the_sample_strips(tmp_path, tiny_h5, capsys):
    run = tmp_path / "run"
    config = _config(tmp_path)
    assert _train(config, tiny_h5, run, "train.log=[jsonl,tensorboard]") == 0
    assert "Traceback" not in capsys.readouterr().err
    acc = _events(run)
    train = _jsonl(run, "train")
    scalars = acc.Scalars("train/loss")
    assert [e.step for e in scalars] == [r["step"] for r in train] == [1, 2, 3, 4]
    assert [e.value for e in scalars] == pytest.approx([r["loss"] for r in train], rel=1e-6)
    valid = _jsonl(run, "valid")
    assert [e.step for e in acc.Scalars("valid/ssim_mean")] == [r["step"] for r in valid]
    assert "valid/ssim_mean_per_step" not in acc.Tags()["scalars"]  # curves stay in the jsonl
    images = acc.Images("valid/samples")
    assert [i.step for i in images] == [2, 4] and images[0].width > 0

    # Resumed to more steps, the curve continues once per step.
    more = ["--max-steps", "6", "--resume"]
    assert _train(config, tiny_h5, run, "train.log=[tensorboard]", *more) == 0
    steps = [e.step for e in _events(run).Scalars("train/loss")]
    assert steps == [r["step"] for r in _jsonl(run, "train")] == list(range(1, 7))


def test_a_resumed_run_purges_what_was_logged_after_its_checkpoint(tmp_path, tiny_h5):
    """A kill after step 4's records but before its checkpoint: steps 3-4 are trained again."""
    run = tmp_path / "run"
    config = _config(tmp_path, max_steps=2)
    assert _train(config, tiny_h5, run, "train.log=[tensorboard]") == 0
    at_step_2 = (run / "checkpoint.pt").read_bytes()
    more = ["--max-steps", "4", "--resume"]
    assert _train(config, tiny_h5, run, "train.log=[tensorboard]", *more) == 0
    first = {e.step: e.value for e in _events(run).Scalars("train/loss")}
    (run / "checkpoint.pt").write_bytes(at_step_2)  # what the kill left
    assert _train(config, tiny_h5, run, "train.log=[tensorboard]", *more) == 0
    again = [(e.step, e.value) for e in _events(run).Scalars("train/loss")]
    assert [step for step, _ in again] == [1, 2, 3, 4]
    assert [v for _, v in again] == pytest.approx([first[k] for k in (1, 2, 3, 4)], rel=1e-6)


def test_wandb_runs_offline_and_a_resumed_run_continues_the_same_run(
    tmp_path, tiny_h5, monkeypatch
):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    config = _config(tmp_path, max_steps=2)
    assert _train(config, tiny_h5, run, "train.log=[wandb]") == 0
    run_id = (run / "wandb_id").read_text().strip()
    offline = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and offline[0].name.endswith(run_id)
    (records,) = offline[0].glob("*.wandb")  # the run's log, for `wandb sync`
    data = records.read_bytes()
    assert b"train/loss" in data and b"valid/ssim_mean" in data and b"svg_det" in data
    assert list((offline[0] / "files" / "media" / "images" / "valid").glob("samples_2_*.png"))
    assert _train(config, tiny_h5, run, "train.log=[wandb]", "--max-steps", "4", "--resume") == 0
    assert (run / "wandb_id").read_text().strip() == run_id
    assert all(d.name.endswith(run_id) for d in (run / "wandb").glob("offline-run-*"))


def test_unknown_or_uninstalled_trackers_are_one_line_before_any_work(tmp_path, tiny_h5, capsys):
    run = tmp_path / "run"
    assert _train(_config(tmp_path), tiny_h5, run, "train.log=[jsonl,mlflow]") != 0
    err = capsys.readouterr().err.strip()
    assert err.endswith("train.log: unknown tracker 'mlflow' (choose one of: tensorboard, wandb)")
    assert "\n" not in err and not run.exists()

    class Absent(Tracker):
        package = "no_such_package_for_foresight"

    with pytest.raises(ConfigError, match=r'pip install "foresight\[absent\]"'):
        Absent.check("absent")
    assert check_trackers(["jsonl", "tensorboard", "tensorboard"]) == [TRACKERS["tensorboard"]]

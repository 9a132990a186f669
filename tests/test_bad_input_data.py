"""Damaged datasets and checkpoints, foreign data on --resume, bad training values.

Each case runs through the real CLI (see :mod:`badinput`): one ``error:`` line, exit 2, no
traceback, and every file that was there before (a damaged dataset, the run folder's
``checkpoint.pt`` and ``metrics.jsonl``) byte for byte the same. A fresh ``train`` that is
refused leaves no run folder at all. Below the table: what --resume must still accept (a moved
dataset, an old checkpoint, ``--allow-other-data``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import yaml
from badinput import Case, Inputs, check_case

from foresight.cli import main
from foresight.config import to_dict
from foresight.models.registry import load_model_config

RUN = "{tmp}/run"
NEW = "{tmp}/new"
TRAIN = ("train", "--device", "cpu", "--no-progress")


def tiny_svg(path: Path, **changes: Any) -> Path:
    """The svg_det preset shrunk to test size (2 steps), with ``changes`` (dotted keys)."""
    data = to_dict(load_model_config("svg_det"))
    data.update(channels=4, g_dim=16, rnn_size=16, predictor_layers=1)
    data.update(image_size=16, future_frames=3, eval_future_frames=6)
    data["train"].update(
        batch_size=4, warmup_steps=1, max_steps=2, log_every=1, eval_every=2, eval_batches=1,
        eval_samples=2,
    )  # fmt: skip
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[leaf] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_h5: Path) -> Path:
    """A run folder trained for 2 steps (checkpoint with the whole training state)."""
    root = tmp_path_factory.mktemp("trained")
    cfg = tiny_svg(root / "cfg.yaml")
    run = root / "run"
    argv = [*TRAIN, "--config", str(cfg), "--data", str(tiny_h5), "--out", str(run)]
    assert main(argv) == 0
    return root


# --------------------------------------------------------------------------- setups
def _h5(change: Callable[[h5py.File], None], name: str = "d.h5"):
    """Copy the valid dataset to ``tmp/name`` and damage it with ``change``."""

    def setup(inputs: Inputs) -> None:
        path = inputs["tmp"] / name
        shutil.copy(inputs["h5"], path)
        with h5py.File(path, "a") as f:
            change(f)

    return setup


def _replace(key: str, value: Any) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f[key]
        f.create_dataset(key, data=value)

    return change


def _poke(key: str, index: tuple[int, ...], value: float) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        arr = f[key][()]
        arr[index] = value
        f[key][...] = arr

    return change


def _attr(key: str, name: str, value: Any) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        if value is None:
            del f[key].attrs[name]
        else:
            f[key].attrs[name] = value

    return change


def _group_instead(key: str) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f[key]
        f.create_group(key)

    return change


def _run(change: Callable[[dict[str, Any]], Any] | None = None):
    """Copy the trained run to ``tmp/run`` and rewrite its checkpoint through ``change``."""

    def setup(inputs: Inputs) -> None:
        run = inputs["tmp"] / "run"
        shutil.copytree(inputs["trained"] / "run", run)
        if change is not None:
            ckpt = run / "checkpoint.pt"
            payload = torch.load(ckpt, weights_only=True)
            payload = change(payload) or payload
            torch.save(payload, ckpt)

    return setup


def _set(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    *path, value = path_and_value

    def change(payload: dict[str, Any]) -> None:
        node = payload
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


_DELETE = object()


def _first_weight(payload: dict[str, Any]) -> str:
    return next(k for k, v in payload["state_dict"].items() if v.is_floating_point())


def _weight_shape(payload: dict[str, Any]) -> None:
    key = _first_weight(payload)
    payload["state_dict"][key] = torch.zeros(3, 1)


def _weight_nan(payload: dict[str, Any]) -> None:
    key = _first_weight(payload)
    payload["state_dict"][key] = payload["state_dict"][key].clone().fill_(float("nan"))


def _adam_state_shape(payload: dict[str, Any]) -> None:
    state = payload["optimizers"]["model"]["state"]
    state[next(iter(state))]["exp_avg"] = torch.zeros(7)


def _adam_state_nan(payload: dict[str, Any]) -> None:
    entry = next(iter(payload["optimizers"]["model"]["state"].values()))
    entry["exp_avg_sq"] = entry["exp_avg_sq"].clone().fill_(float("inf"))


class _Pwn:
    """Unpickling this would run code: the checkpoint loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _unsafe_run(inputs: Inputs) -> None:
    _run()(inputs)
    payload = torch.load(inputs["tmp"] / "run" / "checkpoint.pt", weights_only=True)
    payload["config"] = _Pwn(inputs["tmp"] / "pwned")
    torch.save(payload, inputs["tmp"] / "run" / "checkpoint.pt")


def _ckpt_file(change: Callable[[dict[str, Any]], Any] | None = None, raw: bytes | None = None):
    """Write ``tmp/m.pt``: the trained checkpoint through ``change``, or ``raw`` bytes."""

    def setup(inputs: Inputs) -> None:
        out = inputs["tmp"] / "m.pt"
        if raw is not None:
            out.write_bytes(raw)
            return
        payload = torch.load(inputs["trained"] / "run" / "checkpoint.pt", weights_only=True)
        if change is not None:
            payload = change(payload) or payload
        torch.save(payload, out)

    return setup


def _unsafe_file(inputs: Inputs) -> None:
    payload = torch.load(inputs["trained"] / "run" / "checkpoint.pt", weights_only=True)
    payload["config"] = _Pwn(inputs["tmp"] / "pwned")
    torch.save(payload, inputs["tmp"] / "m.pt")


def _truncated_file(inputs: Inputs) -> None:
    data = (inputs["trained"] / "run" / "checkpoint.pt").read_bytes()
    (inputs["tmp"] / "m.pt").write_bytes(data[: len(data) // 2])


def _truncated_run(inputs: Inputs) -> None:
    _run()(inputs)
    ckpt = inputs["tmp"] / "run" / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])


def _cfg(**changes: Any):
    return lambda inputs: tiny_svg(inputs["tmp"] / "cfg.yaml", **changes)


def _cfg_bytes(text: bytes):
    return lambda inputs: (inputs["tmp"] / "cfg.yaml").write_bytes(text)


def _swap_split(f: h5py.File) -> None:
    """Another dataset of the same size: one episode moved from train to valid."""
    train = list(f["mask/train"][()])
    valid = list(f["mask/valid"][()])
    del f["mask/train"], f["mask/valid"]
    f["mask"].create_dataset("train", data=np.array(train[1:], dtype="S"))
    f["mask"].create_dataset("valid", data=np.array([train[0], *valid], dtype="S"))


def _then(*setups):
    def setup(inputs: Inputs) -> None:
        for s in setups:
            s(inputs)

    return setup


def info(id_: str, change: Callable[[h5py.File], None], expect: str) -> Case:
    return Case(f"data-info-{id_}", ("data", "info", "{tmp}/d.h5"), expect, _h5(change))


def fresh(id_: str, change: Callable[[h5py.File], None], expect: str) -> Case:
    argv = (*TRAIN, "--config", "{trained}/cfg.yaml", "--data", "{tmp}/d.h5", "--out", NEW)
    return Case(f"train-{id_}", argv, expect, _h5(change))


def resume(id_: str, change: Callable[[dict[str, Any]], Any] | None, expect: str) -> Case:
    argv = (*TRAIN, "--config", "{trained}/cfg.yaml", "--data", "{h5}", "--out", RUN, "--resume")
    return Case(f"train-resume-{id_}", argv, expect, _run(change))


def config(id_: str, expect: str, **changes: Any) -> Case:
    argv = (*TRAIN, "--config", "{tmp}/cfg.yaml", "--data", "{h5}", "--out", NEW)
    return Case(f"train-config-{id_}", argv, expect, _cfg(**changes))


def plan(id_: str, setup, expect: str) -> Case:
    argv = ("plan", "--model", "{tmp}/m.pt", "--out", "{tmp}/p", "--episodes", "1")
    return Case(f"plan-{id_}", argv, expect, setup)


NAN = float("nan")
DEMO = "data/demo_3"

CASES = [
    # ---------------------------------------------------------------- data info: values
    info("nan-action", _poke(f"{DEMO}/actions", (2, 0), NAN), "demo_3/actions holds nan"),
    info("inf-state", _poke(f"{DEMO}/obs/state", (4, 1), np.inf), "demo_3/obs/state holds inf"),
    info("nan-raw-state", _poke(f"{DEMO}/states", (1, 0), NAN), "demo_3/states holds nan"),
    info(
        "nan-object-pos",
        _poke(f"{DEMO}/obs/object_pos", (1, 0, 0), NAN),
        "demo_3/obs/object_pos holds nan",
    ),
    info(
        "action-out-of-bounds",
        _poke(f"{DEMO}/actions", (5, 1), 7.0),
        "outside the declared bounds [-1, 1]",
    ),
    # ---------------------------------------------------------------- data info: layout
    info("image-is-a-group", _group_instead(f"{DEMO}/obs/top_image"), "is a group, not an array"),
    info(
        "first-image-is-a-group",
        _group_instead("data/demo_0/obs/top_image"),
        "demo_0/obs/top_image is a group",
    ),
    info("actions-1d", _replace(f"{DEMO}/actions", np.zeros(14, np.float32)), "2 dimensions"),
    info("first-actions-1d", _replace("data/demo_0/actions", np.zeros(14, np.float32)), "demo_0"),
    info("states-scalar", _replace("data/demo_0/states", np.float64(0)), "demo_0/states"),
    info("demo-is-an-array", _replace("data/demo_5", np.zeros(3)), "data/demo_5 is not a group"),
    info("stray-entry", lambda f: f["data"].create_group("notes"), "unexpected entry 'notes'"),
    info("env-args-list", _attr("data", "env_args", "[1, 2]"), "'env_args' must be a JSON object"),
    info("env-args-not-json", _attr("data", "env_args", "{oops"), "'env_args' is not valid JSON"),
    info("env-args-missing", _attr("data", "env_args", None), "lacks the 'env_args' attribute"),
    info("env-args-number", _attr("data", "env_args", 5), "'env_args' is not JSON text"),
    info(
        "collect-config-list",
        _attr("data", "collect_config", "[]"),
        "'collect_config' must be a JSON object",
    ),
    info("collect-config-missing", _attr("data", "collect_config", None), "'collect_config'"),
    info("num-samples-missing", _attr(DEMO, "num_samples", None), "demo_3 lacks the 'num_samples'"),
    info("num-samples-text", _attr(DEMO, "num_samples", "14"), "'num_samples' must be an integer"),
    info("num-samples-float", _attr(DEMO, "num_samples", 13.5), "must be an integer"),
    info("num-samples-bool", _attr(DEMO, "num_samples", True), "must be an integer"),
    info("num-samples-0", _attr(DEMO, "num_samples", 0), "demo_3 has no steps"),
    info("mask-is-a-group", _group_instead("mask/train"), "mask/train must be a list"),
    info("mask-of-numbers", _replace("mask/valid", np.arange(2)), "mask/valid must be a list"),
    info("mask-lists-twice", _replace("mask/valid", np.array([b"demo_11"] * 2)), "twice"),
    info(
        "mask-names-missing-demo",
        _replace("mask/valid", np.array([b"demo_99"])),
        "names missing demos",
    ),
    info(
        "masks-overlap",
        _replace("mask/valid", np.array([b"demo_0"])),
        "demo_0 is in both mask/train and mask/valid",
    ),
    info("format-version-other", _attr("data", "format_version", "x/2"), "format version 'x/2'"),
    # ---------------------------------------------------------------- train: datasets
    fresh("nan-action", _poke(f"{DEMO}/actions", (2, 0), NAN), "demo_3/actions holds nan"),
    fresh("image-is-a-group", _group_instead(f"{DEMO}/obs/top_image"), "is a group"),
    fresh("env-args-list", _attr("data", "env_args", "[]"), "'env_args' must be a JSON object"),
    fresh("num-samples-missing", _attr(DEMO, "num_samples", None), "'num_samples'"),
    fresh(
        "empty-train-split",
        _replace("mask/train", np.array([], dtype="S")),
        "mask/train lists no episodes, so there is nothing to train on",
    ),
    # ---------------------------------------------------------------- train --resume: checkpoint
    resume("config-is-a-list", _set("config", [1, 2]), "'config' is not a mapping"),
    resume("config-is-text", _set("config", "model"), "'config' is not a mapping"),
    resume("state-dict-is-a-list", _set("state_dict", [1]), "'state_dict' is not a mapping"),
    resume("state-dict-is-text", _set("state_dict", "w"), "'state_dict' is not a mapping"),
    resume("weight-shape", _weight_shape, "is (3, 1) in the checkpoint"),
    resume("weight-nan", _weight_nan, "holds NaN or infinite values"),
    resume("weight-missing", lambda p: p["state_dict"].popitem() and None, "weights do not fit"),
    resume("rng-missing", _set("rng", _DELETE), "lacks the random generator states"),
    resume("rng-torch-state", _set("rng", 0, "torch", torch.zeros(3)), "'torch' generator"),
    resume("rng-python-state", _set("rng", 0, "python", "x"), "'python' generator"),
    resume("step-text", _set("step", "2"), "has step '2'"),
    resume("step-float", _set("step", 2.5), "has step 2.5"),
    resume("step-negative", _set("step", -1), "has step -1"),
    resume("data-position-missing", _set("data", _DELETE), "lacks a valid data position"),
    resume("data-position-text", _set("data", "epoch 0"), "lacks a valid data position"),
    resume("data-position-past-epoch", _set("data", "batch", 10**6), "data position (batch"),
    resume("optimizers-text", _set("optimizers", "adam"), "'optimizers' that is not a mapping"),
    resume(
        "optimizers-other-names",
        lambda p: p.update(optimizers={"other": p["optimizers"]["model"]}),
        "has optimizers ['other']",
    ),
    resume(
        "optimizer-groups-text",
        _set("optimizers", "model", "param_groups", "x"),
        "optimizer 'model' lacks 'param_groups'",
    ),
    resume(
        "optimizer-betas-text",
        _set("optimizers", "model", "param_groups", 0, "betas", "ab"),
        "has betas 'ab'",
    ),
    resume("optimizer-state-shape", _adam_state_shape, "'exp_avg' of shape (7,)"),
    resume("optimizer-state-inf", _adam_state_nan, "NaN or infinite values in 'exp_avg_sq'"),
    resume("scaler-text", _set("scalers", "model", {"scale": "x"}), "loss-scaler state"),
    resume("best-text", _set("best", "yes"), "damaged 'best' record"),
    resume("train-seconds-nan", _set("train_seconds", NAN), "train_seconds nan"),
    resume("fingerprint-text", _set("dataset_fingerprint", "x"), "'dataset_fingerprint'"),
    resume("format-other", _set("format", "other/1"), "is not a foresight checkpoint"),
    Case(
        "train-resume-truncated",
        (*TRAIN, "--config", "{trained}/cfg.yaml", "--data", "{h5}", "--out", RUN, "--resume"),
        "is not a readable foresight checkpoint (damaged, truncated",
        _truncated_run,
    ),
    Case(
        "train-resume-code-in-checkpoint",
        (*TRAIN, "--config", "{trained}/cfg.yaml", "--data", "{h5}", "--out", RUN, "--resume"),
        "holds objects other than tensors and plain values",
        _unsafe_run,
    ),
    # ---------------------------------------------------------------- train --resume: data
    Case(
        "train-resume-other-data",
        (*TRAIN, "--config", "{trained}/cfg.yaml", "--data", "{tmp}/o.h5", "--out", RUN)
        + ("--resume",),
        "is another dataset",
        _then(_run(), _h5(_swap_split, "o.h5")),
    ),
    Case(
        "train-resume-damaged-data",
        (*TRAIN, "--config", "{trained}/cfg.yaml", "--data", "{tmp}/d.h5", "--out", RUN)
        + ("--resume",),
        "demo_3/actions holds nan",
        _then(_run(), _h5(_poke(f"{DEMO}/actions", (0, 0), NAN))),
    ),
    # ---------------------------------------------------------------- train: config values
    config("lr-negative", "train.lr must be a positive finite number", **{"train.lr": -0.1}),
    config("lr-0", "train.lr must be a positive finite number", **{"train.lr": 0.0}),
    config("lr-nan", "'lr': expected a finite number", **{"train.lr": NAN}),
    config(
        "batch-size-0", "train.batch_size must be a positive integer", **{"train.batch_size": 0}
    ),
    config(
        "eval-every-0", "train.eval_every must be a positive integer", **{"train.eval_every": 0}
    ),
    config("log-every-0", "train.log_every must be a positive integer", **{"train.log_every": 0}),
    config("max-steps-negative", "train.max_steps", **{"train.max_steps": -5}),
    config("eval-batches-0", "train.eval_batches", **{"train.eval_batches": 0}),
    config("eval-samples-0", "train.eval_samples", **{"train.eval_samples": 0}),
    config(
        "grad-clip-negative",
        "train.grad_clip must be a finite number of at least 0",
        **{"train.grad_clip": -1.0},
    ),
    config("warmup-negative", "train.warmup_steps", **{"train.warmup_steps": -2}),
    config("decay-negative", "train.decay_steps", **{"train.decay_steps": -1}),
    config(
        "final-lr-ratio-above-1",
        "train.final_lr_ratio must be a number in [0, 1], got 1.5",
        **{"train.final_lr_ratio": 1.5},
    ),
    config("weight-decay-negative", "train.weight_decay", **{"train.weight_decay": -1e-3}),
    config("num-workers-negative", "train.num_workers", **{"train.num_workers": -1}),
    config("seed-negative", "train.seed", **{"train.seed": -1}),
    config("betas-out-of-range", "train.betas must be two numbers", **{"train.betas": [1.5, 0.9]}),
    config("image-size-0", "image_size must be a positive integer, got 0", image_size=0),
    config("context-frames-0", "context_frames must be a positive integer", context_frames=0),
    config("future-frames-0", "future_frames must be a positive integer", future_frames=0),
    config("channels-0", "channels must be at least 1", channels=0),
    config("action-dim-other", "configured with action_dim 3, but", action_dim=3),
    config(
        "action-dim-without-frame-skip",
        "has 4 (2 x frame_skip 2); set action_dim: 4 in the model config",
        frame_skip=2,
    ),
    config("frame-skip-0", "frame_skip must be a positive integer", frame_skip=0),
    config(
        "frame-skip-not-dividing",
        "action_dim 3 is not a multiple of frame_skip 2",
        frame_skip=2,
        action_dim=3,
    ),
    Case(
        "train-config-not-utf8",
        (*TRAIN, "--config", "{tmp}/cfg.yaml", "--data", "{h5}", "--out", NEW),
        "is not UTF-8 text",
        _cfg_bytes(b"model: svg_det\n# caf\xe9\n"),
    ),
    Case(
        "train-seed-flag-negative",
        (*TRAIN, "--config", "{trained}/cfg.yaml", "--data", "{h5}", "--out", NEW, "--seed", "-1"),
        "--seed must be an integer from 0",
    ),
    Case(
        "train-time-limit-nan",
        (*TRAIN, "--config", "{trained}/cfg.yaml", "--data", "{h5}", "--out", NEW)
        + ("--time-limit", "nan"),
        "--time-limit must be a positive number",
    ),
    # ---------------------------------------------------------------- plan --model damaged.pt
    plan("garbage", _ckpt_file(raw=b"not a checkpoint"), "is not a readable foresight checkpoint"),
    plan("empty", _ckpt_file(raw=b""), "is not a readable foresight checkpoint"),
    plan("truncated", _truncated_file, "damaged, truncated or not a torch file"),
    plan("code-in-checkpoint", _unsafe_file, "will not execute code from a file"),
    plan("config-is-a-list", _ckpt_file(_set("config", [1])), "'config' is not a mapping"),
    plan("state-dict-is-text", _ckpt_file(_set("state_dict", "w")), "'state_dict' is not a"),
    plan("weight-shape", _ckpt_file(_weight_shape), "is (3, 1) in the checkpoint"),
    plan("weight-nan", _ckpt_file(_weight_nan), "holds NaN or infinite values"),
    plan("model-name-other", _ckpt_file(_set("model", "vpn")), "the checkpoint says 'vpn'"),
    plan("model-name-number", _ckpt_file(_set("model", 3)), "'model' is not a model name"),
    plan("config-value", _ckpt_file(_set("config", "image_size", 0)), "image_size"),
    Case(
        "plan-run-dir-without-checkpoint",
        ("plan", "--model", "{tmp}/run", "--out", "{tmp}/p", "--episodes", "1"),
        "is a directory without best.pt or checkpoint.pt",
        lambda inputs: (inputs["tmp"] / "run").mkdir(),
    ),
    Case(
        "evaluate-code-in-checkpoint",
        ("evaluate", "--model", "{tmp}/m.pt", "--out", "{tmp}/e"),
        "will not execute code from a file",
        _unsafe_file,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_data(
    case: Case,
    tmp_path: Path,
    tiny_h5: Path,
    trained: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = check_case(case, {"tmp": tmp_path, "h5": tiny_h5, "trained": trained}, capsys)
    # torch's own text for a refused file suggests weights_only=False, which runs its code.
    assert "weights_only=False" not in line and "Weights only" not in line, line
    assert not (tmp_path / "pwned").exists(), "a checkpoint ran code"
    assert not (tmp_path / "new").exists(), "a refused fresh run left a run folder"


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- what resumes
def _resume(trained: Path, run: Path, data: Path, *extra: str) -> int:
    shutil.copytree(trained / "run", run)
    argv = [*TRAIN, "--config", str(trained / "cfg.yaml"), "--data", str(data), "--out", str(run)]
    return main([*argv, "--resume", "--max-steps", "3", *extra])


def _checkpoint(run: Path) -> dict[str, Any]:
    return torch.load(run / "checkpoint.pt", weights_only=True)


def test_a_moved_identical_dataset_resumes(tmp_path: Path, tiny_h5: Path, trained: Path) -> None:
    moved = tmp_path / "elsewhere" / "same.h5"
    moved.parent.mkdir()
    shutil.copy(tiny_h5, moved)
    run = tmp_path / "run"
    assert _resume(trained, run, moved) == 0
    payload = _checkpoint(run)
    assert payload["step"] == 3 and payload["dataset"] == str(moved)
    assert payload["dataset_fingerprint"] == _checkpoint(trained / "run")["dataset_fingerprint"]


def test_allow_other_data_continues_on_another_dataset(
    tmp_path: Path, tiny_h5: Path, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.h5"
    _h5(_swap_split, "other.h5")({"tmp": tmp_path, "h5": tiny_h5})
    run = tmp_path / "run"
    assert _resume(trained, run, other, "--allow-other-data") == 0
    assert "--allow-other-data: continuing on" in " ".join(capsys.readouterr().err.split())
    payload = _checkpoint(run)
    assert payload["step"] == 3 and payload["data"]["epoch"] == 1  # a fresh epoch of the new file
    assert payload["dataset_fingerprint"] != _checkpoint(trained / "run")["dataset_fingerprint"]


def test_an_old_checkpoint_without_fingerprint_resumes_with_a_note(
    tmp_path: Path, tiny_h5: Path, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    _run(_set("dataset_fingerprint", _DELETE))({"tmp": tmp_path, "trained": trained})
    argv = [*TRAIN, "--config", str(trained / "cfg.yaml"), "--data", str(tiny_h5)]
    assert main([*argv, "--out", str(run), "--resume", "--max-steps", "3"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "does not record which dataset it was trained on" in err
    assert _checkpoint(run)["step"] == 3


def test_data_info_reports_an_empty_train_split(tmp_path: Path, tiny_h5: Path, capsys) -> None:
    _h5(_replace("mask/train", np.array([], dtype="S")))({"tmp": tmp_path, "h5": tiny_h5})
    assert main(["data", "info", str(tmp_path / "d.h5")]) == 0
    captured = capsys.readouterr()
    assert "train 0" in captured.out
    assert "'foresight train' cannot use this file" in " ".join(captured.err.split())


def test_the_checkpoint_records_the_dataset(trained: Path, tiny_h5: Path) -> None:
    payload = _checkpoint(trained / "run")
    fingerprint = payload["dataset_fingerprint"]
    assert fingerprint["episodes"] == 12 and fingerprint["steps"] == 12 * 14
    assert fingerprint["image_size"] == 32
    assert json.dumps(fingerprint)  # plain values only

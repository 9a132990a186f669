"""TrainingState: the typed training entries of a checkpoint, read back as written."""

from __future__ import annotations

import pytest
import torch

from foresight.errors import CheckpointError
from foresight.training.resume import BestScore, TrainingState
from foresight.training.state import rng_state


def a_state(**over) -> TrainingState:
    fields = {
        "step": 40,
        "epoch": 2,
        "batch": 7,
        "rng": [rng_state()],
        "world_size": 1,
        "train_seconds": 12.5,
        "best": BestScore("ssim_mean", 0.75, 30),
        "optimizers": {"model": {"state": {}, "param_groups": []}},
        "scalers": {},
        "dataset": "data/push.h5",
        "dataset_fingerprint": {"episodes": 3, "steps": 4},
        **over,
    }
    return TrainingState(**fields)


def test_a_state_reads_back_as_written() -> None:
    state = a_state()
    back = TrainingState.from_payload(state.payload(), "ckpt")
    assert back.best == state.best and back.optimizers == state.optimizers
    assert (back.step, back.epoch, back.batch, back.world_size) == (40, 2, 7, 1)
    assert back.train_seconds == 12.5 and back.dataset_fingerprint == state.dataset_fingerprint
    assert torch.equal(back.rng[0]["torch"], state.rng[0]["torch"])
    # The entries are those checkpoints have always had (older code reads them too).
    assert {"step", "rng", "data", "best", "optimizers", "scalers"} <= set(state.payload())


def test_a_model_with_nothing_to_train_writes_no_optimizer_and_cannot_resume() -> None:
    payload = a_state(optimizers=None, best=None).payload()
    assert "optimizers" not in payload and payload["best"] == {}
    with pytest.raises(CheckpointError, match="ckpt lacks the training state; it cannot resume"):
        TrainingState.from_payload(payload, "ckpt")


def test_a_checkpoint_from_before_models_owned_optimizers_reads_as_model() -> None:
    payload = a_state().payload()
    adam = payload.pop("optimizers")["model"]
    payload.pop("scalers")
    payload["optimizer"] = adam
    state = TrainingState.from_payload(payload, "ckpt")
    assert state.optimizers == {"model": adam} and state.scalers == {}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"step": -1}, "has step -1"),
        ({"step": True}, "has step True"),
        ({"data": {"epoch": 1}}, "data position"),
        ({"rng": []}, "random generator states"),
        ({"world_size": 0}, "world_size 0"),
        ({"train_seconds": float("nan")}, "train_seconds nan"),
        ({"best": {"metric": "ssim_mean", "value": "high", "step": 3}}, "damaged 'best'"),
        ({"optimizers": [1, 2]}, "'optimizers' that is not a mapping"),
        ({"dataset": 5}, "'dataset' that is not a path"),
        ({"dataset_fingerprint": "abc"}, "damaged 'dataset_fingerprint'"),
    ],
)
def test_a_damaged_field_is_one_line_naming_it(change, problem) -> None:
    payload = {**a_state().payload(), **change}
    with pytest.raises(CheckpointError, match="the file is damaged") as err:
        TrainingState.from_payload(payload, "ckpt")
    assert problem in str(err.value) and "\n" not in str(err.value)

"""Checkpoints: the model name, its full config as plain values, and its weights.

A checkpoint alone rebuilds its model (``foresight plan --model run/checkpoint.pt`` needs
nothing else). Checkpoints are untrusted input: they are read with ``weights_only=True``, so
they hold only tensors and plain Python values, and every field is checked.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from foresight.config import to_dict
from foresight.errors import CheckpointError, ConfigError
from foresight.io import atomic_path
from foresight.models.base import VideoModel
from foresight.models.registry import build_model, canonical_model, config_from_dict

CHECKPOINT_FORMAT = "foresight-checkpoint/1"

# What a training run directory holds (foresight.training.trainer writes both).
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file ``path`` names: itself, or a training run directory's best one.

    A run directory gives its ``best.pt`` (the checkpoint validation scored best), else its
    ``checkpoint.pt`` (the latest): on Push-T, planning from ``best.pt`` solved more tasks than
    the latest checkpoint for both the VRNN and SVG' (docs/pusht.md). Name the file to choose
    otherwise.

    Raises:
        CheckpointError: A directory that holds neither file (one line).
    """
    path = Path(path)
    if not path.is_dir():
        return path
    for name in (BEST, CHECKPOINT):
        if (path / name).is_file():
            return path / name
    raise CheckpointError(
        f"{path} is a directory without {BEST} or {CHECKPOINT}; give a training run directory "
        "(foresight train --out) or a checkpoint file"
    )


def save_checkpoint(path: str | Path, model: VideoModel, **extra: Any) -> Path:
    """Write ``model`` (and ``extra`` plain values/tensors, e.g. optimizer state) atomically.

    Args:
        path: Destination ``.pt`` file.
        model: The model; DDP wrappers must be unwrapped first.
        **extra: More entries (``step``, ``optimizer``, ``rng``, ...); plain types only.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.name,
        "config": to_dict(model.config),
        "state_dict": model.state_dict(),
        **extra,
    }
    path = Path(path)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return path


def _load_error(path: Path, err: Exception) -> CheckpointError:
    """Our own words for a file ``torch.load(weights_only=True)`` refused.

    torch's messages suggest retrying with ``weights_only=False``, which would run whatever
    code the file carries: none of that text may reach a user.
    """
    if isinstance(err, pickle.UnpicklingError) and zipfile.is_zipfile(path):
        # A complete torch archive whose pickle names something beyond tensors and plain
        # values (a class, a function): exactly what weights_only refuses to import.
        return CheckpointError(
            f"{path} holds objects other than tensors and plain values; foresight loads only "
            "weights (weights_only=True) and will not execute code from a file; use a "
            "checkpoint written by 'foresight train'"
        )
    return CheckpointError(
        f"{path} is not a readable foresight checkpoint (damaged, truncated or not a torch "
        "file); use a checkpoint written by 'foresight train'"
    )


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint's payload (no code is unpickled).

    Checks the fields every checkpoint has (``format``, ``model``, ``config``,
    ``state_dict``), the dataset's ``env_args`` when recorded, and their types; the training
    state is checked by the trainer.

    Raises:
        CheckpointError: Missing, unreadable, unsafe or damaged file (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with 'foresight train'")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a bad file; all mean the same here
        raise _load_error(path, err) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a foresight checkpoint (format {CHECKPOINT_FORMAT} expected); "
            "train one with 'foresight train'"
        )
    for key in ("model", "config", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path} lacks '{key}'; the file is damaged")
    if not isinstance(payload["model"], str):
        raise CheckpointError(f"{path}: 'model' is not a model name; the file is damaged")
    if not isinstance(payload["config"], dict):
        raise CheckpointError(f"{path}: 'config' is not a mapping of settings; the file is damaged")
    if not isinstance(payload.get("env_args", {}), dict):
        raise CheckpointError(f"{path}: 'env_args' is not a mapping; the file is damaged")
    weights = payload["state_dict"]
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise CheckpointError(
            f"{path}: 'state_dict' is not a mapping of names to tensors; the file is damaged"
        )
    return payload


def check_weights(model: VideoModel, weights: dict[str, torch.Tensor], source: str) -> None:
    """Check that ``weights`` fit ``model`` exactly (names, shapes, finite values).

    Raises:
        CheckpointError: A weight is missing, unexpected, of another shape, or not finite.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    extra = [k for k in weights if k not in own]
    if missing or extra:
        what = f"lacks '{missing[0]}'" if missing else f"has an unexpected '{extra[0]}'"
        raise CheckpointError(
            f"{source}: weights do not fit model '{model.config.model}' (the checkpoint {what}, "
            f"{len(missing)} missing and {len(extra)} unexpected); was it saved by another "
            "model or version?"
        )
    for key, tensor in own.items():
        saved = weights[key]
        if saved.shape != tensor.shape:
            raise CheckpointError(
                f"{source}: weights do not fit model '{model.config.model}' ('{key}' is "
                f"{tuple(saved.shape)} in the checkpoint, {tuple(tensor.shape)} in the model); "
                "was it saved by another model or version?"
            )
        if saved.is_floating_point() and not bool(torch.isfinite(saved).all()):
            raise CheckpointError(
                f"{source}: weight '{key}' holds NaN or infinite values; the file is damaged"
            )


def model_from_payload(payload: dict[str, Any], source: str) -> VideoModel:
    """Rebuild the model a checkpoint payload (from :func:`read_checkpoint`) describes.

    Raises:
        CheckpointError: The config is not one this version reads, or the weights do not fit.
    """
    try:
        config = config_from_dict(payload["config"], f"checkpoint {source}")
    except ConfigError as err:
        raise CheckpointError(f"{err}; the checkpoint is from another version or model") from err
    if config.model != canonical_model(payload["model"]):
        raise CheckpointError(
            f"{source}: config describes '{config.model}' but the checkpoint says "
            f"'{payload['model']}'; the file is damaged"
        )
    model = build_model(config)
    check_weights(model, payload["state_dict"], source)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:  # e.g. a dtype that cannot be copied into the parameter
        raise CheckpointError(
            f"{source}: weights do not fit model '{config.model}'; was it saved by another "
            "model or version?"
        ) from err
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> VideoModel:
    """Load a trained model, in eval mode, on ``device``.

    Args:
        path: A checkpoint, or a training run directory (see :func:`resolve_checkpoint`).
        device: Where the model goes.
    """
    path = resolve_checkpoint(path)
    payload = read_checkpoint(path)
    model = model_from_payload(payload, str(path))
    return model.to(device).use_memory_format().eval()

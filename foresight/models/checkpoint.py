"""Checkpoints: the model name, its full config as plain values, and its weights.

A checkpoint alone rebuilds its model (``foresight plan --model run/checkpoint.pt`` needs
nothing else). Checkpoints are untrusted input: they are read with ``weights_only=True``, so
they hold only tensors and plain Python values, and every field is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from foresight.config import to_dict
from foresight.errors import CheckpointError, ConfigError
from foresight.io import atomic_path
from foresight.models.base import VideoModel
from foresight.models.registry import build_model, config_from_dict

CHECKPOINT_FORMAT = "foresight-checkpoint/1"


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


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint's payload (no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with 'foresight train'")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a bad file; all mean the same here
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} is not a readable foresight checkpoint ({first[:200]})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a foresight checkpoint (format {CHECKPOINT_FORMAT} expected); "
            "train one with 'foresight train'"
        )
    for key in ("model", "config", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path} lacks '{key}'; the file is damaged")
    return payload


def model_from_payload(payload: dict[str, Any], source: str) -> VideoModel:
    """Rebuild the model a checkpoint payload describes, with its weights."""
    try:
        config = config_from_dict(payload["config"], f"checkpoint {source}")
    except ConfigError as err:
        raise CheckpointError(f"{err}; the checkpoint is from another version or model") from err
    if config.model != payload["model"]:
        raise CheckpointError(
            f"{source}: config describes '{config.model}' but the checkpoint says "
            f"'{payload['model']}'; the file is damaged"
        )
    model = build_model(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{source}: weights do not fit model '{config.model}' "
            f"({str(err).splitlines()[0]}); was it saved by another model or version?"
        ) from err
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> VideoModel:
    """Load a trained model from a checkpoint, in eval mode, on ``device``."""
    payload = read_checkpoint(path)
    model = model_from_payload(payload, str(path))
    return model.to(device).eval()

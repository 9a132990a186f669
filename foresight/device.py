"""The one place a ``--device`` is checked and resolved, for every verb."""

from __future__ import annotations

import re
from dataclasses import field
from typing import TYPE_CHECKING, Any

from foresight.errors import ForesightError
from foresight.flags import option

if TYPE_CHECKING:
    import torch

#: What ``--device`` accepts (``cuda:N`` too, for one GPU of several).
DEVICE_HELP = "auto (cuda when present, else cpu), cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def device_field(what: str = "device") -> Any:
    """A flags dataclass's ``device`` field (:mod:`foresight.flags`): every verb's ``--device``."""
    return field(default="auto", metadata=option(f"{what}: {DEVICE_HELP}"))


def resolve_device(requested: str, local_rank: int | None = None) -> torch.device:
    """The device ``requested`` names on this machine.

    Args:
        requested: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        local_rank: Under torchrun, this process's index on its node: plain ``cuda`` (and
            ``auto`` with a GPU) mean GPU ``local_rank``.

    Raises:
        ForesightError: An unknown name, CUDA asked for where there is none, or a GPU index
            (or torchrun rank) beyond the GPUs present.
    """
    import torch  # not at import: the CLI lists its flags without loading torch

    m = _DEVICE.match(requested.strip().lower())
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ForesightError(f"--device must be {DEVICE_HELP}, got '{requested}'")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ForesightError(
            f"--device {requested} was asked for but no CUDA GPU is available; use --device cpu"
        )
    count = torch.cuda.device_count()
    gpu = int(index) if index is not None else (local_rank or 0)
    if gpu >= count:
        what = f"cuda:{gpu}" if index is not None else f"torchrun local rank {gpu}"
        raise ForesightError(
            f"{what} needs GPU {gpu}, but this machine has {count}; "
            f"launch at most {count} processes per node or pick another GPU"
        )
    return torch.device("cuda", gpu)

"""What a checkpoint must carry beyond weights for ``--resume`` to continue bit-for-bit.

* every random number generator a training step may draw from (torch CPU and CUDA, numpy,
  Python), stored as tensors and plain values so checkpoints load with ``weights_only=True``;
* the data order: which epoch, and how many of its batches were consumed. Each epoch's order
  is a pure function of (seed, epoch) (``DistributedSampler``), so a position is enough.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (e.g. ``(seed, rank)``, ``(seed, step)``)."""
    return int(np.random.SeedSequence([abs(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def rng_state() -> dict[str, Any]:
    """The state of every global generator, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rng_state_problem(state: Any) -> str | None:
    """What is wrong with a generator state read from a checkpoint (None: it is usable).

    Checked before anything is restored, so a damaged checkpoint is refused as a whole
    instead of failing halfway through :func:`set_rng_state`.
    """
    if not isinstance(state, dict):
        return "a generator state that is not a mapping"
    cpu = state.get("torch")
    size = torch.get_rng_state().shape
    if not isinstance(cpu, torch.Tensor) or cpu.dtype != torch.uint8 or cpu.shape != size:
        return "no valid 'torch' generator state"
    np_state = state.get("numpy")
    if (
        not isinstance(np_state, dict)
        or np_state.get("kind") != "MT19937"
        or not isinstance(np_state.get("keys"), torch.Tensor)
        or tuple(np_state["keys"].shape) != (624,)
        or np_state["keys"].is_floating_point()
        or not _is_int(np_state.get("pos"))
        or not 0 <= np_state["pos"] <= 624
        or not _is_int(np_state.get("has_gauss"))
        or not isinstance(np_state.get("cached_gaussian"), int | float)
    ):
        return "no valid 'numpy' generator state"
    py = state.get("python")
    if (
        not isinstance(py, dict)
        or not _is_int(py.get("version"))
        or not isinstance(py.get("internal"), list | tuple)
        or len(py["internal"]) != 625
        or not all(_is_int(x) and 0 <= x < 2**32 for x in py["internal"][:-1])
        or not _is_int(py["internal"][-1])
        or not (py.get("gauss_next") is None or isinstance(py["gauss_next"], float))
    ):
        return "no valid 'python' generator state"
    cuda = state.get("cuda")
    if cuda is not None and (
        not isinstance(cuda, list | tuple)
        or not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda)
    ):
        return "no valid 'cuda' generator state"
    return None


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (e.g. validation) without disturbing the generators training draws from."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


class EpochBatches:
    """Batches of dataset indices, epoch after epoch, resumable at any batch.

    Each epoch's order comes from a :class:`DistributedSampler` (shuffled by ``seed + epoch``,
    one shard per rank, the same number of batches on every rank); incomplete batches are
    dropped so every step sees ``batch_size`` sequences.

    Args:
        dataset: The training windows.
        batch_size: Sequences per batch on this rank.
        seed: Seed of the shuffles.
        rank: This process's rank.
        world_size: Number of processes.
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self.per_epoch = len(self.sampler) // batch_size

    def epoch(self, epoch: int, start: int = 0) -> list[list[int]]:
        """The batches of ``epoch`` from batch ``start`` on."""
        self.sampler.set_epoch(epoch)
        order = list(self.sampler)
        b = self.batch_size
        return [order[i * b : (i + 1) * b] for i in range(start, self.per_epoch)]

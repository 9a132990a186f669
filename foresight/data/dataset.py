"""A torch ``Dataset`` of fixed-length windows cut from a foresight HDF5 file.

Every window has ``length`` frames with their robot states and the ``length - 1`` actions
between them (see :mod:`foresight.batch`): consecutive frames, or every ``frame_skip``-th
with the actions between two of them concatenated into one. A split that fits the
caller's memory budget is read once into memory as the stored uint8 frames and windows are cut
there (a window of ``L`` frames would otherwise decode each gzip frame ``L`` times an epoch);
otherwise the HDF5 file is opened lazily in each process, so the dataset works with
multi-process ``DataLoader`` workers either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from foresight.batch import ACTIONS, FRAMES, STATES, frames_as
from foresight.data.hdf5 import IMAGE_KEY, DemoFile
from foresight.errors import DataError


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(..., C, H, W)`` float frames to ``size x size``.

    Area interpolation when shrinking (exact block averaging for integer factors, so no
    aliasing), bilinear when enlarging.
    """
    if frames.shape[-1] == size and frames.shape[-2] == size:
        return frames
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    mode = "area" if size < frames.shape[-1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    out = F.interpolate(flat, size=(size, size), mode=mode, **kwargs)
    return out.reshape(*lead, *out.shape[-3:])


def frames_at_skip(stored: int, frame_skip: int) -> int:
    """How many frames a window can hold from an episode of ``stored`` frames at ``frame_skip``."""
    return (stored - 1) // frame_skip + 1


def stored_span(length: int, frame_skip: int) -> int:
    """Stored frames a window of ``length`` frames at ``frame_skip`` spans (first to last)."""
    return (length - 1) * frame_skip + 1


def _channels_first(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> uint8 ``(T, 3, H, W)``, a view in channels-last layout.

    Kept in that layout (not made contiguous) so resizing runs the same kernel, to the bit,
    whether a window comes from memory or from the file.
    """
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


def _load_episode(f: DemoFile, demo: str) -> dict[str, torch.Tensor]:
    """One episode's frames (uint8 ``(T+1, 3, H, W)``), states and actions, as tensors."""
    try:
        return {
            FRAMES: _channels_first(f.frames(demo)),
            STATES: torch.from_numpy(f.read(demo, "obs/state")),
            ACTIONS: torch.from_numpy(f.read(demo, "actions")),
        }
    except OSError as err:  # a damaged gzip chunk
        raise DataError(
            f"{f.path}: episode {demo} cannot be read ({err}); the file is damaged, re-create "
            "it with 'foresight collect'"
        ) from None


class SequenceDataset(Dataset[dict[str, torch.Tensor]]):
    """Windows of ``length`` frames from the episodes of one split.

    Args:
        path: A dataset written by ``foresight collect``.
        length: Frames per window (context + future).
        split: ``train``, ``valid`` or ``all``.
        image_size: Resize frames at load to this size; None (or the stored size) hands
            out the stored frames without resampling.
        stride: Step between window starts within an episode.
        frame_dtype: ``torch.float32`` (in [0, 1]) or ``torch.uint8`` (the stored 8-bit
            intensities, exact; resized frames are rounded to the nearest level).
        validate: Check the whole file on open (see :class:`DemoFile`); False only where the
            caller has just validated it (saves reading every episode's arrays again).
        memory_bytes: Read the split into memory when its frames, states and actions take at
            most this many bytes (0: always read windows from the file). Items are the same
            either way.
        frame_skip: Env steps between two frames of a window (a model's ``frame_skip``); a
            window spans ``(length - 1) * frame_skip + 1`` stored frames.

    Items are dicts: ``frames`` ``(L, 3, S, S)`` in ``frame_dtype``, ``states`` ``(L, 2)``
    float32, ``actions`` ``(L-1, 2 * frame_skip)`` float32 (the env actions between two
    frames, in order).
    """

    def __init__(
        self,
        path: str | Path,
        length: int,
        split: str = "train",
        image_size: int | None = None,
        stride: int = 1,
        frame_dtype: torch.dtype = torch.float32,
        validate: bool = True,
        memory_bytes: int = 0,
        frame_skip: int = 1,
    ) -> None:
        self.path = Path(path)
        if frame_dtype not in (torch.float32, torch.uint8):
            raise DataError(f"frame_dtype must be torch.float32 or torch.uint8, got {frame_dtype}")
        self.frame_dtype = frame_dtype
        if length < 2:
            raise DataError(f"windows need at least 2 frames, got length={length}")
        if stride < 1:
            raise DataError(f"stride must be at least 1, got {stride}")
        if frame_skip < 1:
            raise DataError(f"frame_skip must be at least 1, got {frame_skip}")
        self.frame_skip = frame_skip
        span = stored_span(length, frame_skip)
        with DemoFile(self.path, validate=validate) as f:
            demos = f.split(split)
            if not demos:
                raise DataError(
                    f"{self.path}: mask/{split} lists no episodes, so split '{split}' is empty; "
                    "re-create the file with 'foresight collect' and a smaller --valid-fraction"
                    if split == "train"
                    else f"{self.path}: split '{split}' holds no episodes"
                )
            self.image_size = image_size or f.image_size
            self.source_image_size = f.image_size
            self.index: list[tuple[str, int]] = []
            for demo in demos:
                frames = f.num_samples(demo) + 1
                self.index.extend((demo, s) for s in range(0, frames - span + 1, stride))
            #: The split's arrays by demo, when held in memory (else None: read the file).
            self.episodes: dict[str, dict[str, torch.Tensor]] | None = None
            #: Bytes the split takes in memory (0 when windows are read from the file).
            self.memory_used = 0
            needed = self.split_bytes(f, demos) if self.index else 0
            if 0 < needed <= memory_bytes:
                self.episodes = {demo: _load_episode(f, demo) for demo in demos}
                self.memory_used = needed
        if not self.index:
            raise DataError(
                f"{self.path}: no window of {length} frames"
                + (f" ({span} stored frames at frame_skip {frame_skip})" if frame_skip > 1 else "")
                + f" in split '{split}' (episodes too short or split empty); collect longer "
                "episodes (foresight collect --steps) or shorten the model's window"
            )
        self.length = length
        self.span = span
        self.split = split
        self._file: DemoFile | None = None

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def split_bytes(f: DemoFile, demos: list[str]) -> int:
        """Bytes the frames, states and actions of ``demos`` take in memory."""
        total = 0
        for demo in demos:
            for key in (f"obs/{IMAGE_KEY}", "obs/state", "actions"):
                array = f.file["data"][demo][key]
                total += array.size * array.dtype.itemsize
        return total

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        demo, s = self.index[i]
        window = slice(s, s + self.span, self.frame_skip)
        actions = slice(s, s + self.span - 1)
        if self.episodes is not None:
            episode = self.episodes[demo]
            stored = episode[FRAMES][window]  # uint8 (L, 3, H, W)
            states, moves = episode[STATES][window].clone(), episode[ACTIONS][actions].clone()
        else:
            if self._file is None:
                self._file = DemoFile(self.path, validate=False)
            f = self._file
            stored = _channels_first(f.read(demo, f"obs/{IMAGE_KEY}", window))
            states = torch.from_numpy(f.read(demo, "obs/state", window))
            moves = torch.from_numpy(f.read(demo, "actions", actions))
        # The env actions between two kept frames, as one: (L-1, frame_skip * A).
        moves = moves.reshape(self.length - 1, -1)
        if self.image_size == self.source_image_size and self.frame_dtype == torch.uint8:
            frames = stored.clone()
        else:
            frames = resize_frames(stored.float().div_(255.0), self.image_size)
        return {FRAMES: frames_as(frames, self.frame_dtype), STATES: states, ACTIONS: moves}

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles do not cross process boundaries; each worker reopens the file.
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def close(self) -> None:
        """Close the file handle of this process, if open."""
        if self._file is not None:
            self._file.close()
            self._file = None

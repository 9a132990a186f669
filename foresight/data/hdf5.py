"""The dataset file: robomimic-compatible HDF5 layout, its writer and its one reader.

Layout::

    data/                       attrs: total, env_args (JSON), format_version,
                                       collect_config (JSON), camera
      demo_<i>/                 attrs: num_samples (= T), seed, active (K,) bool
        obs/top_image           uint8   (T+1, H, W, 3)  chunked per frame, gzip
        obs/state               float32 (T+1, 2)        pusher xy
        obs/object_pos          float32 (T+1, K, 3)     object centres (parked ones too)
        actions                 float32 (T, 2)          in [-1, 1]
        states                  float64 (T+1, S)        raw MuJoCo state (re-render, oracle)
        rewards, dones          float32, uint8 (T,)     robomimic fields (0; dones[-1] = 1)
    mask/train, mask/valid      bytes, demo names

Unlike robomimic, observations hold T+1 entries (the frame after the last action too), so a
video model sees every frame the actions lead to. Files are untrusted input: the reader
checks every shape and dtype and turns any problem into a one-line :class:`DataError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np

from foresight.errors import DataError

FORMAT_VERSION = "foresight-hdf5/1"
CAMERA = "top"
IMAGE_KEY = f"{CAMERA}_image"
_DEMO = re.compile(r"^demo_(\d+)$")


@dataclass
class Episode:
    """One collected episode, in memory.

    Attributes:
        images: ``(T+1, H, W, 3)`` uint8 frames.
        state: ``(T+1, 2)`` float32 pusher xy.
        object_pos: ``(T+1, K, 3)`` float32 object centres.
        actions: ``(T, 2)`` float32 actions in [-1, 1].
        states: ``(T+1, S)`` float64 raw simulator states.
        active: ``(K,)`` bool, objects on the table.
        seed: The env seed this episode was reset with.
    """

    images: np.ndarray
    state: np.ndarray
    object_pos: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    active: np.ndarray
    seed: int

    def save_npz(self, file: BinaryIO) -> None:
        """Write to an open binary file as ``.npz`` (no pickling; read with :meth:`load_npz`)."""
        np.savez(
            file,
            images=self.images,
            state=self.state,
            object_pos=self.object_pos,
            actions=self.actions,
            states=self.states,
            active=self.active,
            seed=np.int64(self.seed),
        )

    @classmethod
    def load_npz(cls, path: Path) -> Episode:
        """Read an episode written by :meth:`save_npz`."""
        with np.load(path, allow_pickle=False) as z:
            return cls(
                images=z["images"],
                state=z["state"],
                object_pos=z["object_pos"],
                actions=z["actions"],
                states=z["states"],
                active=z["active"],
                seed=int(z["seed"]),
            )


def write_demo(data: h5py.Group, name: str, ep: Episode) -> None:
    """Write one episode as ``data/<name>``."""
    g = data.create_group(name)
    t = len(ep.actions)
    g.attrs["num_samples"] = t
    g.attrs["seed"] = ep.seed
    g.attrs["active"] = ep.active.astype(bool)
    obs = g.create_group("obs")
    h, w = ep.images.shape[1:3]
    obs.create_dataset(
        IMAGE_KEY, data=ep.images, chunks=(1, h, w, 3), compression="gzip", compression_opts=4
    )
    obs.create_dataset("state", data=ep.state.astype(np.float32))
    obs.create_dataset("object_pos", data=ep.object_pos.astype(np.float32))
    g.create_dataset("actions", data=ep.actions.astype(np.float32))
    g.create_dataset("states", data=ep.states.astype(np.float64))
    g.create_dataset("rewards", data=np.zeros(t, np.float32))
    dones = np.zeros(t, np.uint8)
    dones[-1] = 1
    g.create_dataset("dones", data=dones)


def write_attrs(
    f: h5py.File,
    env_args: dict[str, Any],
    collect_config: dict[str, Any],
    train: list[str],
    valid: list[str],
) -> None:
    """Write the file-level attributes and the train/valid masks."""
    data = f.require_group("data")
    data.attrs["total"] = int(sum(data[n].attrs["num_samples"] for n in data))
    data.attrs["env_args"] = json.dumps(env_args)
    data.attrs["format_version"] = FORMAT_VERSION
    data.attrs["collect_config"] = json.dumps(collect_config)
    data.attrs["camera"] = CAMERA
    mask = f.require_group("mask")
    mask.create_dataset("train", data=np.array(train, dtype="S"))
    mask.create_dataset("valid", data=np.array(valid, dtype="S"))


def demo_index(name: str) -> int:
    """``demo_12`` -> 12."""
    m = _DEMO.match(name)
    if m is None:
        raise DataError(f"unexpected group '{name}' in data/: demos are named demo_<i>")
    return int(m.group(1))


class DemoFile:
    """Read-only access to a foresight dataset, validated on open.

    Args:
        path: The ``.h5`` file.
        validate: Check every demo's shapes and dtypes (skip only when reopening a file that
            was already validated, e.g. in a data-loader worker).

    Raises:
        DataError: Missing, unreadable, foreign or inconsistent file (one line, what to do).
    """

    def __init__(self, path: str | Path, validate: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(
                f"dataset {self.path} does not exist; create one with 'foresight collect'"
            )
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as err:
            raise DataError(
                f"{self.path} is not a readable HDF5 file ({err}); re-create it with "
                "'foresight collect'"
            ) from err
        try:
            self._read_header()
            if validate:
                for name in self.demos:
                    self._validate_demo(name)
        except DataError:
            self.file.close()
            raise
        except (KeyError, OSError, ValueError, TypeError) as err:
            self.file.close()
            raise DataError(
                f"{self.path} is corrupt or not a foresight dataset ({err}); "
                "re-create it with 'foresight collect'"
            ) from err

    # ------------------------------------------------------------------------------ header
    def _read_header(self) -> None:
        f = self.file
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise DataError(f"{self.path} has no 'data' group: not a foresight/robomimic dataset")
        data = f["data"]
        version = data.attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise DataError(
                f"{self.path} has format version {version!r}, expected {FORMAT_VERSION!r}; "
                "re-create it with 'foresight collect'"
            )
        self.env_args: dict[str, Any] = json.loads(data.attrs["env_args"])
        self.collect_config: dict[str, Any] = json.loads(data.attrs["collect_config"])
        self.demos = sorted(data.keys(), key=demo_index)
        if not self.demos:
            raise DataError(f"{self.path} holds no episodes")
        first = data[self.demos[0]]
        img = first["obs"][IMAGE_KEY]
        if img.ndim != 4 or img.shape[3] != 3 or img.shape[1] != img.shape[2]:
            raise DataError(f"{self.path}: frames must be (T+1, H, H, 3), got {img.shape}")
        self.image_size = int(img.shape[1])
        self.num_objects = int(first["obs"]["object_pos"].shape[1])
        self.state_size = int(first["states"].shape[1])
        self.action_dim = int(first["actions"].shape[1])
        self.state_dim = int(first["obs"]["state"].shape[1])
        names = set(self.demos)
        self.splits: dict[str, list[str]] = {}
        for split in ("train", "valid"):
            if f"mask/{split}" not in f:
                raise DataError(
                    f"{self.path} has no mask/{split}; re-create it with 'foresight collect'"
                )
            listed = [
                n.decode() if isinstance(n, bytes) else str(n) for n in f[f"mask/{split}"][()]
            ]
            missing = [n for n in listed if n not in names]
            if missing:
                raise DataError(f"{self.path}: mask/{split} names missing demos, e.g. {missing[0]}")
            self.splits[split] = sorted(listed, key=demo_index)

    def _validate_demo(self, name: str) -> None:
        g = self.file["data"][name]
        t = int(g.attrs["num_samples"])
        h = self.image_size
        k = self.num_objects
        expected: dict[str, tuple[tuple[int, ...], tuple[type, ...]]] = {
            f"obs/{IMAGE_KEY}": ((t + 1, h, h, 3), (np.uint8,)),
            "obs/state": ((t + 1, self.state_dim), (np.float32,)),
            "obs/object_pos": ((t + 1, k, 3), (np.float32,)),
            "actions": ((t, self.action_dim), (np.float32,)),
            "states": ((t + 1, self.state_size), (np.float64,)),
        }
        if t < 1:
            raise DataError(f"{self.path}: {name} has no steps")
        for key, (shape, dtypes) in expected.items():
            if key not in g:
                raise DataError(
                    f"{self.path}: {name} lacks '{key}'; re-create it with 'foresight collect'"
                )
            ds = g[key]
            if ds.shape != shape or ds.dtype.type not in dtypes:
                raise DataError(
                    f"{self.path}: {name}/{key} is {ds.dtype}{ds.shape}, "
                    f"expected {np.dtype(dtypes[0])}{shape}"
                )

    # ------------------------------------------------------------------------------ access
    def split(self, name: str) -> list[str]:
        """Demo names of split ``train``, ``valid`` or ``all``."""
        if name == "all":
            return list(self.demos)
        if name not in self.splits:
            raise DataError(f"unknown split '{name}' (choose train, valid or all)")
        return list(self.splits[name])

    def num_samples(self, demo: str) -> int:
        """Number of actions ``T`` in ``demo`` (it has ``T+1`` frames)."""
        return int(self.file["data"][demo].attrs["num_samples"])

    def read(self, demo: str, key: str, index: slice | Any = slice(None)) -> np.ndarray:
        """Read ``data/<demo>/<key>[index]``; keys as in the module docstring."""
        return self.file["data"][demo][key][index]

    def frames(self, demo: str, index: slice | Any = slice(None)) -> np.ndarray:
        """``(T', H, W, 3)`` uint8 frames of ``demo``."""
        return self.read(demo, f"obs/{IMAGE_KEY}", index)

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def __enter__(self) -> DemoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def moved_fraction(self, threshold: float = 0.01) -> float:
        """Fraction of demos in which some object moved more than ``threshold`` metres."""
        moved = 0
        for name in self.demos:
            pos = self.read(name, "obs/object_pos")[:, :, :2]
            shift = np.linalg.norm(pos - pos[:1], axis=-1).max()
            moved += bool(shift > threshold)
        return moved / len(self.demos)

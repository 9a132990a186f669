"""The dataset file: robomimic-compatible HDF5 layout, its writer and its one reader.

Layout::

    data/                       attrs: total, env_args (JSON), format_version,
                                       collect_config (JSON), camera
      demo_<i>/                 attrs: num_samples (= T), seed, active (K,) bool,
                                       scene (JSON, only when the env drew the episode's
                                       objects: what re-renders its states)
        obs/top_image           uint8   (T+1, H, W, 3)  chunked per frame, gzip
        obs/state               float32 (T+1, 2)        pusher xy
        obs/object_pos          float32 (T+1, K, 3)     object centres (parked ones too)
        actions                 float32 (T, 2)          in [-1, 1]
        states                  float64 (T+1, S)        raw MuJoCo state (re-render, oracle)
        rewards, dones          float32, uint8 (T,)     robomimic fields (0; dones[-1] = 1)
    mask/train, mask/valid      bytes, demo names

Unlike robomimic, observations hold T+1 entries (the frame after the last action too), so a
video model sees every frame the actions lead to. Files are untrusted input: the reader
checks every shape and dtype, that actions and states are finite (and actions within
[-1, 1]), and that the masks name existing, distinct demos, and turns any problem into a
one-line :class:`DataError`.
"""

from __future__ import annotations

import hashlib
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
        scene: JSON text of what the env drew for this episode besides its state (its
            ``episode_scene()``, e.g. the objects); None for a fixed scene.
    """

    images: np.ndarray
    state: np.ndarray
    object_pos: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    active: np.ndarray
    seed: int
    scene: str | None = None

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
            **({} if self.scene is None else {"scene": np.str_(self.scene)}),
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
                scene=str(z["scene"]) if "scene" in z.files else None,
            )


def write_demo(data: h5py.Group, name: str, ep: Episode) -> None:
    """Write one episode as ``data/<name>``."""
    g = data.create_group(name)
    t = len(ep.actions)
    g.attrs["num_samples"] = t
    g.attrs["seed"] = ep.seed
    g.attrs["active"] = ep.active.astype(bool)
    if ep.scene is not None:
        g.attrs["scene"] = ep.scene
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


#: How far past [-1, 1] a stored action may lie (float rounding), before it counts as corrupt.
ACTION_TOLERANCE = 1e-4
#: The fields whose every value is read at validation: small next to the frames, and floats, so
#: NaN/inf can hide in them (the uint8 frames cannot hold one).
NUMERIC_FIELDS = ("actions", "obs/state", "obs/object_pos", "states")
RECOLLECT = "re-create it with 'foresight collect'"


class DemoFile:
    """Read-only access to a foresight dataset, validated on open.

    Args:
        path: The ``.h5`` file.
        validate: Check every demo's shapes, dtypes and values (skip only when reopening a
            file that was already validated, e.g. in a data-loader worker).

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
            # h5py reports a damaged file in many ways; every one means the same to a user.
            self.file.close()
            text = str(err).strip()
            detail = text.splitlines()[0][:200] if text else type(err).__name__
            raise DataError(
                f"{self.path} is corrupt or not a foresight dataset ({detail}); {RECOLLECT}"
            ) from err

    # ------------------------------------------------------------------------------ header
    def _json_attr(self, data: h5py.Group, key: str) -> dict[str, Any]:
        """A JSON-object attribute of ``data/`` (``env_args``, ``collect_config``)."""
        if key not in data.attrs:
            raise DataError(f"{self.path}: data/ lacks the '{key}' attribute; {RECOLLECT}")
        raw = data.attrs[key]
        if isinstance(raw, bytes | np.bytes_):
            raw = raw.decode("utf-8", errors="replace")
        if not isinstance(raw, str):
            raise DataError(f"{self.path}: data/ attribute '{key}' is not JSON text; {RECOLLECT}")
        try:
            value = json.loads(raw)
        except ValueError as err:
            raise DataError(
                f"{self.path}: data/ attribute '{key}' is not valid JSON ({err}); {RECOLLECT}"
            ) from err
        if not isinstance(value, dict):
            raise DataError(
                f"{self.path}: data/ attribute '{key}' must be a JSON object, got "
                f"{type(value).__name__}; {RECOLLECT}"
            )
        return value

    def _group(self, parent: h5py.Group, key: str, where: str) -> h5py.Group:
        """``parent[key]``, which must be a group."""
        node = parent.get(key)
        if node is None:
            raise DataError(f"{self.path}: {where} lacks '{key}'; {RECOLLECT}")
        if not isinstance(node, h5py.Group):
            raise DataError(f"{self.path}: {where}/{key} is not a group; {RECOLLECT}")
        return node

    def _dataset(self, g: h5py.Group, key: str, ndim: int) -> h5py.Dataset:
        """``g[key]`` of demo group ``g``, which must be an ``ndim``-dimensional dataset."""
        ds = g.get(key)
        demo = g.name.rsplit("/", 1)[-1]
        if ds is None:
            raise DataError(f"{self.path}: {demo} lacks '{key}'; {RECOLLECT}")
        if not isinstance(ds, h5py.Dataset):
            raise DataError(f"{self.path}: {demo}/{key} is a group, not an array; {RECOLLECT}")
        if ds.ndim != ndim:
            raise DataError(
                f"{self.path}: {demo}/{key} has shape {ds.shape}, expected {ndim} dimensions; "
                f"{RECOLLECT}"
            )
        return ds

    def _read_num_samples(self, demo: str, g: h5py.Group | None = None) -> int:
        """The ``num_samples`` attribute of ``demo`` (group ``g``): a positive integer."""
        if g is None:
            g = self._group(self.file["data"], demo, "data")
        raw = g.attrs.get("num_samples")
        if raw is None:
            raise DataError(f"{self.path}: {demo} lacks the 'num_samples' attribute; {RECOLLECT}")
        if isinstance(raw, np.ndarray) and raw.shape in ((), (1,)):
            raw = raw.reshape(()).item()
        if isinstance(raw, bool | np.bool_) or not isinstance(raw, int | np.integer):
            raise DataError(
                f"{self.path}: {demo} attribute 'num_samples' must be an integer, got {raw!r}; "
                f"{RECOLLECT}"
            )
        if raw < 1:
            raise DataError(f"{self.path}: {demo} has no steps (num_samples {raw}); {RECOLLECT}")
        return int(raw)

    def _read_mask(self, split: str) -> list[str]:
        """Demo names of ``mask/<split>``: a 1-D array of strings naming existing demos."""
        key = f"mask/{split}"
        if key not in self.file:
            raise DataError(f"{self.path} has no {key}; {RECOLLECT}")
        ds = self.file[key]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "SOU":
            raise DataError(f"{self.path}: {key} must be a list of demo names; {RECOLLECT}")
        listed = []
        for n in ds[()]:
            if isinstance(n, bytes):
                try:
                    n = n.decode()
                except UnicodeDecodeError:
                    raise DataError(
                        f"{self.path}: {key} holds a name that is not text; {RECOLLECT}"
                    ) from None
            listed.append(str(n))
        missing = [n for n in listed if n not in self._names]
        if missing:
            raise DataError(
                f"{self.path}: {key} names missing demos, e.g. {missing[0]!r}; {RECOLLECT}"
            )
        if len(set(listed)) != len(listed):
            twice = next(n for n in listed if listed.count(n) > 1)
            raise DataError(f"{self.path}: {key} lists {twice} twice; {RECOLLECT}")
        return sorted(listed, key=demo_index)

    def _read_header(self) -> None:
        f = self.file
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise DataError(f"{self.path} has no 'data' group: not a foresight/robomimic dataset")
        data = f["data"]
        version = data.attrs.get("format_version")
        if isinstance(version, bytes | np.bytes_):
            version = version.decode("utf-8", errors="replace")
        if not isinstance(version, str) or version != FORMAT_VERSION:
            raise DataError(
                f"{self.path} has format version {version!r}, expected {FORMAT_VERSION!r}; "
                f"{RECOLLECT}"
            )
        self.format_version: str = version
        self.env_args: dict[str, Any] = self._json_attr(data, "env_args")
        self.collect_config: dict[str, Any] = self._json_attr(data, "collect_config")
        strays = [n for n in data if not _DEMO.match(n)]
        if strays:
            raise DataError(
                f"{self.path}: unexpected entry '{strays[0]}' in data/ (demos are named "
                f"demo_<i>); {RECOLLECT}"
            )
        self.demos = sorted(data.keys(), key=demo_index)
        if not self.demos:
            raise DataError(f"{self.path} holds no episodes")
        self._names = set(self.demos)
        first = self.demos[0]
        g = self._group(data, first, "data")
        img = self._dataset(g, f"obs/{IMAGE_KEY}", 4)
        if img.shape[3] != 3 or img.shape[1] != img.shape[2] or img.shape[1] < 1:
            raise DataError(f"{self.path}: frames must be (T+1, H, H, 3), got {img.shape}")
        self.image_size = int(img.shape[1])
        self.num_objects = int(self._dataset(g, "obs/object_pos", 3).shape[1])
        self.state_size = int(self._dataset(g, "states", 2).shape[1])
        self.action_dim = int(self._dataset(g, "actions", 2).shape[1])
        self.state_dim = int(self._dataset(g, "obs/state", 2).shape[1])
        if self.action_dim < 1 or self.state_dim < 1:
            raise DataError(
                f"{self.path}: {first} has empty actions or robot states "
                f"({self.action_dim} and {self.state_dim} values); {RECOLLECT}"
            )
        self.splits: dict[str, list[str]] = {s: self._read_mask(s) for s in ("train", "valid")}
        both = set(self.splits["train"]) & set(self.splits["valid"])
        if both:
            raise DataError(
                f"{self.path}: {min(both, key=demo_index)} is in both mask/train and mask/valid, "
                f"so validation would score episodes the model trained on; {RECOLLECT}"
            )

    def scene(self, demo: str) -> list[Any] | dict[str, Any] | None:
        """What the env drew for ``demo`` (its ``scene`` attribute), None for a fixed scene.

        Pass it to the env as ``reset(options={"scene": ...})`` to re-render the demo's states.
        """
        raw = self._group(self.file["data"], demo, "data").attrs.get("scene")
        if raw is None:
            return None
        if isinstance(raw, bytes | np.bytes_):
            raw = raw.decode("utf-8", errors="replace")
        try:
            value = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            value = None
        if not isinstance(value, list | dict):
            raise DataError(f"{self.path}: {demo} attribute 'scene' is not JSON; {RECOLLECT}")
        return value

    def _validate_demo(self, name: str) -> None:
        g = self._group(self.file["data"], name, "data")
        self.scene(name)
        t = self._read_num_samples(name, g)
        h = self.image_size
        k = self.num_objects
        expected: dict[str, tuple[tuple[int, ...], type]] = {
            f"obs/{IMAGE_KEY}": ((t + 1, h, h, 3), np.uint8),
            "obs/state": ((t + 1, self.state_dim), np.float32),
            "obs/object_pos": ((t + 1, k, 3), np.float32),
            "actions": ((t, self.action_dim), np.float32),
            "states": ((t + 1, self.state_size), np.float64),
        }
        arrays = {}
        for key, (shape, dtype) in expected.items():
            ds = arrays[key] = self._dataset(g, key, len(shape))
            if ds.shape != shape or ds.dtype.type is not dtype:
                raise DataError(
                    f"{self.path}: {name}/{key} is {ds.dtype}{ds.shape}, "
                    f"expected {np.dtype(dtype)}{shape}; {RECOLLECT}"
                )
        for key in NUMERIC_FIELDS:
            values = arrays[key][()]
            bad = ~np.isfinite(values)
            if bad.any():
                at = np.argwhere(bad)[0]
                raise DataError(
                    f"{self.path}: {name}/{key} holds {values[tuple(at)]} at step {at[0]} "
                    f"(values must be finite); the file is damaged, {RECOLLECT}"
                )
            if key == "actions":
                worst = float(np.abs(values).max(initial=0.0))
                if worst > 1.0 + ACTION_TOLERANCE:
                    at = np.argwhere(np.abs(values) == worst)[0]
                    raise DataError(
                        f"{self.path}: {name}/actions holds {values[tuple(at)]:.4g} at step "
                        f"{at[0]}, outside the declared bounds [-1, 1]; {RECOLLECT}"
                    )

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this dataset's content, cheaply (no frame is read).

        Two files with the same fingerprint hold the same episodes, split the same way: the
        same demo names per split, the same steps, the same frame size and the same
        ``env_args`` and ``collect_config`` (collection is deterministic given those). A
        moved or copied file keeps its fingerprint.

        Returns:
            Plain values (safe in a checkpoint): ``episodes``, ``steps``, ``image_size``,
            ``train``/``valid`` (sha256 of the demo names), ``attrs`` (sha256 of the two
            JSON attributes).
        """

        def digest(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()[:16]

        return {
            "episodes": len(self.demos),
            "steps": sum(self.num_samples(d) for d in self.demos),
            "image_size": self.image_size,
            "train": digest("\n".join(self.splits["train"])),
            "valid": digest("\n".join(self.splits["valid"])),
            "attrs": digest(
                json.dumps([self.env_args, self.collect_config], sort_keys=True, default=str)
            ),
        }

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
        return self._read_num_samples(demo)

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
            # initial=0: a scene without objects moves nothing (max of nothing is undefined).
            shift = np.linalg.norm(pos - pos[:1], axis=-1).max(initial=0.0)
            moved += bool(shift > threshold)
        return moved / len(self.demos)

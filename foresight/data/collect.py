"""``foresight collect``: episodes of an env's exploration policy, written to HDF5.

Any :class:`~foresight.envs.ForesightEnv` can be collected in: its exploration policy acts,
and its observations, ``info["object_pos"]`` and full simulator states are recorded.

Each episode ``i`` depends only on ``(seed, i)``, so the dataset is the same whatever the
number of workers. Episodes are first saved one file each (atomically) under
``<out>.parts/``; an interrupted run re-run with the same command skips what is done. The
final HDF5 file is assembled into a temporary file and renamed, so it is either absent or
complete, and an existing file is only replaced with ``overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from rich.console import Console

if TYPE_CHECKING:
    from foresight.envs.base import ForesightEnv

from foresight.config import check_seed, from_dict, to_dict
from foresight.data.hdf5 import Episode, write_attrs, write_demo
from foresight.envs.spec import DEFAULT_ENV, EnvSpec
from foresight.errors import DataError
from foresight.io import atomic_path, check_out_file
from foresight.parallel import LOCAL, Backend, run_jobs
from foresight.progress import make_progress
from foresight.rundir import RunDir, name_differences, settings_differences
from foresight.workers import ignore_interrupts

#: Limits of a collection's size, so a typo fails at once instead of exhausting memory.
MAX_EPISODES = 10_000_000
MAX_STEPS = 10_000


@dataclass(frozen=True)
class CollectSettings:
    """Everything that determines the content of episode ``i`` (saved beside the parts).

    Attributes:
        seed: Dataset seed.
        steps: Actions per episode.
        env: The env's config, as plain values.
        policy: The env's exploration policy config, as plain values.
        env_name: The env's registered id.
    """

    seed: int
    steps: int
    env: dict[str, Any]
    policy: dict[str, Any]
    env_name: str = DEFAULT_ENV

    @property
    def env_spec(self) -> EnvSpec:
        """The env episodes are collected in."""
        return EnvSpec(self.env_name, self.env)


def episode_seed(seed: int, index: int) -> int:
    """The env seed of episode ``index``, independent of workers and of other episodes."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def run_episode(env: ForesightEnv, settings: CollectSettings, index: int) -> Episode:
    """Collect episode ``index`` with ``env``, acting by the env's exploration policy."""
    seed = episode_seed(settings.seed, index)
    obs, info = env.reset(seed=seed)
    scene = env.episode_scene()
    policy_config = from_dict(env.policy_config_class, settings.policy, "policy config")
    policy = env.exploration_policy(np.random.default_rng([settings.seed, index, 1]), policy_config)
    t = settings.steps
    images = np.empty((t + 1, *obs["image"].shape), np.uint8)
    state = np.empty((t + 1, *obs["state"].shape), np.float32)
    object_pos = np.empty((t + 1, *np.shape(info["object_pos"])), np.float32)
    sim_states = np.empty((t + 1, len(env.get_state())), np.float64)
    actions = np.empty((t, *env.action_space.shape), np.float32)
    for step in range(t + 1):
        images[step] = obs["image"]
        state[step] = obs["state"]
        object_pos[step] = info["object_pos"]
        sim_states[step] = env.get_state()
        if step == t:
            break
        actions[step] = policy(obs, info)
        obs, _, _, _, info = env.step(actions[step])
    return Episode(
        images,
        state,
        object_pos,
        actions,
        sim_states,
        info["active"],
        seed,
        None if scene is None else json.dumps(scene, sort_keys=True),
    )


# One env per worker process, reused across its episodes: creating a renderer costs far more
# than an episode. Module-level because multiprocessing initializers can only leave state here.
_worker: dict[str, Any] = {}


def _init_worker(settings: CollectSettings, pooled: bool = False) -> None:
    if pooled:
        ignore_interrupts()

    _worker["env"] = settings.env_spec.make()
    _worker["settings"] = settings


def _close_worker() -> None:
    _worker.pop("env").close()


def _collect_one(index: int) -> tuple[int, Episode]:
    return index, run_episode(_worker["env"], _worker["settings"], index)


def save_part(parts: Path, index: int, episode: Episode) -> None:
    """Save episode ``index`` into ``parts`` atomically (a kill leaves no half part)."""
    with atomic_path(part_path(parts, index), suffix=".npz") as tmp, tmp.open("wb") as fh:
        episode.save_npz(fh)


def part_path(parts: Path, index: int) -> Path:
    """Where episode ``index`` is saved before assembly."""
    return parts / f"demo_{index}.npz"


def parts_dir(out: Path) -> Path:
    """The folder of finished episodes for ``out`` (exists only while collecting)."""
    return out.with_name(out.name + ".parts")


def _settings_json(settings: CollectSettings) -> str:
    return json.dumps(asdict(settings), sort_keys=True, indent=1, default=list)


def collect_config(
    settings: CollectSettings, episodes: int, valid_fraction: float
) -> dict[str, Any]:
    """The ``collect_config`` attribute of a dataset: everything that defines its content.

    The number of workers is left out on purpose: it changes how fast, not what, is collected.
    So is the env's id, which ``env_args`` holds (as robomimic's datasets do).
    """
    settings_dict = json.loads(_settings_json(settings))
    del settings_dict["env_name"]
    return {**settings_dict, "episodes": episodes, "valid_fraction": valid_fraction}


def stored_collect_config(out: Path) -> dict[str, Any] | None:
    """The ``collect_config`` saved in ``out`` (with ``env_name`` from its ``env_args``).

    None when ``out`` is not a readable dataset.
    """
    try:
        with h5py.File(out, "r") as f:
            stored = json.loads(f["data"].attrs["collect_config"])
            env_args = json.loads(f["data"].attrs["env_args"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if not isinstance(stored, dict) or not isinstance(env_args, dict):
        return None
    return {**stored, "env_name": env_args.get("env_name")}


def check_existing(out: Path, expected: dict[str, Any]) -> None:
    """Return when ``out`` is a finished collection with ``expected`` as its collect config.

    Raises:
        DataError: ``out`` exists but holds something else (other settings, not a dataset).
    """
    stored = stored_collect_config(out)
    if stored == expected:
        return
    detail = ""
    if stored is not None:
        detail = (
            f" with other settings ({name_differences(settings_differences(stored, expected))})"
        )
    raise DataError(
        f"{out} already exists{detail}; pass --overwrite to replace it, or choose another --out"
    )


def prepare_parts(out: Path, settings: CollectSettings, overwrite: bool) -> Path:
    """Create (or check, when resuming) the parts folder of ``out``.

    With ``overwrite``, saved parts made with other settings are discarded: ``--overwrite``
    is always a way out of an earlier run, whatever state it was left in.
    """
    if out.exists() and not overwrite:
        raise DataError(
            f"{out} already exists; pass --overwrite to replace it, or choose another --out"
        )
    parts = parts_dir(out)
    run = RunDir(
        parts,
        "an interrupted collection",
        owned=("demo_*.npz",),
        # Parts saved before envs had names were all collected in the default env.
        legacy={"env_name": DEFAULT_ENV},
        error=DataError,
    )
    run.open(json.loads(_settings_json(settings)), overwrite)
    return parts


def done_indices(parts: Path) -> set[int]:
    """Episode indices already saved in ``parts``."""
    done = set()
    for p in parts.glob("demo_*.npz"):
        try:
            done.add(int(p.stem.removeprefix("demo_")))
        except ValueError:
            continue
    return done


def collect_parts(
    settings: CollectSettings,
    parts: Path,
    indices: list[int],
    workers: int,
    backend: Backend = LOCAL,
) -> Iterator[int]:
    """Collect ``indices`` into ``parts``, yielding each index as it is saved.

    Workers return their episodes and this process saves them, on any backend: a worker on
    another machine writes nothing here, and one run again after a crash saves nothing twice.
    """
    jobs = run_jobs(
        backend, _init_worker, (settings,), _collect_one, indices, workers, close=_close_worker
    )
    for index, episode in jobs:
        save_part(parts, index, episode)
        yield index


def split_names(num: int, valid_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic train/valid split: the last ``valid_fraction`` of episodes are valid.

    Raises:
        DataError: ``valid_fraction`` is not in ``[0, 1)``, or leaves no training episode.
    """
    if not 0.0 <= valid_fraction < 1.0:  # NaN fails too
        raise DataError(f"--valid-fraction must be in [0, 1), got {valid_fraction}")
    n_valid = 0 if num < 2 or valid_fraction == 0 else max(1, round(num * valid_fraction))
    if n_valid >= num and num > 0:
        raise DataError(
            f"--valid-fraction {valid_fraction} of {num} episodes leaves none to train on; "
            "lower it or collect more episodes"
        )
    names = [f"demo_{i}" for i in range(num)]
    return names[: num - n_valid], names[num - n_valid :]


def assemble(
    out: Path,
    parts: Path,
    num: int,
    settings: CollectSettings,
    valid_fraction: float,
    on_written: Any = None,
) -> None:
    """Write episodes ``0..num-1`` from ``parts`` into ``out`` atomically."""
    train, valid = split_names(num, valid_fraction)
    env_args = settings.env_spec.env_args()
    with atomic_path(out, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for i in range(num):
            write_demo(data, f"demo_{i}", Episode.load_npz(part_path(parts, i)))
            if on_written is not None:
                on_written()
        write_attrs(f, env_args, collect_config(settings, num, valid_fraction), train, valid)


def make_settings(
    seed: int, steps: int, env: EnvSpec, policy: dict[str, Any] | None = None
) -> CollectSettings:
    """Settings from the env (its config checked), its policy's config and the run flags."""
    cls = env.env_class
    env_dict = to_dict(env.typed())
    policy_dict = to_dict(from_dict(cls.policy_config_class, policy, "policy config"))
    if not 1 <= steps <= MAX_STEPS:
        raise DataError(f"--steps must be from 1 to {MAX_STEPS}, got {steps}")
    check_seed(seed)
    return CollectSettings(seed, steps, env_dict, policy_dict, env_name=env.name)


def finish(parts: Path) -> None:
    """Remove the parts folder once the final file is in place."""
    shutil.rmtree(parts, ignore_errors=True)


def collect_dataset(
    out: Path,
    episodes: int,
    env: EnvSpec,
    seed: int = 0,
    steps: int = 30,
    workers: int = 1,
    valid_fraction: float = 0.1,
    overwrite: bool = False,
    console: Console | None = None,
    backend: Backend = LOCAL,
) -> None:
    """Collect ``episodes`` episodes into ``out``, resuming saved parts; progress on ``console``.

    Args:
        out: The ``.h5`` file to write (appears only when complete).
        episodes: Number of episodes.
        env: The env to collect in (its config and id).
        seed: Dataset seed (episode ``i`` uses ``(seed, i)``).
        steps: Actions per episode.
        workers: Parallel worker processes.
        valid_fraction: Share of episodes in ``mask/valid``.
        overwrite: Replace an existing ``out``; without it, an ``out`` collected with the
            same settings is left as it is (the run is already done), and any other is an
            error.
        console: Where progress goes (default: stderr).
        backend: Where the episodes run (:mod:`foresight.parallel`); the file is the same.
    """
    if not 1 <= episodes <= MAX_EPISODES:
        raise DataError(f"--episodes must be from 1 to {MAX_EPISODES:,}, got {episodes}")
    if workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    settings = make_settings(seed, steps, env)
    split_names(episodes, valid_fraction)  # checked before any work
    check_out_file(out)
    console = console or Console(stderr=True)
    if out.exists() and not overwrite:
        expected = collect_config(settings, episodes, valid_fraction)
        check_existing(out, {**expected, "env_name": settings.env_name})
        console.print(f"{out} is already complete ({episodes} episodes x {steps} steps): skipped")
        return
    parts = prepare_parts(out, settings, overwrite)
    done = done_indices(parts)
    todo = [i for i in range(episodes) if i not in done]
    if done & set(range(episodes)):
        console.print(f"resuming: {episodes - len(todo)} of {episodes} episodes already saved")
    cores = os.cpu_count() or 1
    if not backend.remote and workers > min(cores, max(len(todo), 1)):
        # Each worker is a CPU-bound renderer: more processes than cores (or than episodes
        # left) only cost start-up time and memory.
        used = max(1, min(cores, len(todo)))
        console.print(f"note: --workers {workers} lowered to {used} ({cores} cores here)")
        workers = used
    start = time.perf_counter()
    with make_progress(console) as progress:
        task = progress.add_task("collecting", total=episodes, completed=episodes - len(todo))
        for _ in collect_parts(settings, parts, todo, workers, backend):
            progress.advance(task)
        write = progress.add_task("writing HDF5", total=episodes)
        assemble(
            out,
            parts,
            episodes,
            settings,
            valid_fraction,
            on_written=lambda: progress.advance(write),
        )
    finish(parts)
    seconds = time.perf_counter() - start
    console.print(
        f"wrote {out}: {episodes} episodes x {steps} steps "
        f"({len(todo) * steps / max(seconds, 1e-9):.0f} env steps/s this run)"
    )

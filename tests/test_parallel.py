"""Backends: Ray gives the same datasets and plans as local processes, resumes and retries."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from foresight.cli import main
from foresight.data.collect import collect_dataset
from foresight.envs import load_env
from foresight.errors import ConfigError, ForesightError
from foresight.models import build_model, load_model_config, save_checkpoint
from foresight.parallel import Backend, run_jobs
from foresight.planners import CEMConfig, PlannerConfig, run_suite

ray = pytest.importorskip("ray")
RAY = Backend("ray")
TINY_PLANNER = PlannerConfig(optimizer=CEMConfig(samples=8, iterations=1, elites=2), horizon=3)


@pytest.fixture(scope="module", autouse=True)
def _ray() -> Iterator[None]:
    """One local Ray instance for the module (each run would otherwise start its own)."""
    # The retry test's job lives here: workers get it by value, not by importing this file.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def h5_contents(path: Path) -> dict[str, object]:
    """Every dataset and attribute of an HDF5 file, by path."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        out.update({f"@{k}": v for k, v in f.attrs.items()})

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            out.update({f"{name}@{k}": v for k, v in obj.attrs.items()})

        f.visititems(visit)
    return out


def assert_same(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key


def test_ray_collects_the_same_dataset_as_local_processes(tmp_path: Path) -> None:
    env = load_env("push_random", {"image_size": 32})
    kw = dict(episodes=4, env=env, steps=5, seed=3)
    collect_dataset(tmp_path / "local.h5", workers=1, **kw)
    collect_dataset(tmp_path / "ray.h5", workers=2, backend=RAY, **kw)
    assert_same(h5_contents(tmp_path / "local.h5"), h5_contents(tmp_path / "ray.h5"))


def plain(records: list[dict]) -> list[dict]:
    """Episode records without their timings."""
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in records]


def test_ray_plans_the_same_episodes_and_ships_the_checkpoint(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "copy_last.pt", build_model(load_model_config("copy_last")))
    kw = dict(suite="easy", episodes=2, seed=4, planner=TINY_PLANNER, device="cpu", gifs=False)
    local = run_suite(ckpt, out=tmp_path / "local", **kw)
    remote = run_suite(ckpt, out=tmp_path / "ray", workers=2, backend=RAY, **kw)
    assert plain(remote.episodes) == plain(local.episodes)
    assert remote.summary.successes == local.summary.successes
    lines = [json.loads(x) for x in (tmp_path / "ray" / "episodes.jsonl").read_text().splitlines()]
    assert plain(lines) == plain(local.episodes)


def test_an_interrupted_ray_run_continues_from_what_was_written(tmp_path: Path) -> None:
    kw = dict(suite="easy", episodes=3, seed=5, gifs=False)
    whole = run_suite("random", out=tmp_path / "whole", **kw)
    out = tmp_path / "cut"
    run_suite("random", out=out, backend=RAY, workers=2, **kw)
    # As a kill after two episodes leaves it: their lines, no summary.
    jsonl = out / "episodes.jsonl"
    jsonl.write_text("".join(jsonl.read_text().splitlines(keepends=True)[:2]))
    (out / "summary.json").unlink()
    again = run_suite("random", out=out, backend=RAY, workers=2, **kw)
    assert plain(again.episodes) == plain(whole.episodes)


# --------------------------------------------------------------------------- a dying worker
def _init(pooled: bool = False) -> None:
    pass


def _die_once_on_two(job: tuple[int, Path]) -> tuple[int, int]:
    item, marker = job
    if item == 2 and not marker.exists():
        marker.write_text("died")
        os._exit(1)  # the whole worker process goes, as a crash or an OOM kill would
    return item, item * item


def test_a_job_whose_worker_died_runs_again_once(tmp_path: Path) -> None:
    marker = tmp_path / "died"
    jobs = [(i, marker) for i in range(5)]
    # More workers than the instance's 2 CPUs: the extra ones are not made (nor waited for).
    results = list(run_jobs(RAY, _init, (), _die_once_on_two, jobs, workers=8))
    assert marker.exists()  # a worker did die
    assert sorted(results) == [(i, i * i) for i in range(5)]  # each job once


# --------------------------------------------------------------------------- the flags
def test_backend_flags_are_checked(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="local or ray"):
        Backend("slurm")
    with pytest.raises(ConfigError, match="--ray-address goes with --backend ray"):
        Backend("local", ray_address="auto")
    for flags in (["--ray-address", "auto"], ["--backend", "slurm"]):
        assert main(["plan", "--model", "random", "--out", "x", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "--backend" in err, err
    assert not Path("x").exists()


def test_planning_on_gpus_a_cluster_lacks_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ForesightError, match="no GPU"):
        list(run_jobs(RAY, _init, (), _die_once_on_two, [(0, tmp_path / "m")], 1, gpus=1.0))


def test_without_ray_the_flag_says_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when it is absent
    with pytest.raises(ForesightError, match=r'pip install "foresight\[ray\]"'):
        list(run_jobs(RAY, _init, (), _die_once_on_two, [(0, tmp_path / "m")], workers=1))

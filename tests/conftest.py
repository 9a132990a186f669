"""Shared fixtures: a tiny real dataset collected once per test session, short task suites."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml

from foresight.cli import main
from foresight.data.dataset import SequenceDataset


@pytest.fixture(scope="session", autouse=True)
def _offline() -> Iterator[None]:
    """The suite never downloads (LPIPS weights would be 233 MB); download tests opt back in."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FORESIGHT_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real dataset: 12 episodes x 14 steps of 32x32 frames, collected by the CLI."""
    out = tmp_path_factory.mktemp("data") / "tiny.h5"
    code = main(
        [
            "collect",
            "--out",
            str(out),
            "--episodes",
            "12",
            "--steps",
            "14",
            "--image-size",
            "32",
            "--seed",
            "0",
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="session")
def real_windows(tiny_h5: Path):
    """Stacks windows of :func:`tiny_h5` from episodes spread over it.

    Returns ``take(length, count, image_size=32, stride=7)`` -> a batch of ``count`` windows:
    ``frames`` ``(count, length, 3, image_size, image_size)``, ``states``, ``actions``.
    """

    def take(length: int, count: int, image_size: int = 32, stride: int = 7) -> dict:
        ds = SequenceDataset(
            tiny_h5, length=length, split="all", image_size=image_size, stride=stride
        )
        items = [ds[i] for i in range(0, len(ds), len(ds) // count)][:count]
        ds.close()
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    return take


@pytest.fixture
def short_suite(tmp_path: Path) -> Callable[..., Path]:
    """Writes a suite cut short, so a planned episode takes seconds on CPU.

    Returns ``write(env="push", episode_steps=2, **fields) -> Path`` (the YAML's path);
    Push-v0's suites default to one object per task.
    """

    def write(env: str = "push", episode_steps: int = 2, **fields: object) -> Path:
        suite = {"name": "short", "env": env, "episode_steps": episode_steps, **fields}
        if env == "push":
            suite.setdefault("tasks", {"num_objects": [1, 1]})
        path = tmp_path / "short.yaml"
        path.write_text(yaml.safe_dump(suite))
        return path

    return write

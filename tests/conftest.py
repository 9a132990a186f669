"""Shared fixtures: a tiny real dataset collected once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from foresight.cli import main


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

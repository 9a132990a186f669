"""FVD: the I3D network loads user weights strictly, and the Fréchet distance is right."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from foresight.errors import ForesightError
from foresight.evaluation import evaluate
from foresight.fvd import I3D, frechet_distance, i3d_embeddings, load_i3d
from foresight.results import EvaluateOptions


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights of the right architecture (random: no real I3D weights exist on CI machines)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("i3d") / "i3d.pt"
    torch.save(I3D().state_dict(), path)
    return path


def test_frechet_distance_closed_forms() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4)) * np.array([1.0, 2.0, 0.5, 1.5])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.0, 3.0])
    assert frechet_distance(a, a + shift) == pytest.approx(14.0, rel=1e-6)
    # Scaling by 2: tr(S) + tr(4S) - 2 tr(2S) = tr(S).
    cov = np.cov(a, rowvar=False)
    assert frechet_distance(a, 2 * a - a.mean(0)) == pytest.approx(np.trace(cov), rel=1e-4)
    # Against scipy's matrix square root on well-conditioned, non-commuting covariances.
    b = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) + 1.0
    ca, cb = cov, np.cov(b, rowvar=False)
    expected = (
        np.sum((a.mean(0) - b.mean(0)) ** 2)
        + np.trace(ca + cb)
        - 2 * np.trace(scipy.linalg.sqrtm(ca @ cb).real)
    )
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    # Fewer samples than dimensions (singular covariances) stays finite and non-negative.
    few = frechet_distance(rng.normal(size=(5, 50)), rng.normal(size=(8, 50)))
    assert np.isfinite(few) and few > 0


def test_i3d_loads_strictly_and_embeds(i3d_file: Path, tmp_path: Path) -> None:
    net = load_i3d(i3d_file)
    videos = torch.rand(3, 10, 3, 32, 32)
    emb = i3d_embeddings(net, videos, size=64, batch_size=2)
    assert emb.shape == (3, 400) and emb.dtype == torch.float64 and torch.isfinite(emb).all()
    assert torch.allclose(emb, i3d_embeddings(net, videos, size=64, batch_size=3))

    state = torch.load(i3d_file, weights_only=True)
    del state["Mixed_5c.b3b.conv3d.weight"]
    partial = tmp_path / "partial.pt"
    torch.save(state, partial)
    with pytest.raises(ForesightError, match="Mixed_5c.b3b.conv3d.weight"):
        load_i3d(partial)
    with pytest.raises(ForesightError, match="do not exist"):
        load_i3d(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ForesightError, match="not a readable PyTorch file") as err:
        load_i3d(junk)
    assert "\n" not in str(err.value) and "weights_only=False" not in str(err.value)


def test_evaluate_reports_fvd_with_weights(tiny_h5: Path, i3d_file: Path, tmp_path: Path) -> None:
    common = EvaluateOptions(samples=2, sequences=2, future=5, control=False)
    with_i3d = dataclasses.replace(common, i3d=str(i3d_file))
    with_fvd = evaluate("copy_last", tmp_path / "a", data=tiny_h5, options=with_i3d)
    fvd = with_fvd.prediction.fvd
    assert fvd is not None and fvd.value >= 0 and np.isfinite(fvd.value)
    assert fvd.real_videos == 2 and fvd.generated_videos == 4 and fvd.frames == 7
    assert "fvd" not in with_fvd.prediction.unavailable

    without = evaluate("copy_last", tmp_path / "b", data=tiny_h5, options=common)
    assert without.prediction.fvd is None
    assert "--i3d" in without.prediction.unavailable["fvd"]
    with pytest.raises(ForesightError, match="at least 2 valid sequences"):
        one = dataclasses.replace(with_i3d, sequences=1)
        evaluate("copy_last", tmp_path / "c", data=tiny_h5, options=one)
    saved = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    assert saved["prediction"]["fvd"]["value"] == fvd.value

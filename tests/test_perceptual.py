"""LPIPS weights: found in order, checked, loaded strictly; never a random backbone."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torchvision

from foresight import perceptual as P


@pytest.fixture
def fake_alexnet(tmp_path, monkeypatch):
    """A torchvision-format AlexNet file (random weights) whose hash we declare expected."""
    path = tmp_path / "alexnet.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(P, "ALEXNET_SHA256_PREFIX", digest[:8])
    return path


def test_no_weights_is_a_clear_unavailable(tmp_path, monkeypatch):
    monkeypatch.delenv(P.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(P.LpipsUnavailable, match="alexnet-owt-7be5be79.pth"):
        P.build_lpips()
    with pytest.raises(P.LpipsUnavailable, match="do not exist"):
        P.build_lpips(tmp_path / "missing.pt")


def test_wrong_hash_is_refused(tmp_path):
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    with pytest.raises(P.LpipsUnavailable, match="sha256"):
        P.build_lpips(path)


def test_the_download_url_is_torchvisions():
    assert torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url == P.ALEXNET_URL
    assert P.ALEXNET_URL.endswith("/" + P.ALEXNET_FILE)


def test_offline_names_the_switch_and_downloads_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(P.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(P, "ALEXNET_URL", (tmp_path / "served.pth").as_uri())
    (tmp_path / "served.pth").write_bytes(b"would be fetched")
    with pytest.raises(P.LpipsUnavailable, match=r"FORESIGHT_OFFLINE is set: put torchvision"):
        P.find_weights()
    assert not (tmp_path / "hub").exists()


def test_missing_weights_are_downloaded_hash_checked_then_loaded(tmp_path, monkeypatch, capsys):
    """A real download through torch.hub (from a file:// URL), into the hub cache, then used."""
    served = tmp_path / "served" / P.ALEXNET_FILE
    served.parent.mkdir()
    torch.manual_seed(1)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), served)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    monkeypatch.setattr(P, "ALEXNET_SHA256_PREFIX", digest[:8])
    monkeypatch.setattr(P, "ALEXNET_URL", served.as_uri())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(P.ENV_VAR, raising=False)
    monkeypatch.delenv(P.OFFLINE_VAR, raising=False)
    net = P.build_lpips()
    cached = tmp_path / "hub" / "checkpoints" / P.ALEXNET_FILE
    assert cached.read_bytes() == served.read_bytes()
    assert "LPIPS: downloaded alexnet-owt-7be5be79.pth" in capsys.readouterr().err
    source = torch.load(served, weights_only=True)
    torch.testing.assert_close(net.state_dict()["net.slice1.0.weight"], source["features.0.weight"])
    assert P.find_weights() == cached  # the second time, the cache answers


@pytest.mark.parametrize("served", ["wrong hash", "unreachable"])
def test_a_failed_download_says_why_and_leaves_nothing(tmp_path, monkeypatch, served):
    monkeypatch.delenv(P.ENV_VAR, raising=False)
    monkeypatch.delenv(P.OFFLINE_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    url = tmp_path / "served.pth"
    if served == "wrong hash":
        url.write_bytes(b"not alexnet")
    monkeypatch.setattr(P, "ALEXNET_URL", url.as_uri())
    with pytest.raises(P.LpipsUnavailable) as err:
        P.build_lpips()
    message = str(err.value)
    assert "downloading" in message and "failed" in message and "put torchvision's" in message
    assert ("hash" in message) == (served == "wrong hash")
    assert "\n" not in message
    assert list((tmp_path / "hub" / "checkpoints").iterdir()) == []


def test_search_order_env_then_hub(tmp_path, monkeypatch, fake_alexnet):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    cached = hub / "checkpoints" / P.ALEXNET_FILE
    cached.write_bytes(fake_alexnet.read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(P.ENV_VAR, raising=False)
    assert P.find_weights() == cached
    monkeypatch.setenv(P.ENV_VAR, str(fake_alexnet))
    assert P.find_weights() == fake_alexnet
    assert P.find_weights(cached) == cached


def test_torchvision_file_loads_every_weight_and_compact_export_matches(tmp_path, fake_alexnet):
    net = P.build_lpips(fake_alexnet)
    source = torch.load(fake_alexnet, weights_only=True)
    torch.testing.assert_close(
        net.state_dict()["net.slice5.10.weight"], source["features.10.weight"]
    )
    x = torch.rand(2, 3, 3, 32, 32)
    y = torch.rand(2, 3, 3, 32, 32)
    d = P.lpips_distance(net, x, y)
    assert d.shape == (2, 3) and torch.all(d > 0)
    assert torch.all(P.lpips_distance(net, x, x) < 1e-6)
    compact = P.export_compact(fake_alexnet, tmp_path / "lpips_alex.pt")
    torch.testing.assert_close(P.lpips_distance(P.build_lpips(compact), x, y), d)


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(P.LpipsUnavailable, match="neither"):
        P.build_lpips(path)
    path.write_bytes(b"garbage")
    with pytest.raises(P.LpipsUnavailable, match="unreadable"):
        P.build_lpips(path)

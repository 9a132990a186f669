"""LPIPS (Zhang et al., 2018) with ImageNet AlexNet weights, hash-checked, never random.

The ``lpips`` package fetches its AlexNet backbone through torchvision at run time and loads
weights with ``strict=False``; neither is acceptable here (a failed or partial download, or a
backbone left random, would silently report meaningless numbers). So the network is built
with ``pnet_rand=True`` and every weight is loaded with ``strict=True`` from a file found, in
order, at:

1. an explicit path (``--lpips-weights PATH``),
2. the ``FORESIGHT_LPIPS_WEIGHTS`` environment variable,
3. torch's hub cache: ``<torch hub dir>/checkpoints/alexnet-owt-7be5be79.pth``,
4. a download of torchvision's ``alexnet-owt-7be5be79.pth`` into that cache, sha256-checked
   (``torch.hub.download_url_to_file``: a temporary file, renamed once complete and checked),
   unless ``FORESIGHT_OFFLINE`` is set; a machine without internet gets the honest
   ``LpipsUnavailable`` saying where to put the file.

Accepted files: torchvision's ``alexnet-owt-7be5be79.pth`` (its sha256 is checked against the
prefix in its name, since a cached file is never hash-checked) combined with the linear
calibration layers that ship inside the ``lpips`` package, or a compact LPIPS ``state_dict``
(~10 MB) written by :func:`export_compact` (``foresight lpips-export``).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from foresight.errors import ForesightError
from foresight.io import atomic_path

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_SHA256_PREFIX = "7be5be79"
ENV_VAR = "FORESIGHT_LPIPS_WEIGHTS"
#: torchvision's ``AlexNet_Weights.IMAGENET1K_V1.url`` (a test keeps the two equal).
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
#: Set (to anything but ``""`` or ``0``) to never download weights.
OFFLINE_VAR = "FORESIGHT_OFFLINE"
#: Seconds without a byte before a download counts as failed (a firewalled machine).
DOWNLOAD_TIMEOUT = 20.0
#: AlexNet ``features`` layer index -> LPIPS slice, as ``lpips.pretrained_networks.alexnet``.
_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}


class LpipsUnavailable(ForesightError):
    """No usable LPIPS weights; the message says which file and how to provide it."""


def hub_cache_path() -> Path:
    """Where torchvision would have cached the AlexNet weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def find_weights(explicit: str | Path | None = None) -> Path:
    """The first weights file in the search order (module docstring).

    Raises:
        LpipsUnavailable: None found, or an explicitly named file is missing.
    """
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LpipsUnavailable(f"LPIPS weights {path} (--lpips-weights) do not exist")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env)
        if not path.is_file():
            raise LpipsUnavailable(f"LPIPS weights {path} (from ${ENV_VAR}) do not exist")
        return path
    cached = hub_cache_path()
    if cached.is_file():
        return cached
    where = (
        f"put torchvision's {ALEXNET_FILE} at {cached}, or pass --lpips-weights PATH (or set "
        f"{ENV_VAR}) to it or to a file from 'foresight lpips-export'"
    )
    if offline():
        raise LpipsUnavailable(f"no LPIPS weights and ${OFFLINE_VAR} is set: {where}")
    return fetch_alexnet(cached, where)


def offline() -> bool:
    """Whether ``FORESIGHT_OFFLINE`` forbids downloads."""
    return os.environ.get(OFFLINE_VAR, "") not in ("", "0")


@contextmanager
def _socket_timeout(seconds: float):
    # torch.hub's download takes no timeout; without one a firewalled connection hangs for
    # minutes. The default is restored at once, so nothing else sees it.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def fetch_alexnet(dst: Path, where: str = "") -> Path:
    """Download torchvision's AlexNet weights to ``dst``, sha256-checked, and say so.

    The file is written beside ``dst`` and renamed once complete and checked, so a failed
    download leaves nothing behind.

    Args:
        dst: Where the file goes (normally :func:`hub_cache_path`).
        where: What the user can do instead, for the error message.

    Raises:
        LpipsUnavailable: The download failed (no network, a wrong hash): one line saying
            why and what to do.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            torch.hub.download_url_to_file(
                ALEXNET_URL, str(dst), hash_prefix=ALEXNET_SHA256_PREFIX, progress=False
            )
    except Exception as err:  # urllib, socket and hash errors alike: the network's problem
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LpipsUnavailable(
            f"no LPIPS weights, and downloading {ALEXNET_URL} failed ({reason}): "
            f"{where or 'see foresight.perceptual'}"
        ) from err
    print(f"LPIPS: downloaded {ALEXNET_FILE} to {dst} (sha256 checked)", file=sys.stderr)
    return dst


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _package_linear_layers() -> dict[str, torch.Tensor]:
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    if not path.is_file():
        raise LpipsUnavailable(
            f"the lpips package lacks its calibration file {path}; reinstall lpips"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def lpips_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A complete LPIPS-alex ``state_dict`` from either accepted file kind.

    Raises:
        LpipsUnavailable: Unreadable file, wrong hash, or neither kind of file.
    """
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise LpipsUnavailable(
            f"LPIPS weights {path} are unreadable ({type(err).__name__})"
        ) from err
    if not isinstance(raw, dict):
        raise LpipsUnavailable(f"LPIPS weights {path} hold no state_dict")
    if "features.0.weight" in raw:
        digest = _sha256(path)
        if not digest.startswith(ALEXNET_SHA256_PREFIX):
            raise LpipsUnavailable(
                f"{path} looks like torchvision AlexNet weights but its sha256 ({digest[:8]}...) "
                f"does not match {ALEXNET_FILE}; re-download that exact file"
            )
        state = {
            f"net.slice{_SLICES[int(k.split('.')[1])]}.{k.split('.', 1)[1]}": v
            for k, v in raw.items()
            if k.startswith("features.")
        }
        linear = _package_linear_layers()
        state.update(linear)
        # LPIPS also lists its linear layers as lins.<i>, the same modules under a second name.
        state.update({f"lins.{k[3]}.{k.split('.', 1)[1]}": v for k, v in linear.items()})
        return state
    if "net.slice1.0.weight" in raw and "lin0.model.1.weight" in raw:
        return raw
    raise LpipsUnavailable(
        f"{path} is neither torchvision's {ALEXNET_FILE} nor a compact LPIPS file "
        "from 'foresight lpips-export'"
    )


def build_lpips(
    weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """An LPIPS-alex network with every weight loaded strictly (weights found as above).

    Args:
        weights: Explicit weights path (else the search order of the module docstring).
        device: Where the network runs.

    Raises:
        LpipsUnavailable: No usable weights (one line: which file, how to provide it).
    """
    import lpips

    path = find_weights(weights)
    state = lpips_state_dict(path)
    # pretrained=False and pnet_rand=True: build the architecture only, load nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation
        model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    ours = model.state_dict()
    # The scaling layer's constants are buffers of the architecture, not learned weights.
    for key in ("scaling_layer.shift", "scaling_layer.scale"):
        state.setdefault(key, ours[key])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise LpipsUnavailable(
            f"LPIPS weights {path} do not fit LPIPS-alex ({str(err).splitlines()[0]})"
        ) from err
    return model.eval().to(device).requires_grad_(False)


def lpips_distance(
    model: torch.nn.Module, pred: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """LPIPS distance of each frame pair.

    Args:
        model: From :func:`build_lpips`.
        pred: ``(..., 3, H, W)`` in [0, 1].
        target: Same shape.

    Returns:
        ``(...)`` distances (lower is more similar).
    """
    lead = pred.shape[:-3]
    a = pred.reshape(-1, *pred.shape[-3:])
    b = target.reshape(-1, *target.shape[-3:])
    with torch.no_grad():
        d = model(a, b, normalize=True)  # (M, 1, 1, 1); normalize maps [0, 1] to [-1, 1]
    return d.reshape(lead)


def export_compact(source: str | Path, out: str | Path) -> Path:
    """Write the compact LPIPS file (every weight, ~10 MB) from any accepted weights file."""
    state = build_lpips(source).state_dict()
    out = Path(out)
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save(state, tmp)
    return out


def lpips_metric(weights: str | Path | None = None, device: str | torch.device = "cpu"):
    """LPIPS as a :class:`foresight.metrics.FrameMetric` (lower is better).

    Raises:
        LpipsUnavailable: No usable weights.
    """
    from foresight.metrics import FrameMetric

    net = build_lpips(weights, device)
    return FrameMetric("lpips", lambda pred, target: lpips_distance(net, pred, target), False)

"""Choose MuJoCo's headless OpenGL backend before ``mujoco`` is first imported.

MuJoCo reads ``MUJOCO_GL`` once, at import, so this module must run first (``foresight.envs``
calls :func:`select_gl_backend` on import, before anything imports ``mujoco``). A value the
user already set is kept. Heavier preparation waits until MuJoCo is first needed
(:func:`load_triton_first`).
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import sys

from foresight.errors import RenderError

_PACKAGES = {
    "egl": "libegl1 libegl-mesa0 libopengl0 libgl1-mesa-dri",
    "osmesa": "libosmesa6",
}


def _loadable(*names: str) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            found = ctypes.util.find_library(name.removeprefix("lib").split(".so")[0])
            if found:
                try:
                    ctypes.CDLL(found)
                    return True
                except OSError:
                    pass
    return False


def select_gl_backend() -> str:
    """Set ``MUJOCO_GL`` (egl, else osmesa) unless already set; return the backend in use.

    Also sets ``LP_NUM_THREADS=0`` when unset: Mesa's llvmpipe software rasterizer otherwise
    starts a thread pool per context, which for 64x64 frames costs more than it saves.

    Raises:
        RenderError: Neither EGL nor OSMesa can be loaded; the message names the packages.
    """
    os.environ.setdefault("LP_NUM_THREADS", "0")
    backend = os.environ.get("MUJOCO_GL")
    if backend:
        return backend
    if "mujoco" in sys.modules:
        # Too late to choose: mujoco already picked its backend at import.
        return "default"
    if _loadable("libEGL.so.1", "libEGL.so") and _loadable("libOpenGL.so.0", "libGL.so.1"):
        backend = "egl"
    elif _loadable("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"):
        backend = "osmesa"
    else:
        raise RenderError(render_help("no EGL or OSMesa library found"))
    os.environ["MUJOCO_GL"] = backend
    os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


def load_triton_first() -> None:
    """Import triton, if installed; call it before ``import mujoco`` (done in ``sim.py``).

    triton (bundled with CUDA builds of torch, and imported by ``torch.optim`` on first use)
    carries its own LLVM, and loading it into a process where Mesa's LLVM is already loaded
    globally segfaults. Mesa's LLVM arrives globally with the first EGL context, or already
    with ``import mujoco`` under OSMesa (PyOpenGL loads libOSMesa with ``RTLD_GLOBAL``);
    triton loaded before either, the two coexist. It waits for MuJoCo rather than running at
    ``import foresight.envs``, which stays light. Measured: ~0.15 s, once per process.
    """
    if "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def render_help(reason: str) -> str:
    """One line explaining how to get headless rendering working."""
    return (
        f"headless rendering unavailable ({reason}); install EGL "
        f"(apt-get install {_PACKAGES['egl']}) or OSMesa (apt-get install {_PACKAGES['osmesa']}), "
        "or set MUJOCO_GL=egl|osmesa before starting Python"
    )

"""The ``foresight`` command line: one entry point, one module per verb."""

from __future__ import annotations

import _thread
import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from foresight import __version__
from foresight.errors import ForesightError

#: Every verb's module under ``foresight.commands``, in the order ``foresight --help`` lists them.
VERB_MODULES = (
    "quickstart",
    "collect",
    "data",
    "train",
    "plan",
    "evaluate",
    "report",
    "lpips_export",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="foresight",
        description="Visual foresight: collect pushing data, train video models, plan, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"foresight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in VERB_MODULES:
        importlib.import_module(f"foresight.commands.{name}").add_parser(sub)
    return parser


def _os_error(err: OSError) -> str:
    """One line for an operating-system error the checks before it did not foresee."""
    where = f" {err.filename}" if err.filename else ""
    return f"cannot access{where}: {err.strerror or err}; check the path and its permissions"


def _redeliver_interrupts(previous: Any) -> Any:
    """An unraisable-exception hook that hands a swallowed Ctrl-C back to the main thread.

    A Ctrl-C that lands inside a callback the interpreter runs (importlib's module-lock
    weakref callback, while a lazy import is in flight) cannot propagate: Python prints
    "Exception ignored in ..." with a traceback and carries on as if no key was pressed.
    Raising it again in the main thread ends the run with the usual one line instead.
    """

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # From another thread, once this callback has returned: raised here, it would be
            # swallowed again.
            threading.Timer(0.01, _thread.interrupt_main).start()
            return
        previous(unraisable)

    return hook


#: Packages whose Python code C calls back into, so that an exception raised there comes
#: out as another one: PyOpenGL converts each GL call's arguments in Python from inside
#: ctypes, which turns a KeyboardInterrupt raised there into ``ctypes.ArgumentError``.
_WRAPPING_PACKAGES = ("OpenGL",)


def _must_defer(frame: FrameType | None) -> bool:
    """Whether a KeyboardInterrupt raised in ``frame`` could come out as something else.

    True inside a module import (an importlib frame below it) and inside PyOpenGL's Python
    code (a module of :data:`_WRAPPING_PACKAGES` on the stack).
    """
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        module = frame.f_globals.get("__name__") or ""
        if module.partition(".")[0] in _WRAPPING_PACKAGES:
            return True
        frame = frame.f_back
    return False


def _interrupt_after_imports(signum: int, frame: FrameType | None) -> None:
    """A SIGINT handler that raises KeyboardInterrupt, but never inside an import or a GL call.

    Raised while an extension module initialises (torch and mujoco run Python code from
    C++ through pybind11 as they load), the exception can cross a C++ frame that cannot
    pass it on, and the process aborts with "terminate called after throwing ...
    error_already_set" (seen once in CI); raised while PyOpenGL converts a call's arguments
    (rendering with EGL), it comes out as ``ctypes.ArgumentError``, a traceback (seen once
    in CI). There the interrupt is delivered again shortly, until it lands in ordinary
    Python code, where it ends the run with one line.
    """
    if _must_defer(frame):
        threading.Timer(0.05, _thread.interrupt_main).start()
        return
    raise KeyboardInterrupt


def _terminate_like_interrupt(pid: int) -> Any:
    """A SIGTERM handler that ends the run as Ctrl-C does (a scheduler's stop, ``kill PID``).

    A cluster's scheduler stops a job with SIGTERM, and a shell's background job ignores
    SIGINT, so without this such a run ends without its line saying how to resume. A process
    forked from this one (a DataLoader worker) inherits the handler; it dies as it would
    have, so its parent sees it go.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        _interrupt_after_imports(signum, frame)

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, Ctrl-C (or SIGTERM) exits 130.

    The verbs are imported inside the handlers, so a Ctrl-C while numpy or torch are still
    loading ends with the same one line as one during the work.
    """
    previous = sys.unraisablehook
    sys.unraisablehook = _redeliver_interrupts(previous)
    # A process started with SIGINT ignored (a shell's background job) keeps ignoring it.
    handler = signal.getsignal(signal.SIGINT)
    own_handler = handler is signal.default_int_handler
    if own_handler:
        signal.signal(signal.SIGINT, _interrupt_after_imports)
    # Only where SIGTERM still does its default (not when a host program set its own).
    term = signal.getsignal(signal.SIGTERM)
    own_term = term is signal.SIG_DFL
    if own_term:
        signal.signal(signal.SIGTERM, _terminate_like_interrupt(os.getpid()))
    try:
        return _run(argv)
    finally:
        sys.unraisablehook = previous
        if own_handler:
            signal.signal(signal.SIGINT, handler)
        if own_term:
            signal.signal(signal.SIGTERM, term)


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except ForesightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

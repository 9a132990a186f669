"""The ``foresight`` command line: one entry point, one module per verb."""

from __future__ import annotations

import _thread
import argparse
import sys
import threading
from collections.abc import Sequence
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, Ctrl-C exits 130.

    The verbs are imported inside the handlers, so a Ctrl-C while numpy or torch are still
    loading ends with the same one line as one during the work.
    """
    previous = sys.unraisablehook
    sys.unraisablehook = _redeliver_interrupts(previous)
    try:
        return _run(argv)
    finally:
        sys.unraisablehook = previous


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

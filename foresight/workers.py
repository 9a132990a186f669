"""What every worker process of a pool (collection, planning) does first."""

from __future__ import annotations

import signal


def ignore_interrupts() -> None:
    """Leave Ctrl-C to the parent process.

    The terminal sends SIGINT to the whole process group; a pool worker that handled it would
    print its own ``KeyboardInterrupt`` traceback. The parent catches it, ends the pool and
    prints the one line that says how to resume.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

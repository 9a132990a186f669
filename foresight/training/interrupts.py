"""Ctrl-C and SIGTERM held until the training step in flight has finished.

An interrupt lands almost always inside a step (the forward and backward passes are most of
a step's time), where the weights, the optimizer and the random-number generators match no
step, so the trainer could only keep its last periodic checkpoint. Held until the step's
end, the interrupt finds them matching the step just taken: the trainer saves that step and
``--resume`` loses nothing (a scheduler's SIGTERM included). A second interrupt while one is
held is not held: pressing Ctrl-C twice stops at once, as before.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

#: Signals held: Ctrl-C, and a scheduler's stop where a handler turns it into an interrupt.
HELD = (signal.SIGINT, signal.SIGTERM)


class StepBoundary:
    """Hold interrupts while :attr:`holding`; :meth:`check` raises one held at a boundary.

    Only signals whose handler is a Python function (one that raises KeyboardInterrupt:
    Python's own for SIGINT, foresight's CLI handlers for both) are taken over, and only in
    the main thread (where signal handlers live); elsewhere nothing is held. A process forked
    while it is in force (a DataLoader worker) gets the handler it replaced.
    """

    def __init__(self) -> None:
        self.holding = False
        self.requested: int | None = None
        self._replaced: dict[int, Any] = {}
        self._pid = os.getpid()

    def __enter__(self) -> StepBoundary:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in HELD:
            previous = signal.getsignal(sig)
            if callable(previous):
                self._replaced[sig] = previous
                signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._replaced.items():
            signal.signal(sig, previous)
        self._replaced.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        previous = self._replaced.get(signum)
        if os.getpid() != self._pid or not self.holding or self.requested is not None:
            if previous is None:
                raise KeyboardInterrupt
            previous(signum, frame)
            return
        self.requested = signum

    def check(self) -> None:
        """Stop holding, and deliver the interrupt held (to the handler it was meant for)."""
        self.holding = False
        signum, self.requested = self.requested, None
        if signum is not None:
            self._replaced[signum](signum, None)


def interrupted_line(step: int | None, last_saved: int | None, resumed: bool) -> str:
    """The line an interrupted training run prints: where it stood, and how to go on.

    Args:
        step: Steps taken (None: interrupted before the first).
        last_saved: The step of the checkpoint on disk (None: none yet).
        resumed: Whether this run resumed an earlier one.
    """
    if step is None:
        return "interrupted before the first training step: run the same command again" + (
            " to resume" if resumed else ""
        )
    if last_saved is None:
        return (
            f"interrupted at step {step}, before the first checkpoint: run the same "
            "command again to start over"
        )
    return (
        f"interrupted at step {step}: add --resume to the same command to continue "
        f"from the checkpoint at step {last_saved}"
    )

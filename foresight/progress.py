"""Rich progress bars shared by every long job (collection, training, planning)."""

from __future__ import annotations

import sys

from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Progress(Progress):
    """A progress display that stays silent until its first task.

    When an input check fails before any work, nothing is drawn, so the one-line error is
    all the user sees (rich would draw the empty display and, off a terminal, end it with a
    blank line).
    """

    def get_renderable(self) -> RenderableType:
        return super().get_renderable() if self.tasks else Group()

    def stop(self) -> None:
        if self.tasks:
            super().stop()
        elif not self.disable:
            self.live.stop()


def make_progress(console: Console | None = None, *extra_columns: TextColumn) -> Progress:
    """A progress bar with count, rate-derived ETA and any extra text columns.

    Output goes to stderr, so stdout stays clean for tables and results; when stderr is not
    a terminal (CI, logs) rich prints nothing live and the final state only.
    """
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(file=sys.stderr),
        transient=False,
    )

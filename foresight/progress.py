"""Rich progress bars shared by every long job (collection, training, planning)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress(console: Console | None = None, *extra_columns: TextColumn) -> Progress:
    """A progress bar with count, rate-derived ETA and any extra text columns.

    Output goes to stderr, so stdout stays clean for tables and results; when stderr is not
    a terminal (CI, logs) rich prints nothing live and the final state only.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(file=sys.stderr),
        transient=False,
    )

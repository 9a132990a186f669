"""Files a run writes: atomic writes, checked outputs, and one writer per output.

Nothing already on disk is replaced by a half-written file (:func:`atomic_path`), an output
that cannot be written is a one-line error before any work (:func:`check_out_dir`,
:func:`check_out_file`), and a second process writing the same output is refused
(:func:`output_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from foresight.errors import ForesightError

#: Suffix of every temporary file :func:`atomic_path` makes (``.<name>.<random><suffix>.tmp``).
TMP_SUFFIX = ".tmp"


def _umask() -> int:
    # There is no way to read the umask without setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the same directory, so the final ``os.replace`` is atomic:
    readers see either the old file or the complete new one, never a partial write. On error
    the temporary file is removed and ``path`` is left untouched. The file gets the mode an
    ordinary ``open`` would give it (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.

    Args:
        path: Final destination.
        suffix: Suffix for the temporary name (some writers infer the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix + TMP_SUFFIX, dir=path.parent
    )
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if path.is_dir():
            raise ForesightError(f"{path} is a directory; choose a file name for it")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_stale_temps(folder: Path, name: str = "*", min_age_s: float = 0.0) -> int:
    """Delete temporary files that :func:`atomic_path` left behind when its process was killed.

    Only files of our own name pattern (``.<name>.*.tmp``) are touched. Call it only where no
    other process can be writing (while holding :func:`output_lock`), or with a ``min_age_s``
    no live write lasts.

    Returns:
        The number of files removed.
    """
    removed = 0
    if not folder.is_dir():
        return 0
    now = time.time()
    for p in folder.glob(f".{name}.*{TMP_SUFFIX}"):
        try:
            if p.is_file() and not p.is_symlink() and now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _remove_stale_output_temps(path: Path) -> None:
    """Temporary files a killed writer of ``path`` left: in it and its direct sub-folders."""
    if path.is_dir():
        remove_stale_temps(path)
        for sub in path.iterdir():
            if sub.is_dir() and not sub.is_symlink():
                remove_stale_temps(sub)
    else:
        remove_stale_temps(path.parent, path.name)


def _writable_parent(path: Path) -> Path:
    """The closest existing ancestor of ``path``; an error when it cannot take new entries."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ForesightError(f"cannot create {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ForesightError(f"cannot create {path}: no write permission in {parent}")
    return parent


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """Check that ``path`` can be (or already is) a folder this process may write into.

    Raises:
        ForesightError: ``path`` is a file, or it or the folder that would hold it is not
            writable.
    """
    if path.exists():
        if not path.is_dir():
            raise ForesightError(f"{flag} {path} is a file, not a folder; choose another {flag}")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ForesightError(f"{flag} {path}: no write permission; choose another {flag}")
        return
    _writable_parent(path)


def check_out_file(path: Path, flag: str = "--out") -> None:
    """Check that ``path`` can be written as a file (it may exist; callers decide on that).

    Raises:
        ForesightError: ``path`` is a folder, or the folder that holds it is not writable.
    """
    if path.is_dir():
        raise ForesightError(f"{flag} {path} is a folder, not a file; choose a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise ForesightError(f"{flag} {path}: no write permission; choose another {flag}")
    _writable_parent(path)


def lock_path(path: Path) -> Path:
    """The lock file of output ``path`` (beside it, so nothing is created inside it)."""
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def output_lock(path: Path, what: str = "foresight") -> Iterator[None]:
    """Hold the lock of output ``path`` (a file or folder) for the duration of the block.

    A second process asking for the same output gets a one-line error naming the holder's
    PID. The lock is an ``flock`` on a file beside ``path``: the kernel releases it when its
    holder exits, however it exits, so a killed run never leaves a stale lock. Under
    ``torchrun`` only rank 0 writes files, so only rank 0 locks.

    Args:
        path: The output (``--out``).
        what: The verb, for the holder's entry in the lock file.

    Raises:
        ForesightError: Another process holds the lock.
    """
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    path = Path(path)
    lock = lock_path(path)
    _writable_parent(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ForesightError(
                f"{path} is already being written by {holder}; wait for it to finish or "
                "choose another --out"
            ) from None
        # The file may have been unlinked by its last holder between our open and our lock:
        # then the lock guards nothing; open the path afresh.
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} ({what})\n".encode(), 0)
        _remove_stale_output_temps(path)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)

"""The harness of the bad-input tables: one verb call, judged as a user would judge it.

A :class:`Case` names a CLI call and how to prepare the files it meets. :func:`check_case`
runs it in-process through :func:`foresight.cli.main` and asserts the contract every verb
keeps for a user's mistake: exit status 2, exactly one line of output on stderr, starting with
``error:`` and naming what is wrong, no traceback, and every file that was on disk before
is byte for byte the same afterwards (none removed, none changed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from foresight.cli import main

#: The shared inputs a case may use: ``tmp`` (its own folder) plus the fixtures named in
#: ``tests/test_bad_input*.py`` (``h5``: a small valid dataset, ``ckpt``: a trained
#: checkpoint, ...).
Inputs = dict[str, Path]


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: Test id (``verb-what``).
        argv: The CLI words; ``{name}`` is replaced by ``str(inputs[name])``.
        expect: A substring the error line must contain (what is wrong, in the user's words).
        setup: Prepares files in ``inputs['tmp']`` before the call (not counted as output).
    """

    id: str
    argv: tuple[str, ...]
    expect: str
    setup: Callable[[Inputs], None] | None = field(default=None, compare=False)


Setup = Callable[[Inputs], None]


def write(name: str, content: str | bytes | dict) -> Setup:
    """Setup: a file ``name`` under ``tmp`` (a dict is written as JSON)."""

    def setup(inputs: Inputs) -> None:
        p = inputs["tmp"] / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            p.write_text(json.dumps(content))
        else:
            p.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def mkdir(name: str) -> Setup:
    """Setup: a folder ``name`` under ``tmp``."""
    return lambda inputs: (inputs["tmp"] / name).mkdir(parents=True)


def then(*setups: Setup) -> Setup:
    """Setup: each of ``setups`` in turn."""

    def setup(inputs: Inputs) -> None:
        for s in setups:
            s(inputs)

    return setup


def snapshot(root: Path) -> dict[Path, str]:
    """sha256 of every file under ``root`` (symlinks as their target text)."""
    out: dict[Path, str] = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[p] = "link:" + str(p.readlink())
        elif p.is_file():
            out[p] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def check_case(case: Case, inputs: Inputs, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``case`` and assert the bad-input contract; returns the error line."""
    if case.setup is not None:
        case.setup(inputs)
    roots = sorted({p if p.is_dir() else p.parent for p in inputs.values()})
    before = {root: snapshot(root) for root in roots}
    argv = [word.format(**{k: str(v) for k, v in inputs.items()}) for word in case.argv]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, f"exit {code} for {argv}: {err}"
    assert "Traceback" not in captured.err + captured.out, err
    lines = err.splitlines()
    error_lines = [line for line in lines if "error:" in line]
    assert len(error_lines) == 1, f"expected one error line for {argv}, got:\n{err}"
    if not lines[0].startswith("usage:"):  # argparse prints its usage line first
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.expect in error_lines[0], f"{case.expect!r} not in {error_lines[0]!r}"
    for root, files in before.items():
        after = snapshot(root)
        changed = [str(p) for p, h in files.items() if after.get(p) != h]
        assert not changed, f"{argv} changed or removed files: {changed}"
    return error_lines[0]

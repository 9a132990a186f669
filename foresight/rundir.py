"""Run folders that resume: the one settings check of ``collect``, ``plan`` and ``train``.

A long run writes into a folder that records what it was asked to do (``settings.json``).
Run again with the same settings, it continues from what the folder holds; asked for other
settings, it is refused with the names of the settings that differ, unless ``--overwrite``,
which clears what the earlier run wrote and starts afresh. A folder holding the same
settings resumes even with ``--overwrite``: an interrupted ``--overwrite`` run, run again,
continues instead of starting over (the result is the same: episodes and planning cases
depend only on the settings and their seeds).

``foresight collect`` keeps its episodes in ``<out>.parts/`` and ``foresight plan`` its
records in ``--out`` (:class:`RunDir`); ``foresight train`` keeps its settings in its
checkpoint, next to the weights they describe, and compares them with
:func:`settings_differences` too. Writes are atomic and one process writes an output at a
time (:mod:`foresight.io`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foresight.errors import ForesightError
from foresight.io import atomic_write_text, remove_stale_temps

#: The file in a run folder that records its settings.
SETTINGS = "settings.json"


def settings_differences(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """Dotted names of the settings whose values differ, nested dicts followed (``env.image_size``).

    Args:
        old: Settings as stored (plain JSON-like values).
        new: Settings as asked for now.
        prefix: Prepended to every name (for the recursion).

    Returns:
        The names, sorted within each level.
    """
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(settings_differences(a, b, f"{name}."))
        elif a != b:
            out.append(name)
    return out


def name_differences(names: list[str], limit: int = 6) -> str:
    """``a, b, c`` (and ``and N more`` past ``limit``), for a one-line message."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _fill_legacy(
    stored: dict[str, Any], asked: Mapping[str, Any], path: list[str], value: Any
) -> None:
    """Set ``stored[path]`` to ``value`` where absent, its block exists and ``asked`` has it."""
    *blocks, leaf = path
    for key in blocks:
        stored, asked = stored.get(key), asked.get(key)
        if not isinstance(stored, dict) or not isinstance(asked, Mapping):
            return
    if leaf in asked and leaf not in stored:
        stored[leaf] = copy.deepcopy(value)


@dataclass(frozen=True)
class RunDir:
    """A folder a resumable run writes, with the settings it was made with.

    Attributes:
        path: The folder.
        kind: What it holds, for messages (``a 'foresight plan' run``).
        owned: Glob patterns of the files the run writes besides ``settings.json``: their
            presence without ``settings.json`` means the folder is someone else's, and a
            fresh start removes them (and nothing else).
        legacy: Settings added since the first runs, with the value every run made before
            them had: a stored file without such a key reads as if it had this value, where
            the settings asked for have that key too (a field of one cost's config is not
            added to a run of another cost). A dotted name (``planner.to_episode_end``)
            names a key inside a nested block.
        error: The error class to raise (a :class:`~foresight.errors.ForesightError`).
        ignored: Settings that no longer define the run's results (files written before may
            hold them): dropped from the stored settings before they are compared.
    """

    path: Path
    kind: str
    owned: tuple[str, ...] = ()
    legacy: Mapping[str, Any] = field(default_factory=dict)
    error: type[ForesightError] = ForesightError
    ignored: tuple[str, ...] = ()

    @property
    def settings_path(self) -> Path:
        """Where the settings are recorded."""
        return self.path / SETTINGS

    def stored_settings(self, asked: Mapping[str, Any]) -> dict[str, Any] | None:
        """The recorded settings, legacy filled in, ignored dropped (None: absent or unreadable).

        Args:
            asked: The settings of the run being asked for; legacy names are filled in only
                where these have the key.
        """
        try:
            stored = json.loads(self.settings_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(stored, dict):
            return None
        for name, value in self.legacy.items():
            _fill_legacy(stored, asked, name.split("."), value)
        return {k: v for k, v in stored.items() if k not in self.ignored}

    def _owned_files(self) -> list[Path]:
        return [p for pattern in self.owned for p in self.path.glob(pattern) if p.is_file()]

    def open(self, settings: dict[str, Any], overwrite: bool) -> bool:
        """Get the folder ready for a run of ``settings``.

        Args:
            settings: Plain JSON-able values that define the run's results.
            overwrite: Replace a run made with other settings (``--overwrite``).

        Returns:
            True when the folder holds a run of these settings, to be continued; False when
            a new run starts in it (the folder exists, holds ``settings``, and none of the
            earlier run's files).

        Raises:
            ForesightError: (``error``) the path is a file; or, without ``overwrite``, the
                folder holds a run with other settings, or files of a run but no settings.
        """
        if self.path.exists() and not self.path.is_dir():
            raise self.error(f"{self.path} is a file where {self.kind} would be kept; move it away")
        settings = json.loads(json.dumps(settings))  # as it reads back from the file
        stored = self.stored_settings(settings)
        if stored == settings:
            # Killed writers leave temporary files; callers hold the output's lock.
            remove_stale_temps(self.path)
            return True
        if not overwrite:
            if stored is not None:
                names = name_differences(settings_differences(stored, settings))
                raise self.error(
                    f"{self.path} holds {self.kind} with other settings ({names} differ); "
                    "run it with its settings, or pass --overwrite to replace it"
                )
            if self.settings_path.exists():
                raise self.error(
                    f"{self.settings_path} is damaged, so {self.path} cannot resume; "
                    "pass --overwrite to replace it"
                )
            found = self._owned_files()
            if found:
                raise self.error(
                    f"{self.path} holds {found[0].name} but no {SETTINGS} (not {self.kind}); "
                    "choose another --out, or pass --overwrite to replace it"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        # The old settings go first and the new ones last: a fresh start interrupted in
        # between leaves files without settings (refused without --overwrite), never one
        # run's settings over another run's files.
        self.settings_path.unlink(missing_ok=True)
        for p in self._owned_files():
            p.unlink()
        remove_stale_temps(self.path)
        atomic_write_text(self.settings_path, json.dumps(settings, indent=1, sort_keys=True))
        return False

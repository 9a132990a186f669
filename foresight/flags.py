"""Command-line flags generated from a dataclass: one declaration per option, for every verb.

A verb declares its options as a frozen dataclass whose fields carry their help text in
``metadata`` (:func:`option`); :func:`add_flags` turns each field into a flag (``--field-name``,
typed by the field's annotation, required when the field has no default) and
:func:`from_args` builds the dataclass back from the parsed arguments, so a verb's options are
one typed object with one default each. A true boolean becomes ``--no-<name>``; a field whose
``flag`` has no leading dash is a positional argument (``overrides``: ``KEY=VALUE`` words).

This module imports no torch, so the CLI can build its parser cheaply.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def option(help: str, flag: str | None = None, **argparse_kw: Any) -> dict[str, Any]:
    """A field's metadata: its help text, a flag other than ``--field-name``, argparse extras.

    Args:
        help: The flag's help text.
        flag: The flag's name (``--no-control``), or a positional's name without dashes;
            None: ``--field-name``.
        **argparse_kw: More keywords for ``add_argument`` (``metavar``, ``nargs``).
    """
    meta: dict[str, Any] = {"help": help, "argparse": argparse_kw}
    if flag is not None:
        meta["flag"] = flag
    return meta


def overrides_field(config: str, example: str, name: str = "overrides") -> Any:
    """A verb's ``overrides`` field: positional ``KEY=VALUE`` words over its ``config``.

    Args:
        config: What they override, in words (``the env config``).
        example: Two overrides, for the help text.
        name: The field's name (a positional's value lands under its name).
    """
    help = f"override {config}'s values, checked like its YAML keys (e.g. {example})"
    meta = option(help, flag=name, nargs="*", metavar="KEY=VALUE")
    return dataclasses.field(default=(), metadata=meta)


def scalar_type(tp: Any) -> type:
    """The type a flag's text is parsed as: ``int | None`` -> ``int``, ``tuple[str]`` -> ``str``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        tp = typing.get_args(tp)[0]
    return tp


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field of the dataclass ``cls`` that has :func:`option` metadata."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        name = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kw: dict[str, Any] = {"help": f.metadata["help"], **f.metadata.get("argparse", {})}
        if not name.startswith("-"):  # a positional: its dest is its name
            parser.add_argument(name, type=scalar_type(hints[f.name]), **kw)
            continue
        kw["dest"] = f.name
        if hints[f.name] is bool:
            parser.add_argument(name, action="store_false" if f.default else "store_true", **kw)
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = f.default
        parser.add_argument(name, type=scalar_type(hints[f.name]), **kw)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The dataclass ``cls`` from arguments parsed by :func:`add_flags`' flags."""
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if "help" in f.metadata:
            value = getattr(args, f.name)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)

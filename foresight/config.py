"""Typed dataclass configs loaded from YAML.

One loader for every config in the project (env, suite, model, planner): YAML holds plain
values, a dataclass holds their types and defaults. An unknown key is an error that names the
key and the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from foresight.errors import ConfigError

T = TypeVar("T")


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type ``tp``, recursing into dataclasses."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return _convert(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(
                _convert(a, v, f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "2e-3" (no dot) as a string; accept it as the number it means.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            # No setting in foresight means anything at NaN or infinity.
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"unknown key '{key}' in {where} (valid keys: {', '.join(sorted(names))})"
            )
    kwargs = {k: _convert(hints[k], v, f"{where}: '{k}'") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err
    except ConfigError as err:
        # A dataclass's own check (__post_init__) names the key; add the file it came from.
        if str(err).startswith(where.split(": ")[0]):
            raise
        raise ConfigError(f"{where}: {err}") from err


def from_dict(cls: type[T], data: dict[str, Any] | None, source: str = "config") -> T:
    """Build the dataclass ``cls`` from a plain dict, rejecting unknown keys.

    Args:
        cls: A dataclass type.
        data: Plain values (as read from YAML, or stored in a checkpoint).
        source: Where the values came from, for error messages (usually a file path).
    """
    return _from_dict(cls, dict(data or {}), source)


#: The key by which a preset names the preset (or YAML file) it inherits from.
BASE_KEY = "base"


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: nested mappings merge, anything else is replaced.

    A nested mapping that names another class (its ``name`` differs from the base's, e.g. a
    planner's ``cost: {name: pixel}`` over ``object``) replaces the base's whole block, whose
    keys would not fit.
    """
    out = dict(base)
    for key, value in child.items():
        old = out.get(key)
        if (
            isinstance(value, dict)
            and isinstance(old, dict)
            and value.get("name", old.get("name")) == old.get("name")
        ):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path, kind: str | None = None, _seen: tuple[Path, ...] = ()) -> dict:
    """The mapping a YAML config file holds, with what it inherits through ``base:``.

    ``base: vrnn`` names a preset of the same ``kind`` (or a YAML path, read relative to this
    file); the file's own keys are merged over the base's (see :func:`_merge`), so a preset
    states only how it differs. The one reader of config files: every loader goes through it.

    Args:
        path: The YAML file.
        kind: The configs sub-folder presets are looked up in (``model``, ``planner``, ...);
            None: ``base:`` must be a path.

    Raises:
        ConfigError: Missing, not UTF-8, not YAML, not a mapping, or a ``base:`` that does not
            resolve or inherits from itself.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values")
    if BASE_KEY not in data:
        return data
    base = data.pop(BASE_KEY)
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: '{BASE_KEY}' must name a preset or a YAML file, got {base!r}")
    beside = path.parent / base
    if base.endswith((".yaml", ".yml")) and beside.is_file():
        base_path = beside
    elif kind is not None:
        base_path = resolve_config(base, kind)
    else:
        raise ConfigError(f"{path}: '{BASE_KEY}: {base}' must be a YAML file next to it")
    seen = (*_seen, path.resolve())
    if base_path.resolve() in seen:
        raise ConfigError(f"{path}: '{BASE_KEY}: {base}' inherits from itself")
    return _merge(read_yaml(base_path, kind, seen), data)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Dotted command-line overrides (``train.lr=3e-4 channels=8``) as a nested mapping.

    Each value is read as YAML (``3e-4`` a number, ``[1, 4]`` a list, ``true`` a boolean,
    ``null`` None); the keys are checked later against the config's dataclasses, like a
    file's keys.

    Raises:
        ConfigError: An item is not ``key=value`` or its value is not YAML.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ConfigError(f"override '{item}' must be KEY=VALUE (e.g. train.lr=3e-4)")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"override '{item}': the value is not YAML ({err})") from err
        if isinstance(value, str):
            value = _number_or_text(value)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part.strip(), {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' sets a key inside a value set earlier")
        node[parts[-1].strip()] = value
    return out


def _number_or_text(text: str) -> Any:
    # YAML 1.1 reads "3e-4" (no dot) as text; on a command line it is the number it looks like.
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def with_overrides_from(data: dict[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """``data`` with the dotted overrides ``items`` merged in (see :func:`parse_overrides`)."""
    return _merge(data, parse_overrides(items)) if items else data


def load_config(
    cls: type[T],
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    kind: str | None = None,
    dotted: Sequence[str] = (),
) -> T:
    """Load a YAML file (with what it inherits, see :func:`read_yaml`) into the dataclass ``cls``.

    Args:
        cls: A dataclass type.
        path: YAML file of plain values.
        overrides: Values that replace the file's (e.g. from command-line flags).
        dotted: Command-line overrides ``key.sub=value`` (see :func:`parse_overrides`).
        kind: The preset folder a ``base:`` name is looked up in (None: only a YAML file
            next to ``path`` can be a base).

    Raises:
        ConfigError: The file is missing, is not a YAML mapping, or has an unknown key.
    """
    path = Path(path)
    data = read_yaml(path, kind)
    data.update(overrides or {})
    data = with_overrides_from(data, dotted)
    return from_dict(cls, data, f"{path} (with overrides)" if dotted else str(path))


#: Seeds feed numpy's SeedSequence, which takes non-negative integers (torch takes 64 bits).
MAX_SEED = 2**63 - 1


def check_seed(seed: int, name: str = "--seed") -> int:
    """Return ``seed`` if it is a valid seed (an integer in ``[0, 2**63)``), else raise.

    Raises:
        ConfigError: Negative, too large, or not an integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer from 0 to 2**63-1, got {seed!r}")
    return seed


#: Field metadata of an optional setting added after files were written without it: while
#: unset (None) it is left out of :func:`to_dict`, so configs that do not use it read, compare
#: and store exactly as before it existed (datasets stay byte-identical, old runs resume).
OMIT_IF_NONE = {"omit_if_none": True}


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict form of a dataclass config (tuples become lists), safe for YAML, JSON, torch.

    Fields marked with :data:`OMIT_IF_NONE` are left out while None.
    """

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {
                f.name: plain(getattr(v, f.name))
                for f in dataclasses.fields(v)
                if not (f.metadata.get("omit_if_none") and getattr(v, f.name) is None)
            }
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return copy.deepcopy(v)

    return plain(config)


def configs_dir() -> Path:
    """The preset folder: the package ``foresight.configs`` (``configs/`` of the repository).

    Found through the package, so presets load from any working directory whether the
    project was installed editable or from a wheel.
    """
    try:
        import foresight.configs as presets
    except ModuleNotFoundError:
        # An editable install made before configs/ became a package maps only foresight/,
        # envs/ and planners/; its configs/ sits next to foresight/ in the checkout.
        return Path(__file__).resolve().parent.parent / "configs"
    return Path(presets.__file__).resolve().parent


def repo_root() -> Path:
    """The folder holding the packaged ``configs/`` (the repository root for editable installs)."""
    return configs_dir().parent


def resolve_config(name_or_path: str | Path, kind: str) -> Path:
    """Resolve a preset name (``easy``) or a path (``my/suite.yaml``) to a config file.

    Args:
        name_or_path: A file path, or a preset name under ``configs/<kind>/``.
        kind: The configs sub-folder: ``env``, ``suite``, ``model`` or ``planner``.
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    folder = configs_dir() / kind
    preset = folder / f"{name_or_path}.yaml"
    if not preset.is_file():
        names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ConfigError(
            f"no {kind} preset named '{name_or_path}' (presets: {', '.join(names) or 'none'}); "
            "pass a .yaml path instead"
        )
    return preset

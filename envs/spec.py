"""Which env, with which config: :class:`EnvSpec`, and how one is found from a name or a file.

Envs are registered with gymnasium (its registry is the env registry: ``gym.make`` works on
every foresight env); a foresight env is one whose entry point is a
:class:`~foresight.envs.base.ForesightEnv`. An env preset (``configs/env/<name>.yaml``) holds
the env's config values and names its env with ``env_name:`` (a gymnasium id; absent:
``foresight/Push-v0``). A dataset stores the same pair as robomimic's ``env_args``, so the env
it was collected in can be rebuilt from the file alone (:meth:`EnvSpec.from_env_args`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from foresight.config import from_dict, read_yaml, resolve_config, to_dict, with_overrides_from
from foresight.errors import ConfigError

if TYPE_CHECKING:
    from foresight.envs.base import ForesightEnv

#: The env of a preset, dataset or run that names none (everything written before envs had
#: names was collected in it).
DEFAULT_ENV = "foresight/Push-v0"

#: The key by which an env preset names its env (robomimic's name for it in ``env_args``).
ENV_KEY = "env_name"


def foresight_env_ids() -> list[str]:
    """Ids of the registered envs whose entry point lives in foresight."""
    return sorted(
        k for k, s in gym.registry.items() if str(s.entry_point).startswith("foresight.envs.")
    )


def env_class(env_id: str) -> type[ForesightEnv]:
    """The :class:`ForesightEnv` subclass registered as ``env_id`` (imported on first use).

    Raises:
        ConfigError: Not a registered id, or an env that does not implement the contract.
    """
    from foresight.envs.base import ForesightEnv

    spec = gym.registry.get(env_id)
    if spec is None:
        raise ConfigError(
            f"unknown env '{env_id}' (foresight envs: {', '.join(foresight_env_ids())}); "
            "register it with gymnasium first"
        )
    entry = spec.entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
    if not (isinstance(entry, type) and issubclass(entry, ForesightEnv)):
        raise ConfigError(
            f"env '{env_id}' is a gymnasium env but not a foresight env: it must subclass "
            "foresight.envs.ForesightEnv (see 'Adding an environment' in the README)"
        )
    return entry


def env_id_of(env: Any) -> str:
    """The registered id of a live env's class (its gymnasium registration)."""
    cls = type(env)
    entry = f"{cls.__module__}:{cls.__qualname__}"
    for env_id, spec in gym.registry.items():
        if spec.entry_point in (entry, cls):
            return env_id
    raise ConfigError(f"{cls.__qualname__} is not registered with gymnasium")


@dataclass(frozen=True)
class EnvSpec:
    """An env id and its config as plain values: picklable, JSON-able, enough to rebuild it.

    Attributes:
        name: The gymnasium id (``foresight/Push-v0``).
        config: The fields of the env's ``config_class``, as plain values.
    """

    name: str
    config: dict[str, Any]

    @property
    def env_class(self) -> type[ForesightEnv]:
        """The env's class (see :func:`env_class`)."""
        return env_class(self.name)

    def typed(self) -> Any:
        """The config as the env's ``config_class`` (checked)."""
        return from_dict(self.env_class.config_class, self.config, f"{self.name} config")

    @property
    def image_size(self) -> int:
        """Side of the frames the env renders."""
        return int(self.config["image_size"])

    def with_image_size(self, size: int | None) -> EnvSpec:
        """The same env rendering ``size x size`` frames (None: unchanged)."""
        if size is None or size == self.image_size:
            return self
        return replace(self, config={**self.config, "image_size": int(size)})

    def make(self, render_mode: str | None = None) -> ForesightEnv:
        """A new instance of the env (no gymnasium wrappers: episodes are run to a fixed length)."""
        return self.env_class(self.typed(), render_mode=render_mode)  # type: ignore[call-arg]

    def env_args(self) -> dict[str, Any]:
        """Robomimic's ``env_args`` for a dataset collected in this env."""
        return {"env_name": self.name, "type": "foresight", "env_kwargs": {"config": self.config}}

    @classmethod
    def from_env_args(cls, env_args: dict[str, Any], source: str) -> EnvSpec:
        """The env a dataset's ``env_args`` describes (its config checked).

        Raises:
            ConfigError: An unknown env, or a config its env does not accept.
        """
        name = env_args.get("env_name", DEFAULT_ENV)
        kwargs = env_args.get("env_kwargs")
        config = kwargs.get("config") if isinstance(kwargs, dict) else None
        if not isinstance(name, str) or not isinstance(config, dict):
            raise ConfigError(f"{source}: env_args do not name an env and its config")
        env = cls(name, config).env_class
        return cls(name, to_dict(from_dict(env.config_class, config, source)))

    @classmethod
    def of(cls, env: Any) -> EnvSpec:
        """The spec of a live env."""
        return cls(env_id_of(env), to_dict(env.config))


def load_env(
    name_or_path: str | Path,
    overrides: dict[str, Any] | None = None,
    dotted: Sequence[str] = (),
) -> EnvSpec:
    """Resolve an env preset, an env YAML path, or a registered env id to an :class:`EnvSpec`.

    Args:
        name_or_path: ``push`` (a preset), ``my/env.yaml``, or ``foresight/Push-v0`` (the env's
            default preset).
        overrides: Values that replace the file's (e.g. ``{"image_size": 32}``).
        dotted: Command-line overrides ``key.sub=value``, checked like the file's keys.

    Raises:
        ConfigError: No such preset, file or env; a key the env's config does not have.
    """
    text = str(name_or_path)
    # An env id (``owner/Name-v0``) is neither a preset name nor a YAML path.
    named = text in gym.registry or ("/" in text and not text.endswith((".yaml", ".yml")))
    path = resolve_config(env_class(text).default_config if named else text, "env")
    data = read_yaml(path, "env")
    env_id = data.pop(ENV_KEY, DEFAULT_ENV)
    if not isinstance(env_id, str):
        raise ConfigError(f"{path}: '{ENV_KEY}' must be a registered env id, got {env_id!r}")
    if named and env_id != text:
        raise ConfigError(f"{path} configures '{env_id}', not '{text}'")
    cls = env_class(env_id)
    data.update(overrides or {})
    data = with_overrides_from(data, dotted)
    config = from_dict(cls.config_class, data, f"{path} (with overrides)" if dotted else str(path))
    return EnvSpec(env_id, to_dict(config))

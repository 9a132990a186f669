"""One registry for every kind of named component a config or a flag can choose.

Models, costs, planner optimizers, policies, samplers and optimizer factories are each a
:class:`Registry`: a read-only mapping from the name a config gives to the thing it builds,
filled by a decorator where the thing is defined, so adding one touches no shared list and no
if/elif. (Environments use gymnasium's own registry, which ``gym.make`` already reads.)

Example:
    >>> from foresight.registry import Registry
    >>> SHAPES = Registry[type]("shape")
    >>> @SHAPES.register("box")
    ... class Box: ...
    >>> SHAPES.lookup("box") is Box
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from foresight.errors import ConfigError

T = TypeVar("T")
U = TypeVar("U")


class Registry(Mapping[str, T], Generic[T]):
    """Named components of one kind, in registration order.

    Args:
        kind: What the components are, for error messages (``"cost"``, ``"model"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name``; a name registered twice is a programming error."""
        if name in self._items:
            raise ValueError(f"{self.kind} name {name!r} registered twice")
        self._items[name] = item
        return item

    def remove(self, name: str) -> None:
        """Unregister ``name`` (for a test that registered a throwaway component)."""
        del self._items[name]

    def register(self, name: str) -> Callable[[U], U]:
        """Decorator: register the decorated class or function as ``name``."""

        def wrap(item: U) -> U:
            self.add(name, item)  # type: ignore[arg-type]
            return item

        return wrap

    def lookup(self, name: str, source: str | None = None) -> T:
        """The component registered as ``name``.

        Args:
            name: The name a config or flag gave.
            source: Where the name came from, to start the error message with.

        Raises:
            ConfigError: One line naming the unknown name and every registered one.
        """
        if name not in self._items:
            where = f"{source}: " if source else ""
            raise ConfigError(
                f"{where}unknown {self.kind} {name!r} (choose one of: {', '.join(self._items)})"
            )
        return self._items[name]

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"

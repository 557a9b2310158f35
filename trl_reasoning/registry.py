"""One registry helper shared by every pluggable family (advantage estimators, policy losses, ...).

A registry maps a public name to an object. It refuses to register a name twice (so a user's estimator can never
silently replace a built-in) and, on a miss, lists the valid names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar


T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object mapping with loud failures.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"advantage estimator"``).
        config_field: the config field users set to pick an entry, named in error messages.
    """

    def __init__(self, kind: str, config_field: str) -> None:
        self.kind = kind
        self.config_field = config_field
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        if name in self._entries:
            raise ValueError(
                f"A {self.kind} named {name!r} is already registered. Pick another name; registered names: "
                f"{self.names()}."
            )
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"Unknown {self.kind} {name!r} (`{self.config_field}`). Valid values: {self.names()}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def decorator(self, name: str, make_entry: Callable[[Callable], T]) -> Callable[[Callable], Callable]:
        """Return a decorator that registers ``make_entry(fn)`` under ``name`` and gives back ``fn`` unchanged."""

        def register(fn: Callable) -> Callable:
            self.add(name, make_entry(fn))
            return fn

        return register

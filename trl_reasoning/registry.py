"""One registry helper shared by every pluggable family (advantage estimators, policy losses, ...).

A registry maps a public name to an object. It refuses to register a name twice (so a user's estimator can never
silently replace a built-in) and, on a miss, lists the valid names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar


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


@dataclass(frozen=True)
class KeywordSignature:
    """Which keyword arguments a registered function takes, so callers can pass a superset of standard arguments.

    ``accepted`` is None when the function takes ``**kwargs`` (it then receives everything).
    """

    accepted: frozenset[str] | None
    required: frozenset[str]

    @classmethod
    def of(cls, fn: Callable) -> KeywordSignature:
        params = inspect.signature(fn).parameters.values()
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        accepted = None if takes_any else frozenset(p.name for p in named)
        required = frozenset(p.name for p in named if p.default is inspect.Parameter.empty)
        return cls(accepted, required)

    def takes(self, name: str) -> bool:
        return self.accepted is None or name in self.accepted

    def select(self, what: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of ``kwargs`` the function takes; raises ``TypeError`` naming ``what`` if one is missing."""
        missing = self.required - kwargs.keys()
        if missing:
            raise TypeError(f"{what} needs the keyword argument(s) {sorted(missing)}.")
        if self.accepted is None:
            return dict(kwargs)
        return {k: v for k, v in kwargs.items() if k in self.accepted}

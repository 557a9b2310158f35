"""One registry helper shared by every pluggable family (advantage estimators, policy losses, ...).

A registry maps a public name to an object. It refuses to register a name twice (so a user's estimator can never
silently replace a built-in) and, on a miss, lists the valid names.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar


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
class KeywordArguments:
    """Parameters of a method registered without a params class: plain keyword arguments (``*_kwargs`` fields)."""

    values: Mapping[str, Any]

    def as_kwargs(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Method:
    """A registered method: its function, its declared parameters and inputs, and its manifest entry.

    Attributes:
        name: the value users put in the config field that selects it.
        fn: the pure function. It is called with keyword arguments only: the declared ``inputs`` (from the
            trainer's standard inputs and the registered input providers, :mod:`trl_reasoning.inputs`) and the fields
            of ``params``.
        display_name: the method's name in model cards and docs.
        paper: ``{"title", "id", "citation"}`` (:mod:`trl_reasoning.papers`).
        params: the :class:`~trl_reasoning.parameters.MethodParams` subclass of its parameters, or None.
        inputs: the names of the inputs it reads. Default: the function's parameters that are not parameters.
        docs: its docs page, relative to ``docs/`` (e.g. ``"methods/drpo.md"``).
        recipe: its recipe config, relative to the repository (e.g. ``"recipes/configs/drpo.yaml"``).
    """

    name: str
    fn: Callable[..., Any]
    display_name: str
    paper: Mapping[str, str] | None = None
    params: type | None = None
    inputs: tuple[str, ...] = ()
    docs: str | None = None
    recipe: str | None = None

    family: ClassVar[str] = "method"
    selector: ClassVar[str] = "method"  # the config field that selects one, for error messages

    @staticmethod
    def declare(fn: Callable, params: type | None, inputs: tuple[str, ...] | None) -> tuple[str, ...]:
        """Check ``inputs`` and ``params`` against ``fn``'s signature; default ``inputs``: the other parameters."""
        parameters = inspect.signature(fn).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        named = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        param_names = [f.name for f in dataclasses.fields(params)] if params is not None else []
        if inputs is None:
            inputs = tuple(n for n in named if n not in param_names)
        for name in (*inputs, *param_names):
            if name not in named and not takes_any:
                raise TypeError(f"{fn.__name__} does not take {name!r}, which it declares as an input or parameter.")
        overlap = set(inputs) & set(param_names)
        if overlap:
            raise TypeError(f"{sorted(overlap)} are declared both as inputs and as parameters of {fn.__name__}.")
        undeclared = [
            n
            for n, p in parameters.items()
            if n in named and p.default is inspect.Parameter.empty and n not in (*inputs, *param_names)
        ]
        if undeclared:
            raise TypeError(f"{fn.__name__} requires {undeclared}, declared neither as inputs nor as parameters.")
        return tuple(inputs)

    @classmethod
    def create(
        cls, name: str, fn: Callable, *, params: type | None, inputs: tuple[str, ...] | None, **fields: Any
    ) -> Method:
        """The entry for ``fn``: its inputs checked against its signature (default: its non-parameter arguments),
        its parameters' errors naming ``<selector>=<name>``."""
        declared = cls.declare(fn, params, inputs)
        if params is not None:
            params.owner = f"{cls.selector}={name!r}"
        fields["display_name"] = fields.get("display_name") or name
        return cls(name, fn, params=params, inputs=declared, **fields)

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """The declared inputs without a default in the function: the trainer must be able to supply them."""
        parameters = inspect.signature(self.fn).parameters
        return tuple(n for n in self.inputs if n in parameters and parameters[n].default is inspect.Parameter.empty)

    def make_params(self, config: Any = None, overrides: Mapping[str, Any] | None = None, *, source: str = "") -> Any:
        """The method's parameters from ``config`` and ``overrides`` (defaults where neither sets one), or None."""
        if self.params is None:
            if not overrides:
                return None
            # A method registered without a params class: the overrides go to the function's own parameters.
            parameters = inspect.signature(self.fn).parameters
            unknown = [name for name in overrides if name not in parameters]
            if unknown:
                raise ValueError(
                    f"{source or 'The overrides'} has {unknown}, which {self.family} {self.name!r} does not take. "
                    f"Its parameters: {list(parameters)}."
                )
            return KeywordArguments(dict(overrides))
        return self.params.from_config(config, overrides, source=source)

    def call(self, inputs: Mapping[str, Any], params: Any = None) -> Any:
        """Call the function with exactly its declared inputs (those present in ``inputs``) and its parameters."""
        kwargs = {name: inputs[name] for name in self.inputs if name in inputs}
        if params is not None:
            kwargs.update(params.as_kwargs())
        return self.fn(**kwargs)

    def call_with_keywords(self, kwargs: Mapping[str, Any]) -> Any:
        """A direct call with keyword arguments: parameters are checked through ``params`` (defaults for the rest),
        inputs are passed, and arguments the method does not declare are left out (callers may pass a superset)."""
        param_names = [f.name for f in dataclasses.fields(self.params)] if self.params is not None else []
        missing = [name for name in self.required_inputs if name not in kwargs]
        if missing:
            raise TypeError(f"{self.family.capitalize()} {self.name!r} needs the keyword argument(s) {missing}.")
        params = None
        if self.params is not None:
            params = self.params(**{name: kwargs[name] for name in param_names if name in kwargs})
        return self.call(kwargs, params)


def import_method_modules(package: str, path: list[str]) -> None:
    """Import every public module of a method package, so that each registers its methods on import (adding a method
    module needs no edit of the package's ``__init__``)."""
    for module in pkgutil.iter_modules(path):
        if not module.name.startswith("_") and module.name != "base":
            importlib.import_module(f"{package}.{module.name}")

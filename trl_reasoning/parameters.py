"""Typed method parameters: each method declares its parameters once, next to its pure function.

A method's parameters are a frozen dataclass deriving from :class:`MethodParams`, whose fields are made with
:func:`param`: the default, the help text, the accepted values and the config field that sets it, in one place::

    @dataclass(frozen=True)
    class WReinforceParams(MethodParams):
        positive_weight: float = param(0.1, help="λ: the advantage of a correct sample.", check=at_least(0))

From that one definition,

* the trainer configs get one TRL-style field per parameter (``metadata={"help": ...}``, so a YAML key, a
  command-line flag and a line of ``--help``), named by ``config=`` (default: the parameter's name);
* :meth:`MethodParams.from_config` builds the method's parameters from a config, so a method receives exactly the
  parameters it declares and nothing else;
* construction checks every value (``choices``, ``check``, then :meth:`MethodParams.validate`), and an error names the
  config field, the value and what to set instead.

A parameter that TRL's config already has (GRPO's ``scale_rewards``) is declared with ``from_trl=True``: it is read
from TRL's field and TRL checks it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar


__all__ = [
    "MethodParams",
    "ParamSpec",
    "add_config_fields",
    "at_least",
    "finite",
    "greater_than",
    "open_interval",
    "param",
]

Check = Callable[[Any], str | None]
"""A value check: returns None when the value is fine, else what it must be (e.g. ``"must be > 0"``)."""


def param(
    default: Any = MISSING,
    *,
    help: str,
    config: str | None = None,
    choices: Sequence[Any] | None = None,
    check: Check | None = None,
    parse: Callable[[Any], Any] | None = None,
    from_trl: bool = False,
    default_factory: Callable[[], Any] | Any = MISSING,
) -> Any:
    """A method parameter: a dataclass field carrying its help text, config field name and checks.

    Args:
        default: the default value (the paper's, where the paper gives one).
        help: one or two sentences, shown in ``--help`` and the docs.
        config: the name of the config field (YAML key, ``--flag``) that sets it; default the parameter's name.
        choices: the accepted values (checked, and listed by ``--help``).
        check: a :data:`Check` of the value, e.g. ``greater_than(0)``.
        parse: turns what a config or command line holds into the value (e.g. ``"\\n"`` escapes into a newline).
        from_trl: the config field is TRL's own (not added by this package, not checked here).
        default_factory: for mutable defaults (lists).
    """
    metadata = {"help": help, "config": config, "choices": choices, "check": check, "parse": parse, "trl": from_trl}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter as the configs and docs see it."""

    name: str
    config_name: str
    type: Any
    default: Any
    default_factory: Any
    help: str
    choices: Sequence[Any] | None
    from_trl: bool

    @property
    def default_value(self) -> Any:
        return self.default_factory() if self.default_factory is not MISSING else self.default


@dataclass(frozen=True)
class MethodParams:
    """Base of every method's parameters (a frozen dataclass of :func:`param` fields).

    Subclasses may override :meth:`validate` for checks that involve several parameters. ``owner`` names the method
    in error messages (set by the registry when the class is registered with a method).
    """

    owner: ClassVar[str] = "this method"

    def __post_init__(self) -> None:
        for spec in self.specs():
            value = getattr(self, spec.name)
            parse = self._field(spec.name).metadata.get("parse")
            if parse is not None:
                value = parse(value)
                object.__setattr__(self, spec.name, value)
            if spec.from_trl:
                continue
            if spec.choices is not None and value not in spec.choices:
                raise ValueError(
                    f"{spec.config_name}={value!r} is invalid for {self.owner}. Valid values: {list(spec.choices)} "
                    f"(default {spec.default_value!r})."
                )
            check = self._field(spec.name).metadata.get("check")
            problem = check(value) if check is not None else None
            if problem:
                raise ValueError(
                    f"{spec.config_name}={value!r} {problem} ({self.owner}; default {spec.default_value!r})."
                )
        self.validate()

    def validate(self) -> None:
        """Checks across parameters; raise ``ValueError`` naming the config fields and the fix."""

    def validate_selected(self) -> None:
        """Checks that hold only when the method is the one configured (e.g. a path it needs is set)."""

    @classmethod
    def _field(cls, name: str) -> dataclasses.Field:
        return {f.name: f for f in dataclasses.fields(cls)}[name]

    @classmethod
    def specs(cls) -> list[ParamSpec]:
        """The parameters, in declaration order, with their resolved types."""
        hints = typing.get_type_hints(cls)
        specs = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            specs.append(
                ParamSpec(
                    name=f.name,
                    config_name=meta.get("config") or f.name,
                    type=hints[f.name],
                    default=f.default,
                    default_factory=f.default_factory,
                    help=meta.get("help", ""),
                    choices=meta.get("choices"),
                    from_trl=bool(meta.get("trl")),
                )
            )
        return specs

    @classmethod
    def config_names(cls, *, include_trl: bool = False) -> list[str]:
        """The config fields that set these parameters (this package's own, unless ``include_trl``)."""
        return [spec.config_name for spec in cls.specs() if include_trl or not spec.from_trl]

    @classmethod
    def from_config(cls, config: Any, overrides: Mapping[str, Any] | None = None, *, source: str = "") -> MethodParams:
        """The parameters set by ``config`` (its fields named by ``config=``), then by ``overrides`` (by parameter name).

        ``overrides`` (e.g. ``advantage_estimator_kwargs``, named by ``source`` in errors) may only hold declared
        parameters. A config field the config lacks keeps the parameter's default.
        """
        values = {}
        for spec in cls.specs():
            if hasattr(config, spec.config_name):
                values[spec.name] = getattr(config, spec.config_name)
        for name, value in (overrides or {}).items():
            if name not in {spec.name for spec in cls.specs()}:
                raise ValueError(
                    f"{source or 'The overrides'} has {name!r}, which {cls.owner} does not take. Its parameters: "
                    f"{[spec.name for spec in cls.specs()]}."
                )
            values[name] = value
        return cls(**values)

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the method's function receives."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# --------------------------------------------------------------------------------------------------------------------
# checks


def greater_than(low: float) -> Check:
    def check(value: Any) -> str | None:
        return (
            None if _is_number(value) and math.isfinite(value) and value > low else f"must be a finite number > {low}"
        )

    return check


def at_least(low: float) -> Check:
    def check(value: Any) -> str | None:
        return (
            None
            if _is_number(value) and math.isfinite(value) and value >= low
            else f"must be a finite number >= {low}"
        )

    return check


def open_interval(low: float, high: float, *, allow_none: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if value is None and allow_none:
            return None
        if _is_number(value) and low < value < high:
            return None
        return f"must be a number in ({low}, {high})" + (" or None" if allow_none else "")

    return check


def finite(value: Any) -> str | None:
    return None if _is_number(value) and math.isfinite(value) else "must be a finite number"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------------------------------
# config fields


def add_config_fields(params_classes: Iterable[type[MethodParams]]) -> Callable[[type], type]:
    """A class decorator (applied before ``@dataclass``) that adds one config field per declared parameter.

    A parameter shared by two methods (the same definition inherited, e.g. DRPO's ``length_lambda``) gives one field;
    two different definitions of one config name raise. Fields TRL already has (``from_trl``) are not added.
    """
    specs: dict[str, ParamSpec] = {}
    for params in params_classes:
        for spec in params.specs():
            if spec.from_trl:
                continue
            known = specs.get(spec.config_name)
            if known is not None and (known.help, known.default, known.type) != (spec.help, spec.default, spec.type):
                raise TypeError(f"Two methods declare the config field {spec.config_name!r} differently.")
            specs[spec.config_name] = spec

    def decorate(cls: type) -> type:
        annotations = cls.__dict__.get("__annotations__", {})
        for name, spec in specs.items():
            if name in annotations:
                raise TypeError(f"{cls.__name__} declares {name!r} itself; it belongs to a method's parameters.")
            metadata = {"help": spec.help}
            if spec.choices is not None:
                metadata["choices"] = list(spec.choices)
            annotations[name] = spec.type
            if spec.default_factory is not MISSING:
                setattr(cls, name, dataclasses.field(default_factory=spec.default_factory, metadata=metadata))
            else:
                setattr(cls, name, dataclasses.field(default=spec.default, metadata=metadata))
        cls.__annotations__ = annotations
        return cls

    return decorate


def fields_docstring(config_cls: type, names: Iterable[str], header: str = "Parameters:") -> str:
    """A TRL-style ``Parameters:`` section from the fields' help texts (so each text is written once)."""
    by_name = {f.name: f for f in dataclasses.fields(config_cls)}
    lines = [f"    {header}"]
    for name in names:
        f = by_name[name]
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        lines.append(f"        {name} (defaults to `{default!r}`):")
        lines.append(f"            {f.metadata.get('help', '')}")
    return "\n".join(lines)

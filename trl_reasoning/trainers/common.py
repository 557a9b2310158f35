"""Helpers shared by the trainers: drop-in argument handling, config upgrades, cross-process metric averages."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from accelerate import Accelerator
from transformers import TrainingArguments
from trl.trainer.utils import get_config_model_id


ConfigT = TypeVar("ConfigT")


def signature_of(parent_init: Callable) -> Callable[[Callable], Callable]:
    """Decorator: the decorated ``__init__(self, *args, **kwargs)`` shows ``parent_init``'s signature to
    ``inspect`` (IDEs, ``help()``, tools that introspect TRL trainers)."""

    def decorate(init: Callable) -> Callable:
        init.__signature__ = inspect.signature(parent_init)
        return init

    return decorate


def bind_parent_arguments(parent_init: Callable, trainer: object, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The arguments of a trainer call, bound to its TRL parent's ``__init__`` signature (defaults filled in).

    Our trainers take exactly what their TRL parent takes, positionally in TRL's order or by keyword, and hand it on
    unchanged; a wrong name or too many arguments fail here with Python's usual ``TypeError``.
    """
    bound = inspect.signature(parent_init).bind(trainer, *args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    del arguments[next(iter(arguments))]  # self
    return arguments


def resolve_config(
    model, args: Any, config_cls: type[ConfigT], suffix: str, parent_cls: type, accept_training_arguments=False
) -> ConfigT:
    """The config a trainer runs with, accepting whatever its TRL parent accepts.

    * ``None``: a default ``config_cls`` named after the model, as TRL names it (``"<model>-<suffix>"``).
    * A ``config_cls`` (or a subclass): used as it is.
    * An instance of the TRL parent config ``parent_cls`` (e.g. a ``trl.GRPOConfig``, or a third party's subclass of
      it): upgraded by :func:`upgrade_config`, keeping every value and the state its ``__post_init__`` derived.
    * A plain ``transformers.TrainingArguments``, only where TRL accepts one (``accept_training_arguments``, as
      ``trl.SFTTrainer`` does): rebuilt from its ``to_dict()`` the way TRL rebuilds it.
    """
    if args is None:
        model_id = model if isinstance(model, str) else get_config_model_id(model.config)
        return config_cls(f"{str(model_id).split('/')[-1]}-{suffix}")
    if isinstance(args, config_cls):
        return args
    if isinstance(args, parent_cls):
        return upgrade_config(args, config_cls)
    if accept_training_arguments and isinstance(args, TrainingArguments):
        values = args.to_dict()
        values["hub_token"] = args.hub_token  # to_dict hides it
        return config_cls(**values)
    raise TypeError(
        f"`args` must be a trl.{parent_cls.__name__} or a trl_reasoning.{config_cls.__name__}, got "
        f"{type(args).__name__}."
    )


def upgrade_config(args: Any, config_cls: type[ConfigT]) -> ConfigT:
    """A copy of the already-built TRL config ``args`` as a ``config_cls``; ``args`` itself is left untouched.

    Every attribute of ``args`` is copied as it is (values the user set, including enums and objects ``to_dict()``
    would turn into strings, and whatever TRL's ``__post_init__`` derived), the fields ``config_cls`` adds get their
    defaults, and only ``config_cls``'s own checks run (``_post_init_own_fields``): TRL's ``__post_init__`` is not run
    twice. When ``args`` is a third party's subclass of the TRL config, the copy is an instance of both classes.
    """
    cls = config_cls if type(args) in config_cls.__mro__ else _combined_config_class(config_cls, type(args))
    upgraded = object.__new__(cls)
    upgraded.__dict__.update(args.__dict__)
    for field in dataclasses.fields(config_cls):
        if field.name not in upgraded.__dict__ and field.init:
            if field.default is not dataclasses.MISSING:
                value = field.default
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            else:
                raise TypeError(f"{config_cls.__name__}.{field.name} has no default and cannot be filled in.")
            upgraded.__dict__[field.name] = value
    upgraded._post_init_own_fields()
    return upgraded


@functools.cache
def _combined_config_class(config_cls: type, user_cls: type) -> type:
    """``config_cls``'s fields and checks on top of a user's subclass of the TRL config (cached, picklable)."""
    namespace = {
        "__module__": config_cls.__module__,
        "__doc__": config_cls.__doc__,
        "__reduce__": _reduce_combined,
        "_combines": (config_cls, user_cls),
    }
    combined = type(f"{config_cls.__name__}[{user_cls.__name__}]", (config_cls, user_cls), namespace)
    return dataclasses.dataclass(combined)


def _reduce_combined(self):
    return _rebuild_combined, (*type(self)._combines, dict(self.__dict__))


def _rebuild_combined(config_cls: type, user_cls: type, state: dict) -> Any:
    instance = object.__new__(_combined_config_class(config_cls, user_cls))
    instance.__dict__.update(state)
    return instance


def mean_over_processes(
    accelerator: Accelerator, values: Mapping[str, torch.Tensor | float], device: torch.device
) -> dict[str, float]:
    """Average scalar metrics over processes in one collective; NaN ("nothing measured here") is ignored.

    Every process must call it with the same names in the same order. A metric NaN on every process stays NaN.
    """
    names = list(values)
    local = torch.stack([torch.as_tensor(values[n], dtype=torch.float32, device=device).reshape(()) for n in names])
    gathered = accelerator.gather(local.detach()).view(-1, len(names)).nanmean(dim=0)
    return dict(zip(names, gathered.tolist(), strict=True))

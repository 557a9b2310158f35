"""Helpers shared by the trainers: default/checked config, cross-process metric averages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import torch
from accelerate import Accelerator


ConfigT = TypeVar("ConfigT")


def resolve_config(model, args: ConfigT | None, config_cls: type[ConfigT], suffix: str, parent: str) -> ConfigT:
    """``args``, checked to be a ``config_cls``; or, when None, a default one named after the model (TRL's way).

    ``parent`` names the TRL config users convert from in the error message (e.g. ``"grpo"``).
    """
    if args is None:
        model_id = model if isinstance(model, str) else model.config._name_or_path
        return config_cls(f"{str(model_id).split('/')[-1]}-{suffix}")
    if not isinstance(args, config_cls):
        name = config_cls.__name__
        raise TypeError(
            f"`args` must be a trl_reasoning.{name}, got {type(args).__name__}. Build it with "
            f"{name}(**your_{parent}_config.to_dict()) to keep your settings."
        )
    return args


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

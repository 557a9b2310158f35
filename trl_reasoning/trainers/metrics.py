"""Logging helper shared by the trainers."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from accelerate import Accelerator


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

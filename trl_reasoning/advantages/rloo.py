r"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024, "Back to Basics", arXiv 2402.14740).

Each completion's baseline is the mean reward of the *other* completions of its prompt::

    A_i = r_i − (1 / (n − 1)) Σ_{j ≠ i} r_j  =  n / (n − 1) · (r_i − mean_group(r))

with ``n`` the group's scorable completions. The baseline does not depend on ``r_i``, so the estimate is unbiased,
and unlike GRPO nothing is divided by a standard deviation. ``rloo_normalize_advantages=True`` then standardises the
advantages over the global batch, ``(A − mean) / (std + 1e-4)``, as ``trl.RLOOConfig(normalize_advantages=True)``
does.

Implementation details:

1. NaN rewards (unscorable completions) are left out of the baseline and get advantage 0; a group with fewer than two
   scorable completions has no baseline, and its advantages are 0. Both are left out of the normalisation.
2. Computed in the rewards' dtype; ``group_size`` groups are contiguous, as everywhere in the package.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..papers import paper
from ..parameters import MethodParams, param
from .base import check_groups, nanstd, register_advantage_estimator


__all__ = ["RLOO", "RLOOParams", "rloo_advantages"]

RLOO = paper(
    "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs",
    "2402.14740",
    "ahmadian2024back",
    "Arash Ahmadian and Chris Cremer and Matthias Gallé and Marzieh Fadaee and Julia Kreutzer and Olivier Pietquin "
    "and Ahmet Üstün and Sara Hooker",
    2024,
)


@dataclass(frozen=True)
class RLOOParams(MethodParams):
    normalize_advantages: bool = param(
        False,
        config="rloo_normalize_advantages",
        help="advantage_estimator='rloo': standardise the leave-one-out advantages over the generation batch, "
        "(A - mean) / (std + 1e-4), as trl.RLOOConfig(normalize_advantages=True). The paper does not.",
    )


@register_advantage_estimator(
    "rloo",
    display_name="RLOO",
    paper=RLOO,
    params=RLOOParams,
    inputs=("rewards", "group_size"),
    docs="methods/rloo.md",
    recipe="recipes/configs/rloo.yaml",
)
def rloo_advantages(rewards: torch.Tensor, group_size: int, normalize_advantages: bool = False) -> torch.Tensor:
    """Leave-one-out advantages ``A_i = n/(n − 1)·(r_i − mean_group(r))`` (Ahmadian et al. 2024, arXiv 2402.14740)."""
    check_groups(rewards.numel(), group_size)
    grouped = rewards.view(-1, group_size)
    scorable = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    factor = scorable / (scorable - 1).clamp(min=1)
    advantages = torch.where(scorable > 1, factor * (grouped - mean), torch.nan).flatten()  # NaN: no baseline
    if normalize_advantages:
        advantages = (advantages - torch.nanmean(advantages)) / (nanstd(advantages) + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)

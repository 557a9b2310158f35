"""GRPO's group-relative advantages, computed exactly as ``trl.GRPOTrainer`` does (DeepSeekMath, arXiv 2402.03300)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..papers import DEEPSEEKMATH
from ..parameters import MethodParams, param
from .base import check_groups, nanstd, register_advantage_estimator


@dataclass(frozen=True)
class GRPOParams(MethodParams):
    """GRPO's parameters are TRL's own fields, read from `trl.GRPOConfig` (TRL checks them)."""

    scale: str = param("group", config="scale_rewards", from_trl=True, help="TRL's `scale_rewards`.")
    aggregation: str = param(
        "sum_then_normalize", config="multi_objective_aggregation", from_trl=True, help="TRL's aggregation."
    )


@register_advantage_estimator(
    "grpo",
    display_name="GRPO",
    paper=DEEPSEEKMATH,
    params=GRPOParams,
    inputs=("rewards", "group_size", "rewards_per_func", "reward_weights"),
    docs="methods/grpo.md",
    recipe="recipes/configs/grpo.yaml",
)
def grpo_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale: str = "group",
    aggregation: str = "sum_then_normalize",
    rewards_per_func: torch.Tensor | None = None,
    reward_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Group-relative advantages, exactly as ``trl.GRPOTrainer`` computes them (DeepSeekMath, arXiv 2402.03300).

    ``A_i = (r_i − mean_group(r)) / (std(r) + 1e-4)`` where ``std`` is the sample std (Bessel) over the group
    (``scale="group"``) or the whole batch (``scale="batch"``); ``scale="none"`` skips the division (Dr. GRPO).
    NaN rewards (unscorable samples) are left out of the statistics and get advantage 0.
    ``aggregation="normalize_then_sum"`` normalises each reward function per group first (GDPO), then the weighted
    sum over the batch; it needs ``rewards_per_func`` and ``reward_weights``.
    """
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"`scale` must be 'group', 'batch' or 'none', got {scale!r}.")
    check_groups(rewards.numel(), group_size)
    if aggregation == "sum_then_normalize":
        grouped = rewards.view(-1, group_size)
        mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size, dim=0)
        if scale in ("group", "none"):
            std = (
                nanstd(grouped, dim=1).repeat_interleave(group_size, dim=0)
                if group_size > 1
                else torch.zeros_like(rewards)
            )
        else:
            std = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        advantages = rewards - mean
        if scale != "none":
            advantages = advantages / (std + 1e-4)
    elif aggregation == "normalize_then_sum":
        if rewards_per_func is None or reward_weights is None:
            raise ValueError("aggregation='normalize_then_sum' needs `rewards_per_func` and `reward_weights`.")
        num_funcs = rewards_per_func.size(1)
        grouped = rewards_per_func.view(-1, group_size, num_funcs)
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = nanstd(grouped, dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean_k)
        per_func = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, num_funcs)
        total = (per_func * reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
        total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        std = nanstd(total).expand_as(total) if total.numel() > 1 else torch.zeros_like(total)
        advantages = (total - torch.nanmean(total)) / (std + 1e-4)
    else:
        raise ValueError(f"`aggregation` must be 'sum_then_normalize' or 'normalize_then_sum', got {aggregation!r}.")
    return torch.nan_to_num(advantages, nan=0.0)

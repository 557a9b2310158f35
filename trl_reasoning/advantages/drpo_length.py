r"""DRPO's decoupled length reward for any GRPO-family loss (after Li, Chen, Lin, Yang 2025, arXiv 2510.04474).

Start from GRPO's group advantages of correctness ``A_i`` (0/1 rewards, centred and scaled per group as configured by
``scale``), then, inside each group, rescale the correct samples only:

    A_i ← A_i · |P| · w_i   for i ∈ P,   w = softmax_{i ∈ P}(−|o_i| / (λ·C))

where P is the group's correct samples, λ = ``length_lambda`` and C = ``max_length`` (the generation budget). Because
``Σ_{i∈P} |P|·w_i = |P|``, the positives' total advantage is unchanged; shorter correct answers get more of it. Every
correct advantage stays positive (``|P|·w_i > 0``) while incorrect ones keep their negative GRPO advantage, so — unlike
adding a length penalty to the reward — no correct answer ever ends up below an incorrect one of its group. This is
DRPO's decoupling (length is normalised only among positives) applied to advantages; ``policy_loss="drpo"`` is the
paper's full objective.

Implementation details:

1. The correctness signal is ``correct`` (the correctness reward ``>= correct_threshold``), not the total reward.
2. Unscorable samples (no correctness reward) get advantage 0 and are left out of the group statistics, as in GRPO.
3. A group with one correct sample, or correct samples of equal length, is plain GRPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses.drpo import DRPOLengthParams, drpo_length_weights  # shared with the DRPO loss
from ..papers import DRPO
from ..parameters import param
from .base import AdvantageResult, register_advantage_estimator, scorable_mask
from .grpo import grpo_advantages


__all__ = ["drpo_length_advantages"]


@dataclass(frozen=True)
class DRPOLengthAdvantageParams(DRPOLengthParams):
    scale: str = param("group", config="scale_rewards", from_trl=True, help="TRL's `scale_rewards`.")


@register_advantage_estimator(
    "drpo_length",
    display_name="DRPO length weighting",
    paper=DRPO,
    params=DRPOLengthAdvantageParams,
    inputs=("correct", "lengths", "group_size", "max_length", "scorable"),
    docs="methods/drpo.md",
    recipe="recipes/configs/drpo_length.yaml",
)
def drpo_length_advantages(
    correct: torch.Tensor,
    lengths: torch.Tensor,
    group_size: int,
    max_length: int,
    length_lambda: float = 0.1,
    scale: str = "group",
    scorable: torch.Tensor | None = None,
) -> AdvantageResult:
    """GRPO advantages of correctness with each group's positive share redistributed toward short answers.

    Logs ``drpo/weight_entropy`` (mean entropy of ``w`` over groups with two or more correct samples),
    ``drpo/length_correct`` and ``drpo/length_incorrect``.
    """
    scorable = scorable_mask(correct, scorable)
    correctness = torch.where(scorable, correct.to(torch.float32), float("nan"))
    advantages = grpo_advantages(correctness, group_size, scale=scale)

    positive = correct & scorable
    weights = drpo_length_weights(lengths, positive, group_size, max_length, length_lambda)
    num_positive = positive.view(-1, group_size).sum(dim=1, keepdim=True).expand(-1, group_size).flatten()
    advantages = torch.where(positive, advantages * (num_positive * weights).to(advantages.dtype), advantages)

    grouped = weights.view(-1, group_size)
    entropy = -(grouped * torch.log(grouped.clamp(min=1e-30))).sum(dim=1)
    several = positive.view(-1, group_size).sum(dim=1) >= 2
    lengths = lengths.to(torch.float64)
    incorrect = ~correct & scorable
    metrics = {
        "drpo/weight_entropy": entropy[several].mean().item() if several.any() else float("nan"),
        "drpo/length_correct": lengths[positive].mean().item() if positive.any() else float("nan"),
        "drpo/length_incorrect": lengths[incorrect].mean().item() if incorrect.any() else float("nan"),
    }
    return AdvantageResult(advantages, None, metrics)

"""PSR, NSR and W-REINFORCE: "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning" (arXiv 2506.01347)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..papers import NEGATIVE_REINFORCEMENT
from ..parameters import MethodParams, at_least, param
from .base import register_advantage_estimator, scorable_mask


_PAGE = "methods/negative-reinforcement.md"


@dataclass(frozen=True)
class WReinforceParams(MethodParams):
    positive_weight: float = param(
        0.1,
        check=at_least(0),
        help="W-REINFORCE's lambda: advantage of a correct sample (incorrect samples get -1). Must be >= 0; 0 is NSR, "
        "1 is plain REINFORCE. The paper recommends 0.1.",
    )


@register_advantage_estimator(
    "psr",
    display_name="PSR",
    paper=NEGATIVE_REINFORCEMENT,
    drops_samples=True,
    docs=_PAGE,
    recipe="recipes/configs/psr.yaml",
)
def positive_sample_reinforcement(
    correct: torch.Tensor, scorable: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive Sample Reinforcement (Zhu et al. 2025, arXiv 2506.01347): ``A = +1`` on correct samples.

    Incorrect samples are dropped (``keep=False``). No baseline, no std scaling.
    """
    keep = correct & scorable_mask(correct, scorable)
    return keep.float(), keep


@register_advantage_estimator(
    "nsr",
    display_name="NSR",
    paper=NEGATIVE_REINFORCEMENT,
    drops_samples=True,
    docs=_PAGE,
    recipe="recipes/configs/nsr.yaml",
)
def negative_sample_reinforcement(
    correct: torch.Tensor, scorable: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative Sample Reinforcement (Zhu et al. 2025, arXiv 2506.01347): ``A = −1`` on incorrect samples.

    Correct samples are dropped (``keep=False``). No baseline, no std scaling.
    """
    keep = ~correct & scorable_mask(correct, scorable)
    return -keep.float(), keep


@register_advantage_estimator(
    "w_reinforce",
    display_name="W-REINFORCE",
    paper=NEGATIVE_REINFORCEMENT,
    drops_samples=True,
    params=WReinforceParams,
    docs=_PAGE,
    recipe="recipes/configs/w_reinforce.yaml",
)
def weighted_reinforce(
    correct: torch.Tensor, positive_weight: float = 0.1, scorable: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted REINFORCE (Zhu et al. 2025, arXiv 2506.01347): ``L = λ·L_PSR + L_NSR``.

    ``A = +λ`` on correct samples and ``A = −1`` on incorrect ones (λ = ``positive_weight``, paper default 0.1;
    λ = 0 is NSR, λ = 1 is plain REINFORCE). No baseline, no std scaling. Unscorable samples are dropped.
    """
    if positive_weight < 0:
        raise ValueError(f"`positive_weight` must be >= 0, got {positive_weight}.")
    keep = scorable_mask(correct, scorable)
    advantages = torch.where(correct, float(positive_weight), -1.0).to(torch.float32)
    return advantages, keep

r"""``token_weighting="critical_tokens"``: cDPO's critical-token weights brought to GRPO (Lin et al. 2024, arXiv 2411.19943).

Each token of an *incorrect* completion gets ``A_{i,t} = A_i · w_t`` with ``w_t = 1 − s_t``, ``s_t`` the contrastive
estimation score of the token under the positive and negative LoRA adapters (:mod:`trl_reasoning.token_weights`);
the tokens of correct completions keep ``A_i``. The weights come from the ``critical_token_weights`` input, whose
provider scores this process's incorrect completions with a frozen copy of the base model carrying both adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..papers import CDPO
from ..parameters import MethodParams, at_least, param
from .base import TokenWeightingResult, register_token_weighting


__all__ = ["CriticalTokenParams", "critical_token_weighting"]


@dataclass(frozen=True)
class CriticalTokenParams(MethodParams):
    """The contrastive scorer's parameters (those of the ``critical_token_weights`` input provider)."""

    positive_adapter: str | None = param(
        None,
        config="critical_positive_adapter",
        help="token_weighting='critical_tokens': path of the positive contrastive LoRA adapter.",
    )
    negative_adapter: str | None = param(
        None,
        config="critical_negative_adapter",
        help="token_weighting='critical_tokens': path of the negative contrastive LoRA adapter.",
    )
    beta: float = param(
        1.0,
        config="critical_beta",
        check=at_least(0),
        help="beta of the contrastive estimation softmax((1+beta) z_pos - beta z_neg); >= 0 (paper: 1).",
    )

    def validate_selected(self) -> None:
        if self.positive_adapter is None or self.negative_adapter is None:
            raise ValueError(
                "token_weighting='critical_tokens' scores tokens with the two contrastive adapters: set "
                "critical_positive_adapter and critical_negative_adapter (trained with "
                "trl_reasoning.critical_tokens.train_contrastive_adapters)."
            )


@register_token_weighting(
    "critical_tokens",
    display_name="critical-token weights",
    paper=CDPO,
    inputs=("advantages", "critical_token_weights", "completion_mask", "correct", "scorable", "gather"),
    docs="methods/token-weighting.md",
    recipe="recipes/configs/critical_tokens.yaml",
)
def critical_token_weighting(
    advantages: torch.Tensor,
    critical_token_weights: torch.Tensor,
    completion_mask: torch.Tensor,
    correct: torch.Tensor,
    scorable: torch.Tensor,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TokenWeightingResult:
    """``A_{i,t} = A_i · w_{i,t}``: ``w = 1 − s`` on incorrect completions' tokens, 1 elsewhere.

    Logs ``critical/weight_mean`` and ``critical/frac_below_0.5`` over the scored tokens of the global batch.
    """
    gather = gather or (lambda tensor: tensor)
    weights = critical_token_weights
    scored = completion_mask.bool() & (scorable & ~correct).unsqueeze(1)
    stats = torch.stack([scored.sum(), (weights * scored).sum(), ((weights < 0.5) & scored).sum()]).float()
    tokens, total, below = gather(stats).view(-1, 3).sum(dim=0).tolist()
    metrics = {"critical/weight_mean": total / tokens, "critical/frac_below_0.5": below / tokens} if tokens > 0 else {}
    return TokenWeightingResult(advantages.unsqueeze(1) * weights, metrics)

r"""DRPO: Decoupled Reward Policy Optimization (Li, Chen, Lin, Yang 2025, arXiv 2510.04474).

For each prompt q with correct completions P and incorrect ones N, the score of a completion is its length-normalised
log-likelihood ``s(o) = (1/|o|) Σ_t logπ(o_t)``, and

    w_i = softmax_{i ∈ P}(−|o_i| / (λ·C))                   (length reward 1 − |o|/C tilted by 1/λ, normalised in P)
    J_q = Σ_{i ∈ P} w_i·s(o_i) − τ·log( (1/|N|) Σ_{j ∈ N} exp(s(o_j)/τ) )
    L   = −(1/B_q) Σ_q J_q + sg(max(β·(KL − δ), 0))·KL

where C is the generation budget (``max_completion_length``, never the padded width), ``B_q`` counts every prompt of
the call (groups without both a correct and an incorrect completion contribute 0 but still count) and ``KL`` is the
token mean of ``logπ_old − logπ`` against the sampling policy. The detached coefficient gives the KL term the gradient
of the squared hinge ``(β/2)·[KL − δ]_+²``. The length signal lives only inside P, so a correct answer is never
pushed down for being long (the "decoupling"); negatives are pushed down by ``softmax_N(s/τ)``, hardest first.

Implementation details:

1. Log-**mean**-exp over the negatives, as in the paper and DisCO; the official code uses log-sum-exp, whose value
   differs by the constant ``τ·log|N|`` (same gradient): ``negative_pooling="sum"``.
2. KL estimator ``"k1"`` (``logπ_old − logπ``), as in the official launch scripts; ``kl_estimator="k3"``
   (``r − 1 − log r`` with ``r = π/π_old``) is the official code's function default.
3. Samples with no loss tokens (``mask`` all 0) or not scorable are in neither P nor N: a zero-length correct
   answer would otherwise take the largest weight.
4. The loss value is the objective itself; the official code logs a surrogate (``τ·S/sg(S)``) with equal gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..papers import DRPO
from ..parameters import MethodParams, at_least, greater_than, param
from .base import PolicyLossOutput, register_policy_loss


__all__ = ["DRPOLengthParams", "DRPOParams", "drpo_length_weights", "drpo_loss"]


@dataclass(frozen=True)
class DRPOLengthParams(MethodParams):
    """DRPO's length preference, shared by ``policy_loss="drpo"`` and ``advantage_estimator="drpo_length"``."""

    length_lambda: float = param(
        0.1,
        check=greater_than(0),
        help="DRPO's lambda (> 0), used by policy_loss='drpo' and advantage_estimator='drpo_length': correct "
        "completions are weighted by softmax(-length / (lambda * max_completion_length)) within their group. "
        "Smaller is a stronger preference for short correct answers; the paper uses 0.1.",
    )


@dataclass(frozen=True)
class DRPOParams(DRPOLengthParams):
    tau: float = param(
        10.0,
        config="drpo_tau",
        check=greater_than(0),
        help="DRPO's temperature tau (> 0) of the log-mean-exp over a group's incorrect completions.",
    )
    kl_delta: float = param(
        1e-4,
        config="drpo_kl_delta",
        check=at_least(0),
        help="DRPO's KL budget delta (>= 0) against the sampling policy.",
    )
    kl_beta: float = param(
        1e3,
        config="drpo_kl_beta",
        check=at_least(0),
        help="DRPO's penalty weight beta (>= 0) of the squared-hinge KL constraint (0 disables it).",
    )
    negative_pooling: str = param(
        "mean",
        config="drpo_negative_pooling",
        choices=("mean", "sum"),
        help="How DRPO pools a group's incorrect completions: 'mean' (log-mean-exp, the paper) or 'sum' "
        "(log-sum-exp, the official code; the value differs by tau*log|N|, the gradient is the same).",
    )
    kl_estimator: str = param(
        "k1",
        config="drpo_kl_estimator",
        choices=("k1", "k3"),
        help="DRPO's KL estimator: 'k1' (log pi_old - log pi, the official launch scripts) or 'k3' "
        "(r - 1 - log r, the official code's function default).",
    )


def drpo_length_weights(
    lengths: torch.Tensor, positive: torch.Tensor, group_size: int, max_length: int, length_lambda: float
) -> torch.Tensor:
    """DRPO's positive weights ``w = softmax over each group's positives of −length/(λ·C)`` (0 outside P).

    Args:
        lengths: (N,) completion lengths in tokens.
        positive: (N,) bool, the samples of P.
        group_size: completions per prompt; samples ``[k*G, (k+1)*G)`` form group ``k``.
        max_length: C, the generation budget.
        length_lambda: λ > 0 (small λ = strong preference for short correct answers; λ → ∞ gives uniform weights).

    Returns:
        (N,) float weights summing to 1 over each group's positives (all 0 in a group without positives).
    """
    if not length_lambda > 0:
        raise ValueError(f"`length_lambda` must be > 0, got {length_lambda}.")
    if not max_length or max_length <= 0:
        raise ValueError(f"`max_length` (the generation budget C) must be a positive int, got {max_length!r}.")
    if lengths.numel() % group_size != 0:
        raise ValueError(f"{lengths.numel()} samples do not split into whole groups of `group_size`={group_size}.")
    logits = -lengths.to(torch.float64) / (length_lambda * max_length)
    logits = torch.where(positive, logits, -math.inf).view(-1, group_size)
    has_positive = positive.view(-1, group_size).any(dim=1, keepdim=True)
    weights = torch.softmax(torch.where(has_positive, logits, 0.0), dim=1)
    return torch.where(positive.view(-1, group_size), weights, 0.0).flatten()


def drpo_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    mask: torch.Tensor,
    correct: torch.Tensor,
    lengths: torch.Tensor,
    group_size: int,
    max_length: int,
    length_lambda: float = 0.1,
    tau: float = 10.0,
    kl_delta: float = 1e-4,
    kl_beta: float = 1e3,
    scorable: torch.Tensor | None = None,
    negative_pooling: Literal["mean", "sum"] = "mean",
    kl_estimator: Literal["k1", "k3"] = "k1",
) -> PolicyLossOutput:
    """DRPO loss for whole groups laid out contiguously (see the module docstring for the formula).

    Args:
        per_token_logps: (B, T) log-probs under the trained policy (with grad); B is a multiple of ``group_size``.
        old_per_token_logps: (B, T) log-probs under the sampling policy (for the KL constraint).
        mask: (B, T) 1 for completion tokens in the loss, 0 otherwise.
        correct: (B,) bool correctness (binarised rewards).
        lengths: (B,) completion lengths in tokens (for the length weights).
        group_size: completions per prompt (G).
        max_length: the generation budget C (``max_completion_length``).
        length_lambda: λ (paper default 0.1). tau: τ of the negatives' log-mean-exp (10).
        kl_delta: the KL budget δ (1e-4). kl_beta: the penalty weight β (1e3).
        scorable: (B,) bool, False for samples to leave out (e.g. no correctness reward). Default: all.
        negative_pooling: ``"mean"`` (paper) or ``"sum"`` (official code; constant shift of the value).
        kl_estimator: ``"k1"`` (official scripts) or ``"k3"``.

    Returns:
        ``PolicyLossOutput(loss, metrics)``; metrics: ``drpo/weight_entropy`` (mean entropy of ``w`` over groups
        with both kinds), ``drpo/length_correct``, ``drpo/length_incorrect``, ``drpo/frac_valid_groups``,
        ``drpo/kl`` and ``drpo/kl_coef``.
    """
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"`group_size` must be a positive int, got {group_size!r}.")
    batch = per_token_logps.size(0)
    if batch % group_size != 0:
        raise ValueError(
            f"DRPO needs whole groups in each loss call: {batch} completions do not split into groups of "
            f"{group_size}. Make per_device_train_batch_size a multiple of num_generations."
        )
    if negative_pooling not in ("mean", "sum"):
        raise ValueError(f"`negative_pooling` must be 'mean' or 'sum', got {negative_pooling!r}.")
    if kl_estimator not in ("k1", "k3"):
        raise ValueError(f"`kl_estimator` must be 'k1' or 'k3', got {kl_estimator!r}.")
    if not tau > 0:
        raise ValueError(f"`tau` must be > 0, got {tau}.")
    if correct.dtype != torch.bool:
        raise TypeError(f"`correct` must be a bool tensor (binarise the rewards), got {correct.dtype}.")

    mask = mask.to(per_token_logps.dtype)
    num_tokens = mask.sum(dim=1)
    usable = num_tokens > 0
    if scorable is not None:
        usable = usable & scorable.to(torch.bool)
    positive, negative = correct & usable, ~correct & usable

    # Length-normalised log-likelihood scores s(o), one per completion.
    scores = (per_token_logps * mask).sum(dim=1) / num_tokens.clamp(min=1)
    grouped_scores = scores.view(-1, group_size)
    grouped_negative = negative.view(-1, group_size)
    valid_group = positive.view(-1, group_size).any(dim=1) & grouped_negative.any(dim=1)

    weights = drpo_length_weights(lengths, positive, group_size, max_length, length_lambda).to(scores.dtype)
    positive_term = (weights.view(-1, group_size) * grouped_scores).sum(dim=1)

    # τ·log-mean-exp of s/τ over each group's negatives. Groups without negatives get finite placeholder inputs (the
    # result is discarded below), so no -inf - (-inf) = NaN reaches the backward pass.
    has_negative = grouped_negative.any(dim=1, keepdim=True)
    negative_logits = torch.where(grouped_negative, grouped_scores / tau, -math.inf)
    negative_logits = torch.where(has_negative, negative_logits, 0.0)
    pooled = torch.logsumexp(negative_logits, dim=1)
    if negative_pooling == "mean":
        pooled = pooled - torch.log(grouped_negative.sum(dim=1).clamp(min=1).to(pooled.dtype))
    objective = torch.where(valid_group, positive_term - tau * pooled, 0.0)
    policy_loss = -objective.sum() / valid_group.numel()

    # KL constraint against the sampling policy, as a detached-coefficient squared hinge.
    log_ratio = per_token_logps - old_per_token_logps
    token_kl = -log_ratio if kl_estimator == "k1" else torch.exp(log_ratio) - 1 - log_ratio
    kl = (token_kl * mask).sum() / mask.sum().clamp(min=1)
    kl_coef = torch.clamp(kl_beta * (kl.detach() - kl_delta), min=0.0)
    loss = policy_loss + kl_coef * kl

    nan = torch.tensor(float("nan"), dtype=scores.dtype, device=scores.device)
    grouped_weights = weights.view(-1, group_size)
    entropy = -(grouped_weights * torch.log(grouped_weights.clamp(min=1e-30))).sum(dim=1)
    lengths = lengths.to(scores.dtype)
    metrics = {
        "drpo/weight_entropy": entropy[valid_group].mean() if valid_group.any() else nan,
        "drpo/length_correct": lengths[positive].mean() if positive.any() else nan,
        "drpo/length_incorrect": lengths[negative].mean() if negative.any() else nan,
        "drpo/frac_valid_groups": valid_group.to(scores.dtype).mean(),
        "drpo/kl": kl.detach(),
        "drpo/kl_coef": kl_coef,
    }
    return PolicyLossOutput(loss, {name: value.detach() for name, value in metrics.items()})


register_policy_loss(
    "drpo",
    display_name="DRPO",
    paper=DRPO,
    needs_whole_groups=True,
    params=DRPOParams,
    inputs=(
        "per_token_logps",
        "old_per_token_logps",
        "mask",
        "correct",
        "lengths",
        "group_size",
        "max_length",
        "scorable",
    ),
    docs="methods/drpo.md",
    recipe="recipes/configs/drpo.yaml",
)(drpo_loss)

r"""TOPR: Tapered Off-Policy REINFORCE (Le Roux, Bellemare et al. 2025, arXiv 2503.14286).

Per sequence τ with reward R, baseline c, behaviour policy μ (the one that sampled τ) and trained policy π:

    α(τ) = 1                               if τ is positive (R ≥ 0)
    α(τ) = min(π(τ)/μ(τ), 1)               if τ is negative (R < 0), computed as exp(min(Σ_t(logπ − logμ), 0))
    ℓ(τ) = −sg(α(τ)) · (R − c) · Σ_t logπ(y_t | x, y_<t)

and the loss is the mean of ℓ over sequences. Positives get an SFT-like step whatever their probability; a negative's
push fades once π already makes it less likely than μ did, which keeps the objective bounded without a KL term.
On-policy (π = μ) every α is 1 and TOPR is REINFORCE with baseline c.

The baseline sets the effective share of positives in the data (``R ∈ {+1, −1}``):
``p̃ = p(1 − c) / (1 + (1 − 2p)c)``; :func:`topr_baseline_for_positive_fraction` inverts it.

Implementation details:

1. The ratio is sequence-level, as in the paper (Eq. 8, Algorithm 1). ``ratio_level="token"`` tapers each token of a
   negative by its own ratio ``min(exp(logπ_t − logμ_t), 1)`` instead, as the third-party implementations
   (Trinity-RFT, ROLL) do; the aggregation (token sum, then mean over sequences) is unchanged.
2. Negatives are the samples with ``R < 0`` (the paper). With a baseline outside (−1, 1) or shaped rewards, samples
   with ``R ≥ 0`` can still get a negative coefficient ``R − c`` and would not be tapered; ``taper_by="coefficient"``
   tapers every sample whose coefficient is negative, which keeps the objective bounded in that case.
3. Samples with a NaN reward (unscorable) are left out, of the loss and of the mean's denominator.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..papers import TOPR
from .base import PolicyLossOutput, register_policy_loss


# A log-ratio within this of 0 is π = μ up to rounding (log-probs from separate forward passes differ by ~1e-7), so
# it does not count as "truncated" in the metric.
_RATIO_NOISE = 1e-6

RATIO_LEVELS = ("sequence", "token")
TAPER_BY = ("reward", "coefficient")

__all__ = [
    "RATIO_LEVELS",
    "TAPER_BY",
    "topr_baseline_for_positive_fraction",
    "topr_effective_positive_fraction",
    "topr_loss",
]


def topr_loss(
    per_token_logps: torch.Tensor,
    behavior_per_token_logps: torch.Tensor,
    mask: torch.Tensor,
    rewards: torch.Tensor,
    baseline: float | torch.Tensor = 0.0,
    ratio_level: Literal["sequence", "token"] = "sequence",
    taper_by: Literal["reward", "coefficient"] = "reward",
) -> PolicyLossOutput:
    """TOPR loss: mean over sequences of ``−sg(α)·(R − c)·Σ_t logπ`` (see the module docstring).

    Args:
        per_token_logps: (B, T) log-probs of the sampled tokens under the trained policy (with grad).
        behavior_per_token_logps: (B, T) log-probs under the behaviour policy μ, or (B,) sequence log-probs
            (``Σ_t logμ``; only with ``ratio_level="sequence"``).
        mask: (B, T) 1 for completion tokens, 0 for padding.
        rewards: (B,) rewards (the paper uses +1 / −1); NaN marks a sample to leave out.
        baseline: the constant ``c``, a float or a (B,) tensor.
        ratio_level: ``"sequence"`` (the paper) or ``"token"`` (per-token taper).
        taper_by: which samples are tapered: ``"reward"`` (``R < 0``, the paper) or ``"coefficient"`` (``R − c < 0``).

    Returns:
        ``PolicyLossOutput(loss, metrics)`` with metrics ``topr/alpha_negative_mean`` (mean α over negatives),
        ``topr/frac_truncated`` (fraction of negatives whose ratio exceeded 1 and was cut to 1; log-ratios within
        1e-6 of 0 count as π = μ),
        ``topr/positive_fraction`` and ``topr/baseline``.
    """
    if ratio_level not in RATIO_LEVELS:
        raise ValueError(f"`ratio_level` must be one of {list(RATIO_LEVELS)}, got {ratio_level!r}.")
    if taper_by not in TAPER_BY:
        raise ValueError(f"`taper_by` must be one of {list(TAPER_BY)}, got {taper_by!r}.")
    if per_token_logps.shape != mask.shape:
        raise ValueError(f"`mask` {tuple(mask.shape)} must match `per_token_logps` {tuple(per_token_logps.shape)}.")
    mask = mask.to(per_token_logps.dtype)
    rewards = rewards.to(per_token_logps.dtype)
    valid = ~torch.isnan(rewards)
    coefficient = torch.where(valid, rewards - torch.as_tensor(baseline, dtype=rewards.dtype), 0.0)
    negative = valid & ((rewards < 0) if taper_by == "reward" else (coefficient < 0))

    current = per_token_logps.detach()
    if behavior_per_token_logps.dim() == 1:
        if ratio_level == "token":
            raise ValueError("ratio_level='token' needs per-token behaviour log-probs of shape (B, T), got (B,).")
        sequence_log_ratio = (current * mask).sum(dim=1) - behavior_per_token_logps
    elif behavior_per_token_logps.shape == per_token_logps.shape:
        token_log_ratio = (current - behavior_per_token_logps) * mask
        sequence_log_ratio = token_log_ratio.sum(dim=1)
    else:
        raise ValueError(
            f"`behavior_per_token_logps` must have shape {tuple(per_token_logps.shape)} or "
            f"({per_token_logps.size(0)},), got {tuple(behavior_per_token_logps.shape)}."
        )

    if ratio_level == "sequence":
        # α = min(π/μ, 1) for negatives, in log space so long sequences neither overflow nor underflow to NaN.
        alpha = torch.where(negative, torch.exp(sequence_log_ratio.clamp(max=0.0)), 1.0)
        weighted_logps = alpha.unsqueeze(1) * per_token_logps * mask
        truncated = sequence_log_ratio > _RATIO_NOISE
        alpha_negatives = alpha[negative]
    else:
        token_alpha = torch.where(negative.unsqueeze(1), torch.exp(token_log_ratio.clamp(max=0.0)), 1.0)
        weighted_logps = token_alpha * per_token_logps * mask
        negative_tokens = negative.unsqueeze(1) & (mask > 0)
        truncated = token_log_ratio > _RATIO_NOISE
        alpha_negatives = token_alpha[negative_tokens]

    per_sequence = -coefficient * weighted_logps.sum(dim=1)
    num_valid = valid.sum()
    loss = torch.where(valid, per_sequence, 0.0).sum() / num_valid.clamp(min=1)

    nan = torch.tensor(float("nan"), dtype=per_token_logps.dtype, device=per_token_logps.device)
    if ratio_level == "sequence":
        frac_truncated = truncated[negative].to(per_token_logps.dtype).mean() if negative.any() else nan
    else:
        frac_truncated = truncated[negative_tokens].to(per_token_logps.dtype).mean() if negative_tokens.any() else nan
    metrics = {
        "topr/alpha_negative_mean": alpha_negatives.mean() if alpha_negatives.numel() else nan,
        "topr/frac_truncated": frac_truncated,
        "topr/positive_fraction": (valid & ~negative).sum() / num_valid if num_valid > 0 else nan,
        "topr/baseline": torch.as_tensor(baseline, dtype=per_token_logps.dtype).float().mean(),
    }
    return PolicyLossOutput(loss, {name: value.detach() for name, value in metrics.items()})


def topr_effective_positive_fraction(positive_fraction: float, baseline: float) -> float:
    """Effective share of positives ``p̃ = p(1 − c) / (1 + (1 − 2p)c)`` when rewards are ±1 and the baseline is c."""
    p, c = float(positive_fraction), float(baseline)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"`positive_fraction` must be in [0, 1], got {p}.")
    if not -1.0 < c < 1.0:
        raise ValueError(f"`baseline` must be in (-1, 1) so no coefficient changes sign, got {c}.")
    return p * (1 - c) / (1 + (1 - 2 * p) * c)


def topr_baseline_for_positive_fraction(positive_fraction: float, target_positive_fraction: float) -> float:
    """The baseline c that turns a share ``p`` of positives into the effective share ``p̃`` (rewards ±1).

    ``c = (p − p̃) / (p̃(1 − 2p) + p)``, always in (−1, 1). With no positives or no negatives (p ∈ {0, 1}) no baseline
    can change the mix, so 0 is returned. The paper reports its best off-policy results with p̃ around 10-20 %.
    """
    p, target = float(positive_fraction), float(target_positive_fraction)
    if not 0.0 < target < 1.0:
        raise ValueError(f"`target_positive_fraction` must be in (0, 1), got {target}.")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"`positive_fraction` must be in [0, 1], got {p}.")
    if p in (0.0, 1.0):
        return 0.0
    return (p - target) / (target * (1 - 2 * p) + p)


@register_policy_loss("topr", display_name="TOPR", paper=TOPR)
def topr_policy_loss(
    per_token_logps: torch.Tensor,
    behavior_per_token_logps: torch.Tensor,
    mask: torch.Tensor,
    correct: torch.Tensor,
    scorable: torch.Tensor,
    rewards: torch.Tensor,
    positive_fraction: torch.Tensor | None = None,
    reward_source: Literal["signed_correctness", "reward"] = "signed_correctness",
    baseline: float = 0.0,
    target_positive_fraction: float | None = None,
    ratio_level: Literal["sequence", "token"] = "sequence",
    taper_by: Literal["reward", "coefficient"] = "reward",
) -> PolicyLossOutput:
    """TOPR as the trainer calls it: picks R (±1 correctness by default, as in the paper's math experiments, or the
    total reward) and the baseline (fixed, or from ``target_positive_fraction`` and the batch's share of correct
    samples ``positive_fraction``), then calls :func:`topr_loss`."""
    if reward_source == "signed_correctness":
        signed = torch.where(correct, 1.0, -1.0).to(per_token_logps.dtype)
        rewards = torch.where(scorable, signed, float("nan"))
    elif reward_source != "reward":
        raise ValueError(f"`reward_source` must be 'signed_correctness' or 'reward', got {reward_source!r}.")
    if target_positive_fraction is not None:
        if positive_fraction is None:
            raise ValueError("`target_positive_fraction` needs the batch's `positive_fraction`.")
        baseline = topr_baseline_for_positive_fraction(float(positive_fraction.flatten()[0]), target_positive_fraction)
    return topr_loss(
        per_token_logps,
        behavior_per_token_logps,
        mask,
        rewards,
        baseline=baseline,
        ratio_level=ratio_level,
        taper_by=taper_by,
    )

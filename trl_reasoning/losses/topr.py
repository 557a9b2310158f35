r"""TOPR: Tapered Off-Policy REINFORCE (Le Roux, Bellemare et al. 2025, arXiv 2503.14286).

Per sequence τ with reward R, baseline c, behaviour policy μ (the one that sampled τ) and trained policy π:

    α(τ) = 1                               if τ is positive (R ≥ 0)
    α(τ) = min(π(τ)/μ(τ), 1)               if τ is negative (R < 0), computed as exp(min(Σ_t(logπ − logμ), 0))
    ℓ(τ) = −sg(α(τ)) · (R − c) · Σ_t logπ(y_t | x, y_<t)

and the loss is the mean of ℓ over sequences. Positives get an SFT-like step whatever their probability; a negative's
push fades once π already makes it less likely than μ did, which keeps the objective bounded without a KL term.
On-policy (π = μ) every α is 1 and TOPR is REINFORCE with baseline c.

The baseline sets the effective share of positives in the data (``R ∈ {+1, −1}``):
``p̃ = p(1 − c) / (1 + (1 − 2p)c)``; :func:`topr_baseline_for_positive_fraction` inverts it. For any other rewards
(0/1 correctness, shaped rewards) the same quantity is the share of the coefficients' total weight that pushes up,
``p̃ = Σ [R − c]₊ / Σ |R − c|`` (:func:`topr_weighted_positive_fraction`; for ±1 rewards it is the formula above),
and :func:`topr_baseline_for_rewards` solves it for c from the rewards themselves. With 0/1 rewards,
``p̃ = p(1 − c) / (p(1 − c) + (1 − p)c)``: the paper's ±1 formula would give the wrong c.

Implementation details:

1. The ratio is sequence-level, as in the paper (Eq. 8, Algorithm 1). ``ratio_level="token"`` tapers each token of a
   negative by its own ratio ``min(exp(logπ_t − logμ_t), 1)`` instead, as the third-party implementations
   (Trinity-RFT, ROLL) do; the aggregation (token sum, then mean over sequences) is unchanged.
2. Negatives are the samples with ``R < 0`` (the paper, whose rewards are ±1 and whose baseline stays in (−1, 1), so
   ``R < 0`` and ``R − c < 0`` pick the same samples). With 0/1 or shaped rewards, or a baseline outside (−1, 1),
   samples with ``R ≥ 0`` can get a negative coefficient ``R − c``; ``taper_by="reward"`` would push them down
   untapered (naive off-policy REINFORCE, which the paper shows degenerates), so ``taper_by="coefficient"`` tapers
   every sample whose coefficient is negative, the paper's rule applied to the reward it actually trains on,
   ``R − c``. The configs refuse the combinations where the two differ with ``taper_by="reward"``.
3. Samples with a NaN reward (unscorable) are left out, of the loss and of the mean's denominator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..papers import TOPR
from ..parameters import MethodParams, finite, open_interval, param
from .base import PolicyLossOutput, register_policy_loss


# A log-ratio within this of 0 is π = μ up to rounding (log-probs from separate forward passes differ by ~1e-7), so
# it does not count as "truncated" in the metric.
_RATIO_NOISE = 1e-6

RATIO_LEVELS = ("sequence", "token")
TAPER_BY = ("reward", "coefficient")

__all__ = [
    "RATIO_LEVELS",
    "TAPER_BY",
    "TOPRParams",
    "TOPRPolicyLossParams",
    "topr_baseline_for_positive_fraction",
    "topr_baseline_for_rewards",
    "topr_effective_positive_fraction",
    "topr_loss",
    "topr_weighted_positive_fraction",
]


@dataclass(frozen=True)
class TOPRParams(MethodParams):
    """TOPR's parameters, shared by ``policy_loss="topr"`` (GRPO) and ``OfflineTOPRConfig``."""

    baseline: float = param(
        0.0,
        config="topr_baseline",
        check=finite,
        help="TOPR's baseline c: the loss uses (R - c). With rewards +1/-1, positives are weighted (1 - c) and "
        "negatives (1 + c), which sets the effective share of positives p(1-c)/(1+(1-2p)c); keep |c| < 1 so no "
        "coefficient changes sign. With 0/1 rewards they are weighted (1 - c) and c, and c > 0 needs "
        "topr_taper_by='coefficient'. Exclusive with topr_target_positive_fraction.",
    )
    target_positive_fraction: float | None = param(
        None,
        config="topr_target_positive_fraction",
        check=open_interval(0, 1, allow_none=True),
        help="None (use topr_baseline) or a share in (0, 1): the baseline is computed so that the effective share of "
        "positives sum[R - c]_+ / sum|R - c| equals it (per generation batch online, once from the training set "
        "offline). For +1/-1 rewards c = (p - target) / (target (1 - 2p) + p) with p the share of R >= 0 (the paper); "
        "for other rewards c is solved from the rewards. The paper reports its best off-policy results around "
        "0.1-0.2.",
    )
    ratio_level: str = param(
        "sequence",
        config="topr_ratio_level",
        choices=RATIO_LEVELS,
        help="Level of the importance ratio that tapers negatives: 'sequence' (the paper, one ratio pi(y)/mu(y) per "
        "completion) or 'token' (one ratio per token, as in Trinity-RFT/ROLL; offline it needs per-token behaviour "
        "log-probs).",
    )
    taper_by: str = param(
        "reward",
        config="topr_taper_by",
        choices=TAPER_BY,
        help="Which samples TOPR tapers: 'reward' (R < 0, the paper) or 'coefficient' (R - c < 0, which keeps the "
        "objective bounded with 0/1 or shaped rewards, or a baseline outside (-1, 1)).",
    )

    def validate(self) -> None:
        if self.target_positive_fraction is not None and self.baseline != 0.0:
            raise ValueError(
                f"topr_target_positive_fraction={self.target_positive_fraction} computes the baseline, so "
                f"topr_baseline={self.baseline} would be ignored: set only one of them."
            )


@dataclass(frozen=True)
class TOPRPolicyLossParams(TOPRParams):
    """TOPR in the GRPO trainer: also which rewards it trains on."""

    reward_source: str = param(
        "signed_correctness",
        config="topr_reward_source",
        choices=("signed_correctness", "reward"),
        help="Rewards TOPR trains on: 'signed_correctness' (+1 correct, -1 incorrect, as in the paper's math "
        "experiments) or 'reward' (the total reward as given; with a baseline, set topr_taper_by='coefficient' so "
        "that samples with 0 <= R < c are tapered too).",
    )

    def validate(self) -> None:
        super().validate()
        has_baseline = self.baseline != 0.0 or self.target_positive_fraction is not None
        if self.reward_source == "reward" and self.taper_by == "reward" and has_baseline:
            # With 0/1 (or shaped) rewards a sample with 0 <= R < c has a negative coefficient R - c: tapering only
            # R < 0 would push it down untapered, i.e. naive off-policy REINFORCE (TOPR, arXiv 2503.14286, §3).
            raise ValueError(
                f"topr_reward_source='reward' with a baseline (topr_baseline={self.baseline}, "
                f"topr_target_positive_fraction={self.target_positive_fraction}) needs topr_taper_by='coefficient': "
                "topr_taper_by='reward' tapers only R < 0, so with 0/1 rewards every wrong answer (R = 0 < c) would "
                "be pushed down without the taper (naive off-policy REINFORCE). Set topr_taper_by='coefficient', or "
                "use topr_reward_source='signed_correctness' (the paper's +1/-1)."
            )
        if not -1 < self.baseline < 1 and self.taper_by == "reward":
            raise ValueError(
                f"topr_baseline={self.baseline} is outside (-1, 1): with +1/-1 rewards some coefficients R - c "
                "change sign and are no longer tapered. Use a baseline in (-1, 1), or topr_taper_by='coefficient'."
            )


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


def _finite_rewards(rewards) -> list[float]:
    values = torch.as_tensor(rewards, dtype=torch.float64).detach().flatten().cpu()
    if torch.isinf(values).any():
        raise ValueError("`rewards` must be finite (NaN marks a sample to leave out), got an infinite value.")
    return values[~torch.isnan(values)].tolist()


def topr_weighted_positive_fraction(rewards, baseline: float) -> float:
    """The effective share of positives for any rewards: ``Σ [R − c]₊ / Σ |R − c|`` over the non-NaN rewards.

    It is the share of the coefficients' total weight that pushes samples up (ignoring the taper, as the paper
    does). For ±1 rewards and ``|c| < 1`` it equals :func:`topr_effective_positive_fraction`; for 0/1 rewards it is
    ``p(1 − c) / (p(1 − c) + (1 − p)c)``. NaN when every coefficient is 0 (or there are no rewards).
    """
    values, c = _finite_rewards(rewards), float(baseline)
    up = sum(max(r - c, 0.0) for r in values)
    total = sum(abs(r - c) for r in values)
    return up / total if total > 0 else float("nan")


def topr_baseline_for_rewards(rewards, target_positive_fraction: float) -> float:
    """The baseline c whose coefficients ``R − c`` give the effective share ``p̃`` of positives on these rewards.

    Solves ``Σ [R − c]₊ / Σ |R − c| = p̃`` (see :func:`topr_weighted_positive_fraction`) exactly: the left side
    falls strictly from 1 to 0 as c goes from the smallest to the largest reward, and between two consecutive
    reward values it is a ratio of linear functions, so ``c = ((1 − p̃)·ΣR₊ + p̃·ΣR₋) / ((1 − p̃)·n₊ + p̃·n₋)`` over
    the rewards above (₊) and below (₋) c. c always lies between the smallest and the largest reward, so with
    ``taper_by="coefficient"`` exactly the samples below it are tapered. For ±1 rewards this is the paper's
    ``c = (p − p̃)/(p̃(1 − 2p) + p)``; for 0/1 rewards ``c = p(1 − p̃)/(p(1 − p̃) + p̃(1 − p))``. When every reward is
    the same (or there are none) no baseline can change the mix and 0 is returned. NaN rewards are left out.
    """
    target = float(target_positive_fraction)
    if not 0.0 < target < 1.0:
        raise ValueError(f"`target_positive_fraction` must be in (0, 1), got {target}.")
    values = sorted(_finite_rewards(rewards))
    if not values or values[0] == values[-1]:
        return 0.0
    total, below_sum = sum(values), 0.0
    for count, (low, high) in enumerate(zip(values, values[1:], strict=False), start=1):
        below_sum += low  # the `count` smallest rewards are <= low, the others >= high
        if low == high:
            continue
        above_count, above_sum = len(values) - count, total - below_sum
        c = ((1 - target) * above_sum + target * below_sum) / ((1 - target) * above_count + target * count)
        if low <= c <= high:
            return c
    raise AssertionError("unreachable: the effective share is continuous and falls from 1 to 0")  # pragma: no cover


@register_policy_loss(
    "topr",
    display_name="TOPR",
    paper=TOPR,
    params=TOPRPolicyLossParams,
    inputs=(
        "per_token_logps",
        "behavior_per_token_logps",
        "mask",
        "correct",
        "scorable",
        "rewards",
        "positive_fraction",
    ),
    docs="methods/topr.md",
    recipe="recipes/configs/topr.yaml",
)
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
    total reward) and the baseline (fixed, or from ``target_positive_fraction``), then calls :func:`topr_loss`.

    With signed correctness the target's baseline comes from the generation batch's share of correct samples
    ``positive_fraction`` (the paper's ±1 formula). With ``reward_source="reward"`` it is solved from the rewards
    of this call's samples (:func:`topr_baseline_for_rewards`), since the ±1 formula does not hold for other
    rewards; use ``taper_by="coefficient"`` then, or samples with ``0 ≤ R < c`` are pushed down untapered."""
    if reward_source == "signed_correctness":
        signed = torch.where(correct, 1.0, -1.0).to(per_token_logps.dtype)
        rewards = torch.where(scorable, signed, float("nan"))
    elif reward_source != "reward":
        raise ValueError(f"`reward_source` must be 'signed_correctness' or 'reward', got {reward_source!r}.")
    if target_positive_fraction is not None:
        if reward_source == "reward":
            baseline = topr_baseline_for_rewards(rewards, target_positive_fraction)
        elif positive_fraction is None:
            raise ValueError("`target_positive_fraction` needs the batch's `positive_fraction`.")
        else:
            share = float(positive_fraction.flatten()[0])
            baseline = topr_baseline_for_positive_fraction(share, target_positive_fraction)
    return topr_loss(
        per_token_logps,
        behavior_per_token_logps,
        mask,
        rewards,
        baseline=baseline,
        ratio_level=ratio_level,
        taper_by=taper_by,
    )

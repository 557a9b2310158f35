"""BNPO: advantages normalised by a Beta density (Xiao, Zhang, Cao 2025, arXiv 2506.02864).

For prompt ``q`` with ``G`` rollouts and rewards ``R ∈ [0, 1]``, let ``p̂(q)`` be the group mean (an estimate of the
success probability). BNPO divides the group-centred reward by a Beta density evaluated at ``p̂``::

    A(q, o) = (R(q, o) − p̂(q)) / f(p̂(q); α, β),        f(p; α, β) = p^(α−1) (1 − p)^(β−1) / B(α, β)

with ``α, β`` fitted once per batch by the method of moments over the group means ``{p̂(q)}`` (one per prompt)::

    μ = mean(p̂),  s² = unbiased variance(p̂),  k = μ(1 − μ)/s² − 1,  a = kμ,  b = k(1 − μ)
    α = max(1 + a/3, 1),  β = max(1 + b/3, 1)

(``p ~ Beta(a, b)`` is the moment fit; ``α = 1 + a/3, β = 1 + b/3`` is the variance-minimising normaliser of the
paper's analysis). ``α = β = 1`` gives ``f ≡ 1``, REINFORCE with a group-mean baseline; ``α = β = 3/2`` gives
``f = (8/π)·sqrt(p(1 − p))``, i.e. GRPO with the population std, scaled by ``π/8``.

*Advantage decomposition* (several reward functions): one BNPO advantage per reward function, each with its own
``p̂``, ``α``, ``β``, then ``A = Σ_k w_k A^(k) / Σ_k |w_k|`` with ``w`` = the configured reward weights; with the
default weights of 1 this is the paper's plain average ``(1/K) Σ_k A^(k)``.

Implementation details:

1. ``α, β`` are fitted over every prompt of the batch the estimator is given: the trainer gathers the rewards of
   all processes first, so this is the global generation batch, as in the official code's per-batch fit.
2. Method of moments with the unbiased (Bessel) variance of the group means, then ``max(·, 1)``, as in the
   official code (``compute_bnpo_outcome_advantage``). An over-dispersed batch (``s² ≥ μ(1 − μ)``, so
   ``a, b ≤ 0``) thereby gets ``α = β = 1``: REINFORCE with a group-mean baseline.
3. ``1/f`` is computed in log space (``lgamma``; ``xlogy`` so that ``(α − 1)·log 0 = 0`` when ``α = 1``) and
   clamped to ``[0, max_inverse_density]`` (the code's 1e6) *before* it multiplies ``R − p̂``: at ``p̂ ∈ {0, 1}``
   the density can be 0 while ``R − p̂ = 0``, and ``0·inf`` would be NaN.
4. Zero batch variance (every prompt has the same ``p̂``; numerically ``s² ≤ 1e-12``): the moment fit divides by
   zero (the official code crashes in ``torch.distributions.Beta``). We fall back to ``α = β = 1``.
5. A single prompt in the batch (no variance to estimate): ``α = β = 1``, which is what the official code's
   ``μ = 0, s² = 1`` works out to.
6. Groups of size 1: ``p̂`` is the reward itself, so the advantage is 0. The official code sets ``p̂ = 0`` for such
   groups, giving ``A = R/f(0)``, up to ``1e6·R``; we follow the paper's definition instead.
7. NaN rewards (every reward function returned ``None``; with decomposition, that function returned ``None``) are
   left out of ``p̂`` (``nanmean``) and get advantage 0; the sample stays in the loss (``keep`` is all True, as for
   ``grpo``). Groups whose rewards are all NaN leave the moment fit.
8. Rewards are mapped by ``(R − min)/(max − min)`` with ``reward_range = (min, max)``, default ``(0, 1)`` as in the
   official code (a sequence of one pair per reward function is accepted with decomposition). A mapped reward
   outside ``[0, 1]`` (beyond a 1e-6 rounding tolerance) raises ``ValueError``: the Beta density is undefined
   there (the official code asserts ``0 ≤ p ≤ 1``).
9. Decomposition weights each function's advantage by its reward weight and divides by ``Σ_k |w_k|``; the official
   code takes the unweighted mean over the accuracy and format rewards, which is what the default weights of 1 give.
10. Computed in float64 on the rewards' device; the advantages are returned as float32.

Logged metrics: ``beta_norm/alpha`` and ``beta_norm/beta`` (with decomposition ``beta_norm/<name>/alpha`` and
``beta_norm/<name>/beta`` per reward function).

Run it with ``accelerate launch recipes/grpo.py --advantage_estimator beta_norm ...`` (see ``docs/methods/bnpo.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..papers import BNPO
from ..parameters import MethodParams, greater_than, param
from .base import AdvantageResult, check_groups, register_advantage_estimator


__all__ = ["beta_norm_advantages"]

# Batch variance of the group means at or below this counts as zero (identical p̂ up to rounding).
_ZERO_VARIANCE = 1e-12
# Mapped rewards this far outside [0, 1] are rounding error and are clipped; further out they raise.
_RANGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BetaNormParams(MethodParams):
    decompose: bool = param(
        False,
        config="beta_norm_decompose",
        help="BNPO's advantage decomposition (advantage_estimator='beta_norm'): one Beta-normalised advantage per "
        "reward function, each with its own alpha and beta, averaged with the reward weights.",
    )
    reward_range: list[float] = param(
        default_factory=lambda: [0.0, 1.0],
        config="beta_norm_reward_range",
        help="BNPO: (min, max) of the rewards, mapped to [0, 1] (default 0 1, the official code's). With "
        "beta_norm_decompose, also one pair per reward function: 2K numbers.",
    )
    max_inverse_density: float = param(
        1e6,
        config="beta_norm_max_inverse_density",
        check=greater_than(0),
        help="BNPO: upper clamp of 1/f, the inverse Beta density (the official code's 1e6).",
    )

    def validate(self) -> None:
        values = self.reward_range
        numbers = isinstance(values, list | tuple) and all(isinstance(v, int | float) for v in values)
        if numbers and (len(values) < 2 or len(values) % 2):
            raise ValueError(
                f"beta_norm_reward_range={list(values)!r} is invalid: give min and max, or with beta_norm_decompose "
                "one min, max pair per reward function (2K numbers)."
            )

    def as_kwargs(self) -> dict:
        kwargs = super().as_kwargs()
        converted = _reward_range_argument(self.reward_range)
        if converted is not None:
            kwargs["reward_range"] = converted
        return kwargs


def _reward_range_argument(values) -> tuple | list | None:
    """``(min, max)``, a list of K pairs (also given flat, as 2K numbers from a command line), or None if neither."""
    if not isinstance(values, list | tuple):
        return None
    if values and all(_is_pair_like(pair) for pair in values):
        return values
    if len(values) >= 2 and len(values) % 2 == 0 and all(isinstance(v, int | float) for v in values):
        return tuple(values) if len(values) == 2 else [tuple(values[i : i + 2]) for i in range(0, len(values), 2)]
    return None


@register_advantage_estimator(
    "beta_norm",
    display_name="BNPO",
    paper=BNPO,
    params=BetaNormParams,
    inputs=("rewards", "group_size", "rewards_per_func", "reward_weights", "reward_names"),
    docs="methods/bnpo.md",
    recipe="recipes/configs/bnpo.yaml",
)
def beta_norm_advantages(
    rewards: torch.Tensor,
    group_size: int,
    rewards_per_func: torch.Tensor | None = None,
    reward_weights: torch.Tensor | None = None,
    reward_names: Sequence[str] | None = None,
    decompose: bool = False,
    reward_range: Sequence[float] | Sequence[Sequence[float]] = (0.0, 1.0),
    max_inverse_density: float = 1e6,
) -> AdvantageResult:
    """BNPO advantages (Xiao et al. 2025, arXiv 2506.02864): ``A = (R − p̂)/f(p̂; α, β)``, ``f`` a Beta density.

    ``p̂`` is the group mean of the mapped reward ``(R − min)/(max − min)``; ``α, β`` are fitted once over the batch's
    group means by the method of moments, ``α = max(1 + a/3, 1)``, ``β = max(1 + b/3, 1)``. ``1/f`` is clamped to
    ``[0, max_inverse_density]``. See the module docstring for the guards (zero variance, one prompt, groups of one,
    NaN rewards).

    Args:
        rewards: (N,) total reward per completion (NaN where unscorable).
        group_size: completions per prompt.
        rewards_per_func: (N, K) reward of each function; needed with ``decompose=True``.
        reward_weights: (K,) weights of the reward functions (default 1 each), used with ``decompose=True``.
        reward_names: names of the K reward functions, for the metrics (default their indices).
        decompose: one BNPO advantage per reward function, combined as ``Σ_k w_k A^(k) / Σ_k |w_k|`` (the paper's
            average ``(1/K) Σ_k A^(k)`` with the default weights).
        reward_range: ``(min, max)`` of the rewards, mapped to ``[0, 1]``; with ``decompose=True`` also a
            sequence of K such pairs, one per reward function.
        max_inverse_density: upper clamp of ``1/f`` (the official code's 1e6).

    Returns:
        ``AdvantageResult(advantages (N,) float32, None, metrics)`` with the fitted ``α, β`` as metrics.
    """
    check_groups(rewards.numel(), group_size)
    max_inverse_density = float(max_inverse_density)
    if not (math.isfinite(max_inverse_density) and max_inverse_density > 0):
        raise ValueError(
            f"`max_inverse_density` must be a finite number > 0 (the official code uses 1e6), got {max_inverse_density}."
        )
    rewards = rewards.detach().to(torch.float64)

    if not decompose:
        low, high = _reward_ranges(reward_range, num_funcs=1, decompose=False)[0]
        mapped = _map_rewards(rewards, low, high, what="The total reward")
        advantages, alpha, beta = _bnpo(mapped, group_size, max_inverse_density)
        metrics = {"beta_norm/alpha": alpha, "beta_norm/beta": beta}
        return AdvantageResult(advantages.to(torch.float32), None, metrics)

    if rewards_per_func is None:
        raise ValueError(
            "beta_norm with decomposition (`beta_norm_decompose=True`) needs `rewards_per_func`, the (N, K) rewards "
            "of each reward function; the trainer passes them, pass them yourself when calling the estimator directly."
        )
    per_func = rewards_per_func.detach().to(device=rewards.device, dtype=torch.float64)
    if per_func.dim() != 2 or per_func.size(0) != rewards.numel():
        raise ValueError(
            f"`rewards_per_func` must have shape (N, K) = ({rewards.numel()}, K), got {tuple(per_func.shape)}."
        )
    num_funcs = per_func.size(1)
    if reward_weights is None:
        weights = torch.ones(num_funcs, dtype=torch.float64, device=per_func.device)
    else:
        weights = torch.as_tensor(reward_weights).detach().to(device=per_func.device, dtype=torch.float64).flatten()
        if weights.numel() != num_funcs:
            raise ValueError(f"`reward_weights` has {weights.numel()} entries for {num_funcs} reward functions.")
    total_weight = weights.abs().sum().item()
    if not (math.isfinite(total_weight) and total_weight > 0):
        raise ValueError(f"beta_norm decomposition needs reward weights with Σ|w| > 0, got {weights.tolist()}.")
    if reward_names is not None and len(reward_names) != num_funcs:
        raise ValueError(f"`reward_names` has {len(reward_names)} entries for {num_funcs} reward functions.")
    names = [str(name) for name in reward_names] if reward_names is not None else [str(k) for k in range(num_funcs)]

    advantages = torch.zeros_like(rewards)
    metrics = {}
    for k, ((low, high), name) in enumerate(zip(_reward_ranges(reward_range, num_funcs, True), names, strict=True)):
        mapped = _map_rewards(per_func[:, k], low, high, what=f"Reward function {name!r}")
        func_advantages, alpha, beta = _bnpo(mapped, group_size, max_inverse_density)
        advantages += weights[k] * func_advantages
        metrics[f"beta_norm/{name}/alpha"] = alpha
        metrics[f"beta_norm/{name}/beta"] = beta
    return AdvantageResult((advantages / total_weight).to(torch.float32), None, metrics)


def _bnpo(rewards: torch.Tensor, group_size: int, max_inverse_density: float) -> tuple[torch.Tensor, float, float]:
    """Advantages (float64, 0 where the reward is NaN) and the fitted ``α, β`` for rewards already in [0, 1]."""
    grouped = rewards.view(-1, group_size)
    group_mean = torch.nanmean(grouped, dim=1)  # NaN only for groups whose rewards are all NaN
    alpha, beta = _fit_alpha_beta(group_mean[~torch.isnan(group_mean)])

    p = torch.nan_to_num(group_mean, nan=0.5)  # all-NaN groups: any p, their advantages are zeroed below
    log_density = (
        torch.xlogy(torch.tensor(alpha - 1.0, dtype=p.dtype, device=p.device), p)
        + torch.xlogy(torch.tensor(beta - 1.0, dtype=p.dtype, device=p.device), 1.0 - p)
        + math.lgamma(alpha + beta)
        - math.lgamma(alpha)
        - math.lgamma(beta)
    )
    # 1/f = exp(−log f), clamped before it multiplies R − p̂ (f = 0 gives −log f = +inf → the clamp, never 0·inf).
    inverse_density = torch.exp(torch.clamp(-log_density, max=math.log(max_inverse_density)))

    centred = grouped - group_mean.unsqueeze(1)
    advantages = centred * inverse_density.unsqueeze(1)
    advantages = torch.where(torch.isnan(grouped), torch.zeros_like(advantages), advantages)
    return advantages.flatten(), alpha, beta


def _fit_alpha_beta(group_means: torch.Tensor) -> tuple[float, float]:
    """Method-of-moments fit over the group means, then ``α = max(1 + a/3, 1)``, ``β = max(1 + b/3, 1)``."""
    if group_means.numel() < 2:  # one prompt: the official code's μ = 0, s² = 1 gives α = β = 1
        return 1.0, 1.0
    mu = group_means.mean()
    variance = group_means.var(unbiased=True)
    if variance.item() <= _ZERO_VARIANCE:  # identical p̂: the moment fit divides by zero
        return 1.0, 1.0
    k = mu * (1.0 - mu) / variance - 1.0
    a, b = (k * mu).item(), (k * (1.0 - mu)).item()
    return max(1.0 + a / 3.0, 1.0), max(1.0 + b / 3.0, 1.0)


def _reward_ranges(reward_range, num_funcs: int, decompose: bool) -> list[tuple[float, float]]:
    """``reward_range`` as one ``(min, max)`` pair per reward function (one pair without decomposition)."""
    per_func = decompose and not isinstance(reward_range, str) and all(_is_pair_like(x) for x in reward_range)
    pairs = list(reward_range) if per_func else [reward_range] * num_funcs
    hint = "Set it with `beta_norm_reward_range: [min, max]`" + (
        " (or one min, max pair per reward function)." if decompose else "."
    )
    if len(pairs) != num_funcs:
        raise ValueError(f"`reward_range` has {len(pairs)} (min, max) pairs for {num_funcs} reward functions. {hint}")
    out = []
    for pair in pairs:
        try:
            low, high = (math.nan, math.nan) if isinstance(pair, str) else (float(x) for x in pair)
        except (TypeError, ValueError):
            low = high = math.nan
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(
                f"`reward_range` must be a finite (min, max) pair with min < max, got {reward_range!r}. {hint}"
            )
        out.append((low, high))
    return out


def _is_pair_like(x) -> bool:
    return (isinstance(x, Sequence) and not isinstance(x, str)) or (isinstance(x, torch.Tensor) and x.dim() > 0)


def _map_rewards(rewards: torch.Tensor, low: float, high: float, what: str) -> torch.Tensor:
    """``(R − low)/(high − low)``; NaN stays NaN, values beyond ``[0, 1]`` past rounding raise ``ValueError``."""
    mapped = (rewards - low) / (high - low)
    outside = (mapped < -_RANGE_TOLERANCE) | (mapped > 1.0 + _RANGE_TOLERANCE)
    if outside.any():
        bad = rewards[outside]
        raise ValueError(
            f"{what} takes values outside reward_range=({low:g}, {high:g}) (min {bad.min().item():g}, max "
            f"{bad.max().item():g}); BNPO's Beta density needs rewards mapped into [0, 1]. Set `reward_range` to the "
            "rewards' (min, max) via `advantage_estimator_kwargs`, e.g. advantage_estimator_kwargs={'reward_range': "
            "[-1, 1]}; with several reward functions whose weighted sum leaves the range, use "
            "`beta_norm_decompose=True` to normalise each reward function separately."
        )
    return mapped.clamp(0.0, 1.0)  # clamp keeps NaN as NaN

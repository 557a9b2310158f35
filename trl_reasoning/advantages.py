"""Advantage estimators: pure, vectorised functions from per-sample outcomes to per-sample advantages.

Every estimator is looked up by name with :func:`get_advantage_estimator` and called with keyword arguments only.
The standard keyword arguments (the trainer always passes all of them) are

==================== =============== ==========================================================================
name                 type            meaning
==================== =============== ==========================================================================
``rewards``          float (N,)      total reward of each completion (weighted sum over reward functions; NaN
                                     where every reward function returned ``None``)
``group_size``       int             completions per prompt; samples ``[k*G, (k+1)*G)`` form group ``k``
``correct``          bool (N,)       the correctness reward is ``>= correct_threshold``
``scorable``         bool (N,)       the correctness reward is not ``None`` (False rows are never trained on)
``lengths``          int (N,)        completion length in tokens
``max_length``       int             the configured generation budget (``max_completion_length``)
``rewards_per_func`` float (N, K)    every reward function's value (NaN for ``None``)
``reward_weights``   float (K,)      the configured reward weights
==================== =============== ==========================================================================

plus the estimator's own parameters (e.g. ``positive_weight``). An estimator ignores what it does not need.
It returns the advantages, a float tensor of shape (N,), and may also return a boolean ``keep`` mask: samples with
``keep=False`` are *dropped* from the loss (advantage 0 and no tokens in the token-mean denominator).

Write your own::

    @register_advantage_estimator("centered", paper=None)
    def centered(rewards, group_size):
        grouped = rewards.view(-1, group_size)
        return (grouped - grouped.mean(dim=1, keepdim=True)).flatten()

and select it with ``ReasoningGRPOConfig(advantage_estimator="centered")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from .papers import DEEPSEEKMATH, NEGATIVE_REINFORCEMENT
from .registry import Registry


__all__ = [
    "AdvantageEstimator",
    "AdvantageResult",
    "advantage_estimator_names",
    "get_advantage_estimator",
    "grpo_advantages",
    "negative_sample_reinforcement",
    "positive_sample_reinforcement",
    "register_advantage_estimator",
    "weighted_reinforce",
]


class AdvantageResult(NamedTuple):
    """Advantages (N,) and the mask of samples that stay in the loss (N,)."""

    advantages: torch.Tensor
    keep: torch.Tensor


@dataclass(frozen=True)
class AdvantageEstimator:
    """A registered estimator: the function plus what the trainer needs to know about it.

    Calling it returns the advantages with dropped samples set to 0; :meth:`compute` also returns the ``keep`` mask.
    """

    name: str
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, torch.Tensor]]
    display_name: str
    paper: dict[str, str] | None = None
    drops_samples: bool = False
    _accepted: frozenset[str] | None = field(default=None, repr=False, compare=False)
    _required: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_function(cls, name: str, fn: Callable, **info: Any) -> AdvantageEstimator:
        params = inspect.signature(fn).parameters.values()
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        accepted = None if takes_any else frozenset(p.name for p in named)
        required = frozenset(p.name for p in named if p.default is inspect.Parameter.empty)
        return cls(name, fn, _accepted=accepted, _required=required, **info)

    def compute(self, **kwargs: Any) -> AdvantageResult:
        missing = self._required - kwargs.keys()
        if missing:
            raise TypeError(f"Advantage estimator {self.name!r} needs the keyword argument(s) {sorted(missing)}.")
        if self._accepted is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._accepted}
        out = self.fn(**kwargs)
        advantages, keep = out if isinstance(out, tuple) else (out, None)
        if not isinstance(advantages, torch.Tensor) or advantages.dim() != 1:
            raise TypeError(
                f"Advantage estimator {self.name!r} must return a 1-D float tensor of advantages, got "
                f"{type(advantages).__name__} with shape {getattr(advantages, 'shape', None)}."
            )
        rewards = kwargs.get("rewards")
        if isinstance(rewards, torch.Tensor) and advantages.shape != rewards.shape:
            raise ValueError(
                f"Advantage estimator {self.name!r} returned shape {tuple(advantages.shape)} for "
                f"{tuple(rewards.shape)} rewards: return one advantage per sample."
            )
        if keep is None:
            keep = torch.ones_like(advantages, dtype=torch.bool)
        elif keep.dtype != torch.bool or keep.shape != advantages.shape:
            raise ValueError(
                f"Advantage estimator {self.name!r} returned a keep mask of dtype {keep.dtype} and shape "
                f"{tuple(keep.shape)}; it must be a bool tensor shaped like the advantages {tuple(advantages.shape)}."
            )
        advantages = torch.where(keep, advantages, torch.zeros_like(advantages))
        if not torch.isfinite(advantages).all():
            bad = (~torch.isfinite(advantages)).nonzero().flatten()[:5].tolist()
            raise ValueError(
                f"Advantage estimator {self.name!r} returned non-finite advantages for kept samples (first indices "
                f"{bad}). Return a `keep` mask that drops those samples, or guard the computation."
            )
        return AdvantageResult(advantages, keep)

    def __call__(self, **kwargs: Any) -> torch.Tensor:
        return self.compute(**kwargs).advantages


_ESTIMATORS: Registry[AdvantageEstimator] = Registry("advantage estimator", "advantage_estimator")


def register_advantage_estimator(
    name: str,
    *,
    display_name: str | None = None,
    paper: dict[str, str] | None = None,
    drops_samples: bool = False,
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the advantage estimator ``name`` (a decorator; refuses duplicate names).

    Args:
        name: the value users put in ``ReasoningGRPOConfig.advantage_estimator``.
        display_name: the method's name in model cards (defaults to ``name``).
        paper: ``{"title", "id", "citation"}`` of the paper, for model cards.
        drops_samples: whether the estimator can return ``keep=False``; such estimators need a token-level
            ``loss_type`` so that dropped samples leave the loss denominator.
    """

    def make_entry(fn: Callable) -> AdvantageEstimator:
        return AdvantageEstimator.from_function(
            name, fn, display_name=display_name or name, paper=paper, drops_samples=drops_samples
        )

    return _ESTIMATORS.decorator(name, make_entry)


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    """Look up a registered estimator; an unknown name raises ``ValueError`` listing the valid names."""
    return _ESTIMATORS.get(name)


def advantage_estimator_names() -> list[str]:
    """The registered estimator names, sorted."""
    return _ESTIMATORS.names()


# --------------------------------------------------------------------------------------------------------------------
# helpers


def _nanstd(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """Sample std ignoring NaNs (Bessel's correction; NaN for fewer than 2 values), as in TRL's ``nanstd``."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    variance = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = torch.sum(~torch.isnan(x), dim=dim, keepdim=True)
    correction = count / (count - 1)
    correction = torch.where(count > 1, correction, torch.full_like(correction, float("nan")))
    variance *= correction
    std = torch.sqrt(variance)
    if keepdim:
        return std
    return std.squeeze() if dim is None else std.squeeze(dim)


def _check_groups(n: int, group_size: int) -> None:
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"`group_size` must be a positive int, got {group_size!r}.")
    if n % group_size != 0:
        raise ValueError(f"{n} samples do not split into whole groups of `group_size`={group_size}.")


def _scorable_mask(correct: torch.Tensor, scorable: torch.Tensor | None) -> torch.Tensor:
    if correct.dtype != torch.bool:
        raise TypeError(f"`correct` must be a bool tensor, got {correct.dtype}.")
    return torch.ones_like(correct) if scorable is None else scorable.to(torch.bool)


# --------------------------------------------------------------------------------------------------------------------
# built-in estimators


@register_advantage_estimator("grpo", display_name="GRPO", paper=DEEPSEEKMATH)
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
    _check_groups(rewards.numel(), group_size)
    if aggregation == "sum_then_normalize":
        grouped = rewards.view(-1, group_size)
        mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size, dim=0)
        if scale in ("group", "none"):
            std = (
                _nanstd(grouped, dim=1).repeat_interleave(group_size, dim=0)
                if group_size > 1
                else torch.zeros_like(rewards)
            )
        else:
            std = _nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        advantages = rewards - mean
        if scale != "none":
            advantages = advantages / (std + 1e-4)
    elif aggregation == "normalize_then_sum":
        if rewards_per_func is None or reward_weights is None:
            raise ValueError("aggregation='normalize_then_sum' needs `rewards_per_func` and `reward_weights`.")
        num_funcs = rewards_per_func.size(1)
        grouped = rewards_per_func.view(-1, group_size, num_funcs)
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = _nanstd(grouped, dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean_k)
        per_func = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, num_funcs)
        total = (per_func * reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
        total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        std = _nanstd(total).expand_as(total) if total.numel() > 1 else torch.zeros_like(total)
        advantages = (total - torch.nanmean(total)) / (std + 1e-4)
    else:
        raise ValueError(f"`aggregation` must be 'sum_then_normalize' or 'normalize_then_sum', got {aggregation!r}.")
    return torch.nan_to_num(advantages, nan=0.0)


@register_advantage_estimator("psr", display_name="PSR", paper=NEGATIVE_REINFORCEMENT, drops_samples=True)
def positive_sample_reinforcement(
    correct: torch.Tensor, scorable: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive Sample Reinforcement (Zhu et al. 2025, arXiv 2506.01347): ``A = +1`` on correct samples.

    Incorrect samples are dropped (``keep=False``). No baseline, no std scaling.
    """
    keep = correct & _scorable_mask(correct, scorable)
    return keep.float(), keep


@register_advantage_estimator("nsr", display_name="NSR", paper=NEGATIVE_REINFORCEMENT, drops_samples=True)
def negative_sample_reinforcement(
    correct: torch.Tensor, scorable: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative Sample Reinforcement (Zhu et al. 2025, arXiv 2506.01347): ``A = −1`` on incorrect samples.

    Correct samples are dropped (``keep=False``). No baseline, no std scaling.
    """
    keep = ~correct & _scorable_mask(correct, scorable)
    return -keep.float(), keep


@register_advantage_estimator(
    "w_reinforce", display_name="W-REINFORCE", paper=NEGATIVE_REINFORCEMENT, drops_samples=True
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
    keep = _scorable_mask(correct, scorable)
    advantages = torch.where(correct, float(positive_weight), -1.0).to(torch.float32)
    return advantages, keep

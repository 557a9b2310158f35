"""The advantage-estimator registry: how an estimator is declared, looked up, called and checked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import torch

from ..registry import KeywordSignature, Registry


__all__ = [
    "AdvantageEstimator",
    "AdvantageResult",
    "advantage_estimator_names",
    "get_advantage_estimator",
    "register_advantage_estimator",
]


class AdvantageResult(NamedTuple):
    """Advantages (N,), the mask of samples that stay in the loss (N,), and scalar metrics to log.

    An estimator may return a tensor, an ``(advantages, keep)`` tuple, or an ``AdvantageResult`` (to report
    metrics, e.g. fitted parameters; the trainer logs them under their names, once per generation batch).
    """

    advantages: torch.Tensor
    keep: torch.Tensor | None = None
    metrics: Mapping[str, float] = MappingProxyType({})


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
    signature: KeywordSignature | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_function(cls, name: str, fn: Callable, **info: Any) -> AdvantageEstimator:
        return cls(name, fn, signature=KeywordSignature.of(fn), **info)

    def compute(self, **kwargs: Any) -> AdvantageResult:
        signature = self.signature or KeywordSignature.of(self.fn)
        kwargs = signature.select(f"Advantage estimator {self.name!r}", kwargs)
        out = self.fn(**kwargs)
        if isinstance(out, AdvantageResult):
            advantages, keep, metrics = out
        elif isinstance(out, tuple):
            (advantages, keep), metrics = out, {}
        else:
            advantages, keep, metrics = out, None, {}
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
        return AdvantageResult(advantages, keep, dict(metrics))

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


def nanstd(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
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


def check_groups(n: int, group_size: int) -> None:
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"`group_size` must be a positive int, got {group_size!r}.")
    if n % group_size != 0:
        raise ValueError(f"{n} samples do not split into whole groups of `group_size`={group_size}.")


def scorable_mask(correct: torch.Tensor, scorable: torch.Tensor | None) -> torch.Tensor:
    if correct.dtype != torch.bool:
        raise TypeError(f"`correct` must be a bool tensor, got {correct.dtype}.")
    return torch.ones_like(correct) if scorable is None else scorable.to(torch.bool)

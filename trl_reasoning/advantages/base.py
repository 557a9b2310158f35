"""The advantage-estimator registry: how an estimator is declared, looked up, called and checked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import torch

from ..parameters import MethodParams
from ..registry import Method, Registry


__all__ = [
    "AdvantageEstimator",
    "AdvantageResult",
    "advantage_estimator_names",
    "advantage_estimators",
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
class AdvantageEstimator(Method):
    """A registered estimator: the function, its parameters and inputs, and what the trainer needs to know.

    ``estimator(**kwargs)`` returns the advantages with dropped samples set to 0; ``estimator.compute(**kwargs)``
    also returns the ``keep`` mask and the metrics. Both take keyword arguments: the estimator's inputs and
    parameters (defaults for those not given); arguments it does not declare are left out.
    """

    drops_samples: bool = False

    family: ClassVar[str] = "advantage estimator"
    selector: ClassVar[str] = "advantage_estimator"

    def compute(self, **kwargs: Any) -> AdvantageResult:
        return self._checked(self.call_with_keywords(kwargs), kwargs.get("rewards"))

    def run(self, inputs: Mapping[str, Any], params: Any = None) -> AdvantageResult:
        """The trainer's call: exactly the declared inputs and the configured parameters."""
        return self._checked(self.call(inputs, params), inputs.get("rewards"))

    def _checked(self, out: Any, rewards: Any) -> AdvantageResult:
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
    paper: Mapping[str, str] | None = None,
    drops_samples: bool = False,
    params: type[MethodParams] | None = None,
    inputs: tuple[str, ...] | None = None,
    docs: str | None = None,
    recipe: str | None = None,
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the advantage estimator ``name`` (a decorator; refuses duplicate names).

    Args:
        name: the value users put in ``ReasoningGRPOConfig.advantage_estimator``.
        display_name: the method's name in model cards (defaults to ``name``).
        paper: ``{"title", "id", "citation"}`` of the paper, for model cards and the paper index.
        drops_samples: whether the estimator can return ``keep=False``; such estimators need a token-level
            ``loss_type`` so that dropped samples leave the loss denominator.
        params: the estimator's parameters (a :class:`~trl_reasoning.parameters.MethodParams` dataclass). Built-in
            estimators' parameters are config fields; a custom estimator's are set with
            ``advantage_estimator_kwargs``.
        inputs: the inputs it reads (standard inputs or registered providers, :mod:`trl_reasoning.inputs`).
            Default: the function's parameters that are not in ``params``.
        docs: its docs page (relative to ``docs/``); recipe: its recipe config (relative to the repository).
    """

    def make_entry(fn: Callable) -> AdvantageEstimator:
        info = dict(display_name=display_name, paper=paper, docs=docs, recipe=recipe, drops_samples=drops_samples)
        return AdvantageEstimator.create(name, fn, params=params, inputs=inputs, **info)

    return _ESTIMATORS.decorator(name, make_entry)


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    """Look up a registered estimator; an unknown name raises ``ValueError`` listing the valid names."""
    return _ESTIMATORS.get(name)


def advantage_estimator_names() -> list[str]:
    """The registered estimator names, sorted."""
    return _ESTIMATORS.names()


def advantage_estimators() -> list[AdvantageEstimator]:
    """The registered estimators, sorted by name."""
    return [_ESTIMATORS.get(name) for name in _ESTIMATORS.names()]


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

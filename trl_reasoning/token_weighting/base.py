"""The token-weighting registry: per-token advantages from per-sample ones, declared like estimators and losses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import torch

from ..parameters import MethodParams
from ..registry import Method, Registry


__all__ = [
    "TokenWeighting",
    "TokenWeightingResult",
    "get_token_weighting",
    "register_token_weighting",
    "token_weighting_names",
    "token_weightings",
]


class TokenWeightingResult(NamedTuple):
    """Per-token advantages (B, T) of this process's completions and scalar metrics to log (already global)."""

    advantages: torch.Tensor
    metrics: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True)
class TokenWeighting(Method):
    """A registered token weighting: turns each sample's advantage ``A_i`` into per-token advantages ``A_{i,t}``.

    The function reads its declared inputs (``advantages`` (B,), this process's, and e.g. ``entropies`` or a
    provider's token scores) and returns a (B, T) tensor or a :class:`TokenWeightingResult`. TRL's loss takes (B, T)
    advantages as they are; a registered policy loss does if it declares ``token_advantages=True``.
    """

    family: ClassVar[str] = "token weighting"
    selector: ClassVar[str] = "token_weighting"

    def run(self, inputs: Mapping[str, Any], params: Any = None) -> TokenWeightingResult:
        out = self.call(inputs, params)
        advantages, metrics = (out.advantages, out.metrics) if isinstance(out, TokenWeightingResult) else (out, {})
        reference = inputs.get("completion_mask")
        if not isinstance(advantages, torch.Tensor) or advantages.dim() != 2:
            raise TypeError(
                f"Token weighting {self.name!r} must return (B, T) per-token advantages, got "
                f"{type(advantages).__name__} with shape {getattr(advantages, 'shape', None)}."
            )
        if reference is not None and advantages.shape != reference.shape:
            raise ValueError(
                f"Token weighting {self.name!r} returned shape {tuple(advantages.shape)}; the completions are "
                f"{tuple(reference.shape)}."
            )
        if not torch.isfinite(advantages).all():
            raise ValueError(f"Token weighting {self.name!r} returned non-finite per-token advantages.")
        return TokenWeightingResult(advantages, dict(metrics))


_TOKEN_WEIGHTINGS: Registry[TokenWeighting] = Registry("token weighting", "token_weighting")


def register_token_weighting(
    name: str,
    *,
    display_name: str | None = None,
    paper: Mapping[str, str] | None = None,
    params: type[MethodParams] | None = None,
    inputs: tuple[str, ...] | None = None,
    docs: str | None = None,
    recipe: str | None = None,
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the token weighting ``name`` (a decorator; refuses duplicate names).

    Args: as :func:`~trl_reasoning.advantages.register_advantage_estimator`; a custom weighting's parameters are
    set with ``token_weighting_kwargs``.
    """

    def make_entry(fn: Callable) -> TokenWeighting:
        info = dict(display_name=display_name, paper=paper, docs=docs, recipe=recipe)
        return TokenWeighting.create(name, fn, params=params, inputs=inputs, **info)

    return _TOKEN_WEIGHTINGS.decorator(name, make_entry)


def get_token_weighting(name: str) -> TokenWeighting:
    """Look up a registered token weighting; an unknown name raises ``ValueError`` listing the valid names."""
    return _TOKEN_WEIGHTINGS.get(name)


def token_weighting_names() -> list[str]:
    return _TOKEN_WEIGHTINGS.names()


def token_weightings() -> list[TokenWeighting]:
    return [_TOKEN_WEIGHTINGS.get(name) for name in _TOKEN_WEIGHTINGS.names()]

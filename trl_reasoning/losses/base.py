"""The policy-loss registry: how a policy loss is declared, looked up, called and checked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import torch

from ..registry import KeywordSignature, Registry


__all__ = [
    "TRL_POLICY_LOSS",
    "PolicyLoss",
    "PolicyLossOutput",
    "get_policy_loss",
    "policy_loss_names",
    "register_policy_loss",
]

TRL_POLICY_LOSS = "trl"
"""The reserved name that keeps TRL's own ``loss_type`` machinery (the default of ``ReasoningGRPOConfig``)."""


class PolicyLossOutput(NamedTuple):
    """A scalar loss to minimise (mean over this call's sequences or prompts) and scalar metrics to log.

    Metric values are 0-d tensors or floats; NaN means "nothing to measure in this call" (e.g. no negatives) and
    is ignored when the trainer averages over processes and steps.
    """

    loss: torch.Tensor
    metrics: Mapping[str, torch.Tensor | float] = MappingProxyType({})


@dataclass(frozen=True)
class PolicyLoss:
    """A registered policy loss: the function plus what the trainer needs to know about it.

    Attributes:
        needs_whole_groups: the loss couples the completions of one prompt (e.g. DRPO), so every call must see
            whole groups, laid out contiguously (samples ``[k*G, (k+1)*G)`` form group ``k``).
    """

    name: str
    fn: Callable[..., PolicyLossOutput | torch.Tensor]
    display_name: str
    paper: dict[str, str] | None = None
    needs_whole_groups: bool = False
    signature: KeywordSignature | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_function(cls, name: str, fn: Callable, **info: Any) -> PolicyLoss:
        return cls(name, fn, signature=KeywordSignature.of(fn), **info)

    def takes(self, argument: str) -> bool:
        """Whether the loss reads the standard argument ``argument`` (e.g. ``"advantages"``)."""
        return (self.signature or KeywordSignature.of(self.fn)).takes(argument)

    def compute(self, **kwargs: Any) -> PolicyLossOutput:
        signature = self.signature or KeywordSignature.of(self.fn)
        out = self.fn(**signature.select(f"Policy loss {self.name!r}", kwargs))
        loss, metrics = (out.loss, out.metrics) if isinstance(out, PolicyLossOutput) else (out, {})
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise TypeError(
                f"Policy loss {self.name!r} must return a scalar tensor (or a PolicyLossOutput), got "
                f"{type(loss).__name__} with shape {getattr(loss, 'shape', None)}."
            )
        if not torch.isfinite(loss):
            raise ValueError(
                f"Policy loss {self.name!r} returned a non-finite loss ({loss.item()}). Check the inputs for "
                "NaN/inf log-probs, or guard the computation."
            )
        return PolicyLossOutput(loss, dict(metrics))


_POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss", "policy_loss")


def register_policy_loss(
    name: str,
    *,
    display_name: str | None = None,
    paper: dict[str, str] | None = None,
    needs_whole_groups: bool = False,
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the policy loss ``name`` (a decorator; refuses duplicates and the reserved ``"trl"``).

    The function takes keyword arguments (any subset of the standard ones listed in :mod:`trl_reasoning.losses`,
    plus its own parameters) and returns a scalar loss or a :class:`PolicyLossOutput`.

    Args:
        name: the value users put in ``ReasoningGRPOConfig.policy_loss``.
        display_name: the method's name in model cards (defaults to ``name``).
        paper: ``{"title", "id", "citation"}`` of the paper, for model cards.
        needs_whole_groups: whether each call must see whole groups (the trainer then shuffles and splits its
            generation batch by group, and the config checks the batch sizes).
    """
    if name == TRL_POLICY_LOSS:
        raise ValueError(f"{TRL_POLICY_LOSS!r} is reserved for TRL's own loss_type machinery; pick another name.")

    def make_entry(fn: Callable) -> PolicyLoss:
        return PolicyLoss.from_function(
            name, fn, display_name=display_name or name, paper=paper, needs_whole_groups=needs_whole_groups
        )

    return _POLICY_LOSSES.decorator(name, make_entry)


def get_policy_loss(name: str) -> PolicyLoss:
    """Look up a registered policy loss; an unknown name raises ``ValueError`` listing the valid names."""
    if name == TRL_POLICY_LOSS:
        raise ValueError(
            f"{TRL_POLICY_LOSS!r} is not a registered function: it selects TRL's own loss (see `loss_type`). "
            f"Registered policy losses: {policy_loss_names()}."
        )
    return _POLICY_LOSSES.get(name)


def policy_loss_names() -> list[str]:
    """The registered policy-loss names, sorted (``"trl"``, TRL's own loss, is always valid too)."""
    return _POLICY_LOSSES.names()

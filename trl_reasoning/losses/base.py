"""The policy-loss registry: how a policy loss is declared, looked up, called and checked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import torch

from ..parameters import MethodParams
from ..registry import Method, Registry


__all__ = [
    "TRL_POLICY_LOSS",
    "PolicyLoss",
    "PolicyLossOutput",
    "get_policy_loss",
    "policy_loss_names",
    "policy_losses",
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
class PolicyLoss(Method):
    """A registered policy loss: the function, its parameters and inputs, and what the trainer needs to know.

    Attributes:
        needs_whole_groups: the loss couples the completions of one prompt (e.g. DRPO), so every call must see
            whole groups, laid out contiguously (samples ``[k*G, (k+1)*G)`` form group ``k``).
        token_advantages: the loss reads ``advantages`` in a way that also holds per token ((B, T)), so it composes
            with a ``token_weighting``.
    """

    needs_whole_groups: bool = False
    token_advantages: bool = False

    family: ClassVar[str] = "policy loss"
    selector: ClassVar[str] = "policy_loss"

    def takes(self, argument: str) -> bool:
        """Whether the loss reads the input ``argument`` (e.g. ``"advantages"``)."""
        return argument in self.inputs

    def compute(self, **kwargs: Any) -> PolicyLossOutput:
        return self._checked(self.call_with_keywords(kwargs))

    def run(self, inputs: Mapping[str, Any], params: Any = None) -> PolicyLossOutput:
        """The trainer's call: exactly the declared inputs and the configured parameters."""
        return self._checked(self.call(inputs, params))

    def _checked(self, out: Any) -> PolicyLossOutput:
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
    paper: Mapping[str, str] | None = None,
    needs_whole_groups: bool = False,
    token_advantages: bool = False,
    params: type[MethodParams] | None = None,
    inputs: tuple[str, ...] | None = None,
    docs: str | None = None,
    recipe: str | None = None,
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the policy loss ``name`` (a decorator; refuses duplicates and the reserved ``"trl"``).

    The function takes keyword arguments (its inputs, see :mod:`trl_reasoning.losses`, and its parameters) and
    returns a scalar loss or a :class:`PolicyLossOutput`.

    Args:
        name: the value users put in ``ReasoningGRPOConfig.policy_loss``.
        display_name: the method's name in model cards (defaults to ``name``).
        paper: ``{"title", "id", "citation"}`` of the paper, for model cards and the paper index.
        needs_whole_groups: whether each call must see whole groups (the trainer then shuffles and splits its
            generation batch by group, and the config checks the batch sizes).
        token_advantages: whether ``advantages`` may be per token ((B, T)), so a ``token_weighting`` applies.
        params: the loss's parameters (a :class:`~trl_reasoning.parameters.MethodParams` dataclass); a custom loss's
            are set with ``policy_loss_kwargs``.
        inputs: the inputs it reads (standard inputs or registered providers). Default: the function's parameters
            that are not in ``params``.
        docs: its docs page (relative to ``docs/``); recipe: its recipe config (relative to the repository).
    """
    if name == TRL_POLICY_LOSS:
        raise ValueError(f"{TRL_POLICY_LOSS!r} is reserved for TRL's own loss_type machinery; pick another name.")

    def make_entry(fn: Callable) -> PolicyLoss:
        info = dict(
            display_name=display_name,
            paper=paper,
            docs=docs,
            recipe=recipe,
            needs_whole_groups=needs_whole_groups,
            token_advantages=token_advantages,
        )
        return PolicyLoss.create(name, fn, params=params, inputs=inputs, **info)

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


def policy_losses() -> list[PolicyLoss]:
    """The registered policy losses, sorted by name."""
    return [_POLICY_LOSSES.get(name) for name in _POLICY_LOSSES.names()]

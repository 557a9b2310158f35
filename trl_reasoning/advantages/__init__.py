"""Advantage estimators: pure, vectorised functions from per-sample outcomes to per-sample advantages.

Every estimator is looked up by name with :func:`get_advantage_estimator` (``ReasoningGRPOConfig.advantage_estimator``
selects one) and called with keyword arguments only: the inputs it declares (:mod:`trl_reasoning.inputs`: the
rewards, the group size, the per-function rewards and weights, the budget, and providers such as ``correct``,
``scorable``, ``lengths``, ``group_accuracy``) and the fields of its parameters dataclass
(:mod:`trl_reasoning.parameters`), nothing else. It returns the advantages, a float tensor of shape (N,), and may
also return a boolean ``keep`` mask: samples with ``keep=False`` are *dropped* from the loss (advantage 0 and no tokens
in the token-mean denominator). To log scalars, return an :class:`AdvantageResult` with ``metrics``.

Built-ins, one module each; every module of this package is imported, so a new one registers itself
(``trl_reasoning.manifest.names("advantage estimator")`` lists them). ``docs/extending.md`` shows how to add one.
"""

from ..registry import import_method_modules
from .base import (
    AdvantageEstimator,
    AdvantageResult,
    advantage_estimator_names,
    get_advantage_estimator,
    register_advantage_estimator,
)
from .beta_norm import beta_norm_advantages
from .drpo_length import drpo_length_advantages
from .grpo import grpo_advantages
from .negative_reinforcement import negative_sample_reinforcement, positive_sample_reinforcement, weighted_reinforce


__all__ = [
    "AdvantageEstimator",
    "AdvantageResult",
    "advantage_estimator_names",
    "beta_norm_advantages",
    "drpo_length_advantages",
    "get_advantage_estimator",
    "grpo_advantages",
    "negative_sample_reinforcement",
    "positive_sample_reinforcement",
    "register_advantage_estimator",
    "weighted_reinforce",
]

import_method_modules(__name__, __path__)  # every method module registers itself, new ones included

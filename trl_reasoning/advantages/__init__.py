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
``reward_names``     list[str] (K)   the reward functions' names (as logged under ``rewards/<name>/mean``)
==================== =============== ==========================================================================

plus the estimator's own parameters (e.g. ``positive_weight``). An estimator ignores what it does not need.
It returns the advantages, a float tensor of shape (N,), and may also return a boolean ``keep`` mask: samples with
``keep=False`` are *dropped* from the loss (advantage 0 and no tokens in the token-mean denominator). To log
scalars (fitted parameters, diagnostics), return an :class:`AdvantageResult` with ``metrics``.

Built-ins, one module each: ``grpo`` (:mod:`.grpo`), ``psr`` / ``nsr`` / ``w_reinforce``
(:mod:`.negative_reinforcement`), ``drpo_length`` (:mod:`.drpo_length`), ``beta_norm`` (:mod:`.beta_norm`).

Write your own::

    @register_advantage_estimator("centered", paper=None)
    def centered(rewards, group_size):
        grouped = rewards.view(-1, group_size)
        return (grouped - grouped.mean(dim=1, keepdim=True)).flatten()

and select it with ``ReasoningGRPOConfig(advantage_estimator="centered")``.
"""

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

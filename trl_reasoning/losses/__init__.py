"""Policy losses: pure tensor functions from log-probs and outcomes to a scalar loss, looked up by name.

``ReasoningGRPOConfig.policy_loss`` picks one; the default ``"trl"`` keeps TRL's own ``loss_type`` machinery
untouched. A registered loss is called with keyword arguments only, and takes any subset of the standard ones:

============================ =============== =======================================================================
name                         type            meaning
============================ =============== =======================================================================
``per_token_logps``          float (B, T)    log-probs of the completion tokens under the trained policy (grad)
``old_per_token_logps``      float (B, T)    the same under the policy that generated the batch (no grad)
``behavior_per_token_logps`` float (B, T)    the sampling policy's own log-probs: vLLM's (or a ``rollout_func``'s)
                                             when available, else ``old_per_token_logps``
``mask``                     float (B, T)    1 for tokens in the loss (completion, not tool output), 0 otherwise
``advantages``               float (B,)      the configured advantage estimator's output
``rewards``                  float (B,)      total reward (NaN where every reward function returned ``None``)
``correct``                  bool (B,)       the correctness reward is ``>= correct_threshold``
``scorable``                 bool (B,)       the correctness reward is not ``None``
``lengths``                  int (B,)        completion length in tokens
``positive_fraction``        float (B,)      share of correct samples in the global generation batch (broadcast)
``group_size``               int             completions per prompt
``max_length``               int             the generation budget (``max_completion_length``)
============================ =============== =======================================================================

plus the loss's own parameters. A loss returns a scalar tensor or a :class:`PolicyLossOutput` (loss and metrics);
the trainer scales it for gradient accumulation. A loss that couples the completions of one prompt registers with
``needs_whole_groups=True``: the trainer then shuffles and splits batches by whole groups.

Built-ins, one module each: ``topr`` (:mod:`.topr`), ``drpo`` (:mod:`.drpo`). The pairwise cDPO loss
(:func:`cdpo_loss`, :mod:`.cdpo`) is used by ``CriticalTokenDPOTrainer``, not by the GRPO trainer's registry.
"""

from .base import (
    TRL_POLICY_LOSS,
    PolicyLoss,
    PolicyLossOutput,
    get_policy_loss,
    policy_loss_names,
    register_policy_loss,
)
from .cdpo import CDPO_FORMS, cdpo_loss
from .drpo import drpo_length_weights, drpo_loss
from .topr import (
    topr_baseline_for_positive_fraction,
    topr_baseline_for_rewards,
    topr_effective_positive_fraction,
    topr_loss,
    topr_weighted_positive_fraction,
)


__all__ = [
    "CDPO_FORMS",
    "TRL_POLICY_LOSS",
    "PolicyLoss",
    "PolicyLossOutput",
    "cdpo_loss",
    "drpo_length_weights",
    "drpo_loss",
    "get_policy_loss",
    "policy_loss_names",
    "register_policy_loss",
    "topr_baseline_for_positive_fraction",
    "topr_baseline_for_rewards",
    "topr_effective_positive_fraction",
    "topr_loss",
    "topr_weighted_positive_fraction",
]

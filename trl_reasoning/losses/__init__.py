"""Policy losses: pure tensor functions from log-probs and outcomes to a scalar loss, looked up by name.

``ReasoningGRPOConfig.policy_loss`` picks one; the default ``"trl"`` keeps TRL's own ``loss_type`` machinery
untouched. A registered loss is called with keyword arguments only: the inputs it declares (:mod:`trl_reasoning.inputs`:
``per_token_logps``, ``old_per_token_logps``, ``behavior_per_token_logps``, ``mask``, ``advantages``, ``group_size``,
``max_length``, the rewards, and providers such as ``correct``, ``scorable``, ``lengths``, ``positive_fraction``,
which the trainer computes per generation batch and carries in the batch) and the fields of its parameters dataclass.
It returns a scalar tensor or a :class:`PolicyLossOutput` (loss and metrics); the trainer scales it for gradient
accumulation. A loss that couples the completions of one prompt registers with ``needs_whole_groups=True``; one that
trains on per-token advantages (and so composes with a ``token_weighting``) with ``token_advantages=True``.

Built-ins, one module each: ``topr`` (:mod:`.topr`), ``drpo`` (:mod:`.drpo`). The pairwise cDPO loss
(:func:`cdpo_loss`, :mod:`.cdpo`) is used by ``CriticalTokenDPOTrainer``, not by the GRPO trainer's registry.
"""

from ..registry import import_method_modules
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

import_method_modules(__name__, __path__)  # every method module registers itself, new ones included

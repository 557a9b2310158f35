"""trl-reasoning: reasoning-RL methods from recent papers as drop-in TRL trainers."""

from .advantages import (
    AdvantageEstimator,
    AdvantageResult,
    advantage_estimator_names,
    get_advantage_estimator,
    register_advantage_estimator,
)
from .losses import (
    PolicyLoss,
    PolicyLossOutput,
    drpo_loss,
    get_policy_loss,
    policy_loss_names,
    register_policy_loss,
    topr_loss,
)
from .trainers import ReasoningGRPOConfig, ReasoningGRPOTrainer
from .trainers.topr_offline import OfflineTOPRConfig, OfflineTOPRTrainer


__version__ = "0.1.0"

__all__ = [
    "AdvantageEstimator",
    "AdvantageResult",
    "OfflineTOPRConfig",
    "OfflineTOPRTrainer",
    "PolicyLoss",
    "PolicyLossOutput",
    "ReasoningGRPOConfig",
    "ReasoningGRPOTrainer",
    "advantage_estimator_names",
    "drpo_loss",
    "get_advantage_estimator",
    "get_policy_loss",
    "policy_loss_names",
    "register_advantage_estimator",
    "register_policy_loss",
    "topr_loss",
]

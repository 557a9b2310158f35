"""trl-reasoning: reasoning-RL methods from recent papers as drop-in TRL trainers."""

from .advantages import (
    AdvantageEstimator,
    AdvantageResult,
    advantage_estimator_names,
    get_advantage_estimator,
    register_advantage_estimator,
)
from .trainers import ReasoningGRPOConfig, ReasoningGRPOTrainer


__version__ = "0.1.0"

__all__ = [
    "AdvantageEstimator",
    "AdvantageResult",
    "ReasoningGRPOConfig",
    "ReasoningGRPOTrainer",
    "advantage_estimator_names",
    "get_advantage_estimator",
    "register_advantage_estimator",
]

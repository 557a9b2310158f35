"""trl-reasoning: reasoning-RL methods from recent papers as drop-in TRL trainers.

The top-level names are imported lazily, on first use: ``import trl_reasoning.rewards`` (for example in a reward
worker process) costs neither torch nor TRL.
"""

import importlib
from typing import TYPE_CHECKING


__version__ = "0.1.0"

_LAZY_NAMES = {
    "AdvantageEstimator": ".advantages",
    "AdvantageResult": ".advantages",
    "advantage_estimator_names": ".advantages",
    "get_advantage_estimator": ".advantages",
    "register_advantage_estimator": ".advantages",
    "PolicyLoss": ".losses",
    "PolicyLossOutput": ".losses",
    "cdpo_loss": ".losses",
    "drpo_loss": ".losses",
    "get_policy_loss": ".losses",
    "policy_loss_names": ".losses",
    "register_policy_loss": ".losses",
    "topr_loss": ".losses",
    "MethodParams": ".parameters",
    "param": ".parameters",
    "InputContext": ".inputs",
    "register_input_provider": ".inputs",
    "input_provider_names": ".inputs",
    "TokenWeightingResult": ".token_weighting",
    "get_token_weighting": ".token_weighting",
    "register_token_weighting": ".token_weighting",
    "token_weighting_names": ".token_weighting",
    "ReasoningGRPOConfig": ".trainers",
    "ReasoningGRPOTrainer": ".trainers",
    "CriticalTokenDPOConfig": ".trainers.cdpo_trainer",
    "CriticalTokenDPOTrainer": ".trainers.cdpo_trainer",
    "OfflineTOPRConfig": ".trainers.topr_offline",
    "OfflineTOPRTrainer": ".trainers.topr_offline",
}

__all__ = [
    "AdvantageEstimator",
    "AdvantageResult",
    "CriticalTokenDPOConfig",
    "CriticalTokenDPOTrainer",
    "InputContext",
    "MethodParams",
    "OfflineTOPRConfig",
    "OfflineTOPRTrainer",
    "PolicyLoss",
    "PolicyLossOutput",
    "ReasoningGRPOConfig",
    "ReasoningGRPOTrainer",
    "TokenWeightingResult",
    "advantage_estimator_names",
    "cdpo_loss",
    "drpo_loss",
    "get_advantage_estimator",
    "get_policy_loss",
    "get_token_weighting",
    "input_provider_names",
    "param",
    "policy_loss_names",
    "register_advantage_estimator",
    "register_input_provider",
    "register_policy_loss",
    "register_token_weighting",
    "token_weighting_names",
    "topr_loss",
]


def __getattr__(name: str):
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_NAMES))


if TYPE_CHECKING:
    from .advantages import (
        AdvantageEstimator,
        AdvantageResult,
        advantage_estimator_names,
        get_advantage_estimator,
        register_advantage_estimator,
    )
    from .inputs import InputContext, input_provider_names, register_input_provider
    from .losses import (
        PolicyLoss,
        PolicyLossOutput,
        cdpo_loss,
        drpo_loss,
        get_policy_loss,
        policy_loss_names,
        register_policy_loss,
        topr_loss,
    )
    from .parameters import MethodParams, param
    from .token_weighting import (
        TokenWeightingResult,
        get_token_weighting,
        register_token_weighting,
        token_weighting_names,
    )
    from .trainers import ReasoningGRPOConfig, ReasoningGRPOTrainer
    from .trainers.cdpo_trainer import CriticalTokenDPOConfig, CriticalTokenDPOTrainer
    from .trainers.topr_offline import OfflineTOPRConfig, OfflineTOPRTrainer

from .cdpo_trainer import CriticalTokenDPOConfig, CriticalTokenDPOTrainer
from .grpo_config import ReasoningGRPOConfig
from .grpo_trainer import ReasoningGRPOTrainer
from .topr_offline import OfflineTOPRConfig, OfflineTOPRTrainer


__all__ = [
    "CriticalTokenDPOConfig",
    "CriticalTokenDPOTrainer",
    "OfflineTOPRConfig",
    "OfflineTOPRTrainer",
    "ReasoningGRPOConfig",
    "ReasoningGRPOTrainer",
]

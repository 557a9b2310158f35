from .grpo_config import ReasoningGRPOConfig
from .grpo_trainer import ReasoningGRPOTrainer
from .topr_offline import OfflineTOPRConfig, OfflineTOPRTrainer


__all__ = ["OfflineTOPRConfig", "OfflineTOPRTrainer", "ReasoningGRPOConfig", "ReasoningGRPOTrainer"]

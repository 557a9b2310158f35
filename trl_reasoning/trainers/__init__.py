from .grpo_config import ReasoningGRPOConfig
from .grpo_trainer import ReasoningGRPOTrainer


__all__ = ["ReasoningGRPOConfig", "ReasoningGRPOTrainer"]

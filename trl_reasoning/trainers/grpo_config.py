"""ReasoningGRPOConfig: TRL's GRPOConfig plus the fields that pick and parameterise an advantage estimator."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from ..advantages import advantage_estimator_names, get_advantage_estimator


# TRL loss types that normalise by a token count (so a dropped sample, whose tokens are masked out, leaves the
# denominator). The others average over sequences or divide by a constant.
TOKEN_LEVEL_LOSS_TYPES = ("dapo", "bnpo", "cispo", "vespo")


@dataclass
class ReasoningGRPOConfig(GRPOConfig):
    r"""
    Configuration for [`ReasoningGRPOTrainer`]: every field of `trl.GRPOConfig`, plus:

    Parameters:
        advantage_estimator (`str`, defaults to `"grpo"`):
            Name of a registered advantage estimator (`trl_reasoning.advantage_estimator_names()`). Built-ins:
            `"grpo"` (TRL's own computation, bit-for-bit), `"psr"`, `"nsr"`, `"w_reinforce"`.
        positive_weight (`float`, defaults to `0.1`):
            λ of W-REINFORCE: the advantage of a correct sample (incorrect samples get −1). Must be >= 0.
        correctness_reward (`str`, `int` or `None`, defaults to `None`):
            Name (as logged under `rewards/<name>/mean`) or index of the reward function that decides whether a
            completion is correct. `None` means the first reward function.
        correct_threshold (`float`, defaults to `1.0`):
            A completion is correct when its correctness reward is `>= correct_threshold`.
        advantage_estimator_kwargs (`dict` or `None`, defaults to `None`):
            Extra keyword arguments for a custom estimator; they override the built-in fields of the same name.
    """

    advantage_estimator: str = field(
        default="grpo",
        metadata={
            "help": "Advantage estimator, by registered name. Built-ins: 'grpo' (TRL's group-normalised advantages, "
            "bit-for-bit; honours `scale_rewards` and `multi_objective_aggregation`), 'psr' (+1 on correct samples, "
            "incorrect ones dropped), 'nsr' (-1 on incorrect samples, correct ones dropped), 'w_reinforce' "
            "(+positive_weight on correct, -1 on incorrect). Register your own with "
            "`trl_reasoning.register_advantage_estimator`."
        },
    )
    positive_weight: float = field(
        default=0.1,
        metadata={
            "help": "W-REINFORCE's lambda: advantage of a correct sample (incorrect samples get -1). Must be >= 0; "
            "0 is NSR, 1 is plain REINFORCE. The paper recommends 0.1."
        },
    )
    correctness_reward: str | None = field(
        default=None,
        metadata={
            "help": "Name or index of the reward function whose value decides correctness (the names are those "
            "logged as `rewards/<name>/mean`). Default: the first reward function."
        },
    )
    correct_threshold: float = field(
        default=1.0,
        metadata={"help": "A completion is correct when its correctness reward is >= this value."},
    )
    advantage_estimator_kwargs: dict | str | None = field(
        default=None,
        metadata={
            "help": "Extra keyword arguments passed to the advantage estimator (for custom estimators), as a dict "
            "or a JSON string. They override built-in fields of the same name."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.advantage_estimator_kwargs, str):
            import json

            self.advantage_estimator_kwargs = json.loads(self.advantage_estimator_kwargs)
        if isinstance(self.correctness_reward, str) and self.correctness_reward.lstrip("-").isdigit():
            self.correctness_reward = int(self.correctness_reward)  # the CLI passes indices as strings

        if self.advantage_estimator not in advantage_estimator_names():
            raise ValueError(
                f"advantage_estimator={self.advantage_estimator!r} is not a registered advantage estimator. "
                f"Valid values: {advantage_estimator_names()} (register your own with "
                "`trl_reasoning.register_advantage_estimator`)."
            )
        if not (isinstance(self.positive_weight, int | float) and self.positive_weight >= 0):
            raise ValueError(
                f"positive_weight={self.positive_weight!r} is invalid: W-REINFORCE's lambda must be a number >= 0 "
                "(the paper uses 0.1; 0 is NSR, 1 is plain REINFORCE)."
            )
        if not math.isfinite(self.correct_threshold):
            raise ValueError(f"correct_threshold={self.correct_threshold!r} must be a finite number, e.g. 1.0.")
        if isinstance(self.correctness_reward, int) and self.correctness_reward < 0:
            raise ValueError(
                f"correctness_reward={self.correctness_reward} must be a reward function's name or a non-negative "
                "index into `reward_funcs`."
            )

        estimator = get_advantage_estimator(self.advantage_estimator)
        if estimator.drops_samples and self.loss_type not in TOKEN_LEVEL_LOSS_TYPES:
            raise ValueError(
                f"advantage_estimator={self.advantage_estimator!r} drops samples from the loss, which needs a "
                f"token-level loss_type so they leave the denominator; got loss_type={self.loss_type!r}. Set "
                f"loss_type to one of {list(TOKEN_LEVEL_LOSS_TYPES)} ('dapo', TRL's default, is the token-mean the "
                "paper uses)."
            )
        if self.advantage_estimator != "grpo" and self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                f"multi_objective_aggregation={self.multi_objective_aggregation!r} only applies to "
                f"advantage_estimator='grpo'; {self.advantage_estimator!r} reads the rewards directly. Leave "
                "multi_objective_aggregation at 'sum_then_normalize'."
            )

    def advantage_kwargs(self) -> dict[str, Any]:
        """Estimator parameters taken from this config (each estimator ignores the ones it does not use)."""
        kwargs = {
            "scale": self.scale_rewards,
            "aggregation": self.multi_objective_aggregation,
            "positive_weight": self.positive_weight,
            "max_length": self.max_completion_length,
        }
        kwargs.update(self.advantage_estimator_kwargs or {})
        return kwargs

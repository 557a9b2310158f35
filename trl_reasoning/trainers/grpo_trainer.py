"""ReasoningGRPOTrainer: ``trl.GRPOTrainer`` with the advantage estimator picked by name.

TRL computes rewards for the whole global batch (gathered across processes), turns them into GRPO advantages and
keeps its own slice. This trainer overrides two methods, once each:

* ``_calculate_rewards`` — unchanged, but keeps the gathered per-function rewards of the current batch;
* ``_generate_and_score_completions`` — runs TRL's version, then recomputes the advantages of the global batch with
  the configured estimator, keeps this process's slice, masks out dropped samples (advantage 0, no tokens in the
  loss denominator) and logs the method's metrics.

Everything else (generation with transformers or vLLM, PEFT, ``loss_type``, reference-model KL, logging,
checkpointing) is TRL's own code.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer

from ..advantages import get_advantage_estimator
from .grpo_config import ReasoningGRPOConfig


class ReasoningGRPOTrainer(GRPOTrainer):
    """Drop-in replacement for `trl.GRPOTrainer` whose advantages come from `args.advantage_estimator`.

    With `advantage_estimator="grpo"` (the default) it trains bit-for-bit like `trl.GRPOTrainer`. See
    [`ReasoningGRPOConfig`] for the fields, and `trl_reasoning.advantages` for the estimators.
    """

    _tag_names = ["trl", "grpo", "trl-reasoning"]

    def __init__(self, model, reward_funcs=None, args: ReasoningGRPOConfig | None = None, *pos_args, **kwargs):
        if args is None:
            model_id = model if isinstance(model, str) else model.config._name_or_path
            args = ReasoningGRPOConfig(f"{str(model_id).split('/')[-1]}-GRPO")
        elif not isinstance(args, ReasoningGRPOConfig):
            raise TypeError(
                f"`args` must be a trl_reasoning.ReasoningGRPOConfig, got {type(args).__name__}. Build it with "
                "ReasoningGRPOConfig(**your_grpo_config.to_dict()) to keep your settings."
            )
        self.advantage_estimator = get_advantage_estimator(args.advantage_estimator)
        super().__init__(model, reward_funcs, args, *pos_args, **kwargs)
        self._correctness_index = self._resolve_correctness_reward(args.correctness_reward)
        self._last_rewards_per_func: torch.Tensor | None = None
        estimator = self.advantage_estimator
        # Instance attributes shadow TRL's class attributes, so the model card names the method and its paper.
        self._name = estimator.display_name if estimator.name == "grpo" else f"GRPO with {estimator.display_name}"
        if estimator.paper is not None:
            self._paper = estimator.paper
        self._tag_names = [*type(self)._tag_names, estimator.name]

    def _resolve_correctness_reward(self, selector: str | int | None) -> int:
        names = list(self.reward_func_names)
        if selector is None:
            return 0
        if isinstance(selector, int):
            if selector < len(names):
                return selector
        elif selector in names:
            return names.index(selector)
        raise ValueError(
            f"correctness_reward={selector!r} names no reward function. Valid values: the names {names} or an "
            f"index in 0..{len(names) - 1}."
        )

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        rewards_per_func, self._last_rewards_per_func = self._last_rewards_per_func, None
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval

        # Lengths and loss-token counts of the whole global batch, in TRL's process order.
        completion_mask = output["completion_mask"]
        loss_mask = completion_mask if "tool_mask" not in output else completion_mask * output["tool_mask"]
        local_counts = torch.stack([completion_mask.sum(dim=1), loss_mask.sum(dim=1)], dim=1)
        lengths, loss_tokens = self.accelerator.gather(local_counts).unbind(dim=1)

        # The total reward exactly as TRL forms it (weighted nansum; NaN where every function returned None).
        weights = self.reward_weights.to(rewards_per_func.device)
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        correctness = rewards_per_func[:, self._correctness_index]
        correct = correctness >= self.args.correct_threshold
        scorable = ~torch.isnan(correctness)

        advantages, keep, estimator_metrics = self.advantage_estimator.compute(
            rewards=rewards,
            group_size=group_size,
            correct=correct,
            scorable=scorable,
            lengths=lengths,
            rewards_per_func=rewards_per_func,
            reward_weights=weights,
            **self.args.advantage_kwargs(),
        )

        local = slice(self.accelerator.process_index * len(inputs), (self.accelerator.process_index + 1) * len(inputs))
        output["advantages"] = advantages[local]
        if not keep.all():
            local_keep = keep[local].unsqueeze(1).to(completion_mask.dtype)
            output["completion_mask"] = completion_mask * local_keep
            if "tool_mask" in output:
                output["tool_mask"] = output["tool_mask"] * local_keep
            output["num_items_in_batch"] = (loss_tokens * keep).sum()

        # TRL logged its own GRPO advantages for the completions table; show the ones actually trained on.
        logged = self._logs["advantages"]
        for _ in range(min(len(advantages), len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())
        self._log_advantage_metrics(mode, advantages, keep, correct & scorable)
        return output

    def _log_advantage_metrics(
        self, mode: str, advantages: torch.Tensor, keep: torch.Tensor, correct: torch.Tensor
    ) -> None:
        metrics = self._metrics[mode]
        metrics["advantage/frac_correct"].append(correct.float().mean().item())
        metrics["advantage/frac_dropped"].append((~keep).float().mean().item())
        kept_correct, kept_incorrect = keep & correct, keep & ~correct
        if kept_correct.any():
            metrics["advantage/mean_correct"].append(advantages[kept_correct].mean().item())
        if kept_incorrect.any():
            metrics["advantage/mean_incorrect"].append(advantages[kept_incorrect].mean().item())
        if keep.any():
            metrics["advantage/mean_abs"].append(advantages[keep].abs().mean().item())

"""ReasoningGRPOTrainer: ``trl.GRPOTrainer`` with the advantage estimator, policy loss and token weighting by name.

TRL computes rewards for the whole global batch (gathered across processes), turns them into GRPO advantages and
keeps its own slice. This trainer overrides five methods, once each:

* ``_calculate_rewards`` — unchanged, but keeps the gathered per-function rewards of the current batch;
* ``_generate_and_score_completions`` — runs TRL's version, then recomputes the advantages of the global batch with
  the configured estimator, keeps this process's slice, applies the token weighting, masks out dropped samples
  (advantage 0, no tokens in the loss denominator), adds to the batch the inputs the policy loss declares, and logs
  the methods' metrics. Each method gets the inputs it declares, from an :class:`~trl_reasoning.inputs.InputContext`
  whose providers run only when declared, and its own parameters (``ReasoningGRPOConfig.method_params``);
* ``_prepare_inputs`` — TRL's, except that for a loss that couples the completions of a prompt (DRPO) the
  generation batch is shuffled and split by whole groups instead of by sample, and that with
  ``dropped_samples="remove"`` the kept samples are packed into the first optimizer steps (``dropped_samples.py``);
* ``training_step`` — TRL's, except that with ``dropped_samples="remove"`` the micro-batches of an optimizer step
  holding no kept sample are not run and that step's ``optimizer.step()`` is skipped;
* ``_compute_loss`` — TRL's for ``policy_loss="trl"``; otherwise the same log-prob computation followed by the
  registered policy loss.

With ``token_weighting`` set, each sample's advantage becomes a per-token one, which TRL's loss (and a registered loss
with ``token_advantages=True``) accepts as a (B, T) tensor (:mod:`trl_reasoning.token_weighting`).

Everything else (generation with transformers or vLLM, PEFT, ``loss_type``, reference-model KL, logging,
checkpointing) is TRL's own code.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import (
    shuffle_sequence_dict,
    split_pixel_values_by_grid,
    split_tensor_dict,
    unsplit_pixel_values_by_grid,
)

from .. import manifest
from ..inputs import (
    SAMPLE_INPUTS,
    STANDARD_INPUTS,
    InputContext,
    check_inputs,
    get_input_provider,
    input_provider_names,
)
from .common import bind_parent_arguments, mean_over_processes, resolve_config, signature_of
from .dropped_samples import pack_kept_samples, real_optimizer_steps
from .grpo_config import ReasoningGRPOConfig


# Model inputs besides the token ids that TRL's log-prob helper accepts (vision-language models).
_MULTIMODAL_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)

# The inputs a policy loss reads from the generation batch are added to it under this prefix (shuffled and split with
# it); the loss's other inputs are computed when it is called.
_PREFIX = "reasoning_"
_LOSS_CALL_INPUTS = frozenset(STANDARD_INPUTS["policy loss"]) - SAMPLE_INPUTS
_FAMILIES = manifest.FAMILIES


def shuffle_groups(batch: dict[str, Any], group_size: int) -> dict[str, Any]:
    """Shuffle a batch by whole groups: samples ``[k*G, (k+1)*G)`` stay together and in order."""
    size = len(batch["prompt_ids"])
    order = torch.randperm(size // group_size).unsqueeze(1) * group_size + torch.arange(group_size)
    index = order.flatten()

    def permute(value):
        if value is None or (isinstance(value, torch.Tensor) and value.dim() == 0):
            return value
        if isinstance(value, torch.Tensor):
            return value[index.to(value.device)]
        return [value[i] for i in index.tolist()]

    return {key: permute(value) for key, value in batch.items()}


class ReasoningGRPOTrainer(GRPOTrainer):
    """Drop-in replacement for `trl.GRPOTrainer` whose advantages come from `args.advantage_estimator` and whose loss
    comes from `args.policy_loss`.

    With the defaults (`advantage_estimator="grpo"`, `policy_loss="trl"`) it trains bit-for-bit like
    `trl.GRPOTrainer`. See [`ReasoningGRPOConfig`] for the fields, `trl_reasoning.advantages` for the estimators and
    `trl_reasoning.losses` for the policy losses.
    """

    _tag_names = ["trl", "grpo", "trl-reasoning"]

    @signature_of(GRPOTrainer.__init__)
    def __init__(self, *args, **kwargs):
        """Takes exactly `trl.GRPOTrainer`'s arguments, positionally or by keyword. `args` may be a
        [`ReasoningGRPOConfig`], a `trl.GRPOConfig` (or a subclass), upgraded with this package's defaults, or None."""
        arguments = bind_parent_arguments(GRPOTrainer.__init__, self, args, kwargs)
        model = arguments["model"]
        args = arguments["args"] = resolve_config(model, arguments["args"], ReasoningGRPOConfig, "GRPO", GRPOConfig)
        self.advantage_estimator = args.selected("advantage estimator")
        self.policy_loss = args.selected("policy loss")
        self.token_weighting = args.selected("token weighting")
        if args.dropped_samples == "remove" and self.policy_loss is not None and self.policy_loss.needs_whole_groups:
            raise ValueError(
                f"dropped_samples='remove' packs kept samples one by one, but policy_loss={args.policy_loss!r} needs "
                "whole groups in each micro-batch. Use dropped_samples='mask' with this loss."
            )
        # Each configured method gets its own parameters; the inputs they declare decide which providers run.
        self._method_params = {family: args.method_params(family) for family in _FAMILIES}
        configured = [m for m in (self.advantage_estimator, self.policy_loss, self.token_weighting) if m is not None]
        providers = set(input_provider_names())
        # Per family, the declared inputs the trainer supplies: standard ones and providers' (a name a `*_kwargs`
        # override sets, or one nothing supplies that has a default in the function, is left to the function).
        self._supplied_inputs = {}
        for method in configured:
            params = self._method_params[method.family]
            overridden = set(params.as_kwargs()) if params is not None else set()
            check_inputs(method, overridden)
            available = set(STANDARD_INPUTS[method.family]) | providers
            self._supplied_inputs[method.family] = [n for n in method.inputs if n in available - overridden]
        needed = list(dict.fromkeys(n for names in self._supplied_inputs.values() for n in names if n in providers))
        self._provider_params = {name: args.provider_params(name) for name in needed}
        # Providers with a setup (the critical-token scorer: a frozen copy of the base model with two adapters) run it
        # before TRL wraps the policy.
        self._provider_states = {
            name: get_input_provider(name).setup(model, self._provider_params[name], args)
            for name in needed
            if get_input_provider(name).setup is not None
        }
        # The loss's inputs that come from the generation batch (stored in it), not from the loss call.
        loss_inputs = self._supplied_inputs.get("policy loss", [])
        self._stored_loss_inputs = tuple(name for name in loss_inputs if name not in _LOSS_CALL_INPUTS)
        super().__init__(**arguments)
        for state in self._provider_states.values():
            if hasattr(state, "to"):
                state.to(self.accelerator.device)
        self._correctness_index = self._resolve_correctness_reward(args.correctness_reward)
        self._last_rewards_per_func: torch.Tensor | None = None
        # dropped_samples="remove": kept counts per process of the current generation batch, how many of its
        # micro-batches hold kept samples, the `_step` it was generated at, and a request to skip the next step.
        self._kept_per_process: list[int] = []
        self._real_micro_batches = self.args.steps_per_generation
        self._generated_at_step: int | None = None
        self._skip_optimizer_step = False
        if self.args.dropped_samples == "remove" and self.is_deepspeed_enabled:
            raise ValueError(
                "dropped_samples='remove' cannot skip an optimizer step under DeepSpeed (the engine steps inside "
                "backward); launch with DDP or FSDP, or use dropped_samples='mask'."
            )
        self._set_model_card_method()

    def _set_model_card_method(self) -> None:
        # Instance attributes shadow TRL's class attributes, so the model card names the method and its paper.
        estimator, loss = self.advantage_estimator, self.policy_loss
        if loss is None:
            name = estimator.display_name if estimator.name == "grpo" else f"GRPO with {estimator.display_name}"
        else:
            name = (
                loss.display_name if estimator.name == "grpo" else f"{loss.display_name} with {estimator.display_name}"
            )
        self._name = name
        paper = loss.paper if loss is not None and loss.paper is not None else estimator.paper
        if paper is not None:
            self._paper = paper
        self._tag_names = [*type(self)._tag_names, estimator.name, *([loss.name] if loss is not None else [])]

    @property
    def method_name(self) -> str:
        """The method trained, as named in the model card (e.g. ``"GRPO with W-REINFORCE"``, ``"DRPO"``)."""
        return self._name

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

        # The total reward exactly as TRL forms it (weighted nansum; NaN where every function returned None).
        weights = self.reward_weights.to(rewards_per_func.device)
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        local = slice(self.accelerator.process_index * len(inputs), (self.accelerator.process_index + 1) * len(inputs))
        context = InputContext(
            trainer=self,
            batch=output,
            mode=mode,
            local=local,
            values={
                "rewards": rewards,
                "rewards_per_func": rewards_per_func,
                "reward_weights": weights,
                "reward_names": list(self.reward_func_names),
                "group_size": group_size,
                "max_length": self.max_completion_length,
            },
            params_by_provider=self._provider_params,
            states=self._provider_states,
        )
        correct, scorable = context.get("correct"), context.get("scorable")

        estimator = self.advantage_estimator
        advantages, keep, estimator_metrics = estimator.run(
            self._inputs_of(estimator, context), self._method_params["advantage estimator"]
        )
        output["advantages"] = advantages[local]
        completion_mask = output["completion_mask"]
        if self.token_weighting is not None:
            tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
            context.values.update(
                advantages=output["advantages"],
                keep=keep[local],
                completion_ids=output["completion_ids"],
                completion_mask=completion_mask,
                tool_mask=output.get("tool_mask"),
                tokenizer=tokenizer,
                gather=self.accelerator.gather,
            )
            weighted = self.token_weighting.run(
                self._inputs_of(self.token_weighting, context, local=True), self._method_params["token weighting"]
            )
            output["advantages"] = weighted.advantages
            for name, value in weighted.metrics.items():
                self._metrics[mode][name].append(float(value))
        if not keep.all():
            local_keep = keep[local].unsqueeze(1).to(completion_mask.dtype)
            output["completion_mask"] = completion_mask * local_keep
            if "tool_mask" in output:
                output["tool_mask"] = output["tool_mask"] * local_keep
            output["num_items_in_batch"] = (context.get("loss_tokens") * keep).sum()
        if mode == "train" and self.args.dropped_samples == "remove":
            self._note_kept_samples(output, keep, local)
        elif mode == "train" and self.advantage_estimator.drops_samples:
            steps = self.args.steps_per_generation // self.args.gradient_accumulation_steps * self.num_iterations
            self._metrics[mode]["dropped_samples/optimizer_steps"].append(float(steps))
            self._metrics[mode]["dropped_samples/skipped_steps"].append(0.0)
        for name in self._stored_loss_inputs:
            output[_PREFIX + name] = context.local_value(name)

        # TRL logged its own GRPO advantages for the completions table; show the ones actually trained on.
        logged = self._logs["advantages"]
        for _ in range(min(len(advantages), len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())
        self._log_advantage_metrics(mode, advantages, keep, correct & scorable)
        for name, value in estimator_metrics.items():
            self._metrics[mode][name].append(float(value))
        return output

    def _inputs_of(self, method, context: InputContext, *, local: bool = False) -> dict[str, Any]:
        """The inputs the trainer supplies to ``method``, from the context (``local``: this process's part)."""
        names = self._supplied_inputs[method.family]
        return {name: context.local_value(name) if local else context.get(name) for name in names}

    @torch.no_grad()
    def _rollout_entropies(self, batch: dict[str, Any], mode: str) -> torch.Tensor:
        """(B, T) entropies of the policy that sampled the batch (one no-grad forward), at the completion tokens."""
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        _, entropies, _ = self._get_per_token_logps_and_entropies(
            self.model, input_ids, attention_mask, batch["completion_ids"].size(1), batch_size, compute_entropy=True
        )
        return entropies

    def _note_kept_samples(self, output: dict[str, Any], keep: torch.Tensor, local: slice) -> None:
        """dropped_samples="remove": remember which samples are kept and rescale the token-mean denominator.

        TRL's token-level losses ("dapo", "cispo", "vespo") divide each optimizer step's token sum by
        ``num_items_in_batch × gradient_accumulation_steps / steps_per_generation``, the generation's mean number of
        loss tokens per step. With the kept samples packed into fewer steps that becomes (mean loss tokens of a kept
        sample) × (samples per step), so a full step is a token mean over its samples and a last step holding
        ``r`` of ``M`` samples is scaled by ``r / M``, as the official code's ``len(micro_batch) / ppo_mini_batch_size``.
        """
        output[_PREFIX + "keep"] = keep[local]
        self._kept_per_process = keep.view(self.accelerator.num_processes, -1).sum(dim=1).tolist()
        kept = int(keep.sum())
        if kept > 0 and not keep.all():
            output["num_items_in_batch"] = output["num_items_in_batch"] * len(keep) / kept

    def _prepare_inputs_removing_dropped(self, generation_batch: dict[str, Any]) -> dict[str, Any]:
        """TRL's buffering, with the kept samples packed into the first optimizer steps (dropped_samples="remove")."""
        args = self.args
        generate_every = args.steps_per_generation * self.num_iterations
        new_generation = self._step % generate_every == 0 and self._generated_at_step != self._step
        if new_generation or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            batch = shuffle_sequence_dict(split_pixel_values_by_grid(batch))
            keep = batch.pop(_PREFIX + "keep")
            per_process_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
            batch = pack_kept_samples(
                batch,
                keep,
                self._kept_per_process,
                self.accelerator.process_index,
                per_process_step,
                self._tokenizer.pad_token_id,
            )
            batches = split_tensor_dict(batch, args.steps_per_generation)
            self._buffered_inputs = [unsplit_pixel_values_by_grid(part) for part in batches]
            steps_per_pass = args.steps_per_generation // args.gradient_accumulation_steps
            real = real_optimizer_steps(
                sum(self._kept_per_process), per_process_step * self.accelerator.num_processes, steps_per_pass
            )
            self._real_micro_batches = real * args.gradient_accumulation_steps
            self._generated_at_step = self._step
            metrics = self._metrics["train"]
            metrics["dropped_samples/optimizer_steps"].append(float(real * self.num_iterations))
            metrics["dropped_samples/skipped_steps"].append(float((steps_per_pass - real) * self.num_iterations))
        return self._buffered_inputs[self._step % args.steps_per_generation]

    def training_step(self, model, inputs, num_items_in_batch):
        if self.args.dropped_samples != "remove":
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()  # as Trainer.training_step does first (the model may come back from an evaluation)
        self._prepare_inputs(inputs)  # generates when a generation batch starts; a buffer lookup otherwise
        if self._step % self.args.steps_per_generation < self._real_micro_batches:
            return super().training_step(model, inputs, num_items_in_batch)
        # A micro-batch of an optimizer step that holds no kept sample on any process (the same decision everywhere,
        # from the global kept count): no forward, no backward, and the optimizer step that closes it is skipped.
        self._step += 1
        self._request_optimizer_skip()
        return torch.zeros((), device=self.args.device)

    def _request_optimizer_skip(self) -> None:
        """Make the next ``optimizer.step()`` a no-op (no moment update, no weight change, no step count)."""
        optimizer = self.optimizer
        if not getattr(optimizer, "_reasoning_skip_guard", False):
            step = optimizer.step

            def guarded_step(*args, **kwargs):
                if self._skip_optimizer_step:
                    self._skip_optimizer_step = False
                    return None
                return step(*args, **kwargs)

            optimizer.step = guarded_step
            optimizer._reasoning_skip_guard = True
        self._skip_optimizer_step = True

    def _prepare_inputs(self, generation_batch: dict[str, Any]) -> dict[str, Any]:
        if self.model.training and self.args.dropped_samples == "remove":
            return self._prepare_inputs_removing_dropped(generation_batch)
        if not (self.model.training and self.policy_loss is not None and self.policy_loss.needs_whole_groups):
            return super()._prepare_inputs(generation_batch)
        # TRL's buffering, with the generation batch shuffled and split by whole groups instead of by sample.
        generate_every = self.args.steps_per_generation * self.num_iterations
        if self._step % generate_every == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            batch = shuffle_groups(split_pixel_values_by_grid(batch), self.num_generations)
            batches = split_tensor_dict(batch, self.args.steps_per_generation)
            self._buffered_inputs = [unsplit_pixel_values_by_grid(part) for part in batches]
        return self._buffered_inputs[self._step % self.args.steps_per_generation]

    def _compute_loss(self, model, inputs):
        if self.policy_loss is None:
            return super()._compute_loss(model, inputs)
        mode = "train" if self.model.training else "eval"
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
            **{key: inputs.get(key) for key in _MULTIMODAL_KEYS},
        )
        # TRL skips old log-probs when the batch is trained on by the policy that sampled it (then old == current).
        old_per_token_logps = inputs.get("old_per_token_logps")
        if old_per_token_logps is None:
            old_per_token_logps = per_token_logps.detach()
        # The sampling engine's own log-probs (vLLM, or a rollout_func), where it reported them.
        behavior_per_token_logps = inputs.get("sampling_per_token_logps")
        if behavior_per_token_logps is None:
            behavior_per_token_logps = old_per_token_logps
        else:
            unreported = torch.isnan(behavior_per_token_logps)
            behavior_per_token_logps = torch.where(unreported, old_per_token_logps, behavior_per_token_logps)

        values = {
            "per_token_logps": per_token_logps,
            "old_per_token_logps": old_per_token_logps,
            "behavior_per_token_logps": behavior_per_token_logps,
            "mask": mask,
            "advantages": inputs["advantages"],
            "group_size": self.num_generations if mode == "train" else self.num_generations_eval,
            "max_length": self.max_completion_length,
            "reward_weights": self.reward_weights,
            "reward_names": list(self.reward_func_names),
        }
        values.update({name: inputs[_PREFIX + name] for name in self._stored_loss_inputs})
        output = self.policy_loss.run(values, self._method_params["policy loss"])
        normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0  # no accumulation in eval
        loss = output.loss / normalizer
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss / normalizer

        entropy = (entropies * mask).sum() / mask.sum().clamp(min=1)
        metrics = mean_over_processes(self.accelerator, {"entropy": entropy, **output.metrics}, loss.device)
        for name, value in metrics.items():
            self._metrics[mode][name].append(value)
        return loss

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

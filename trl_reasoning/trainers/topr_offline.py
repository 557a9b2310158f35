r"""Fully offline TOPR: ``OfflineTOPRTrainer`` trains on a dataset of (prompt, completion, reward).

TOPR (Tapered Off-Policy REINFORCE, Le Roux, Bellemare et al. 2025, arXiv 2503.14286) learns from completions that
some behaviour policy μ sampled earlier, with no generation during training. Per completion τ with reward R:

    α(τ) = 1 if R ≥ 0, else min(π(τ)/μ(τ), 1)          ℓ(τ) = −sg(α(τ)) · (R − c) · Σ_t logπ(y_t | x, y_<t)

and the loss is the mean of ℓ over the sequences of a micro-batch (:func:`trl_reasoning.losses.topr_loss`).

The trainer is ``trl.SFTTrainer`` with a different loss. SFT's dataset preparation does the tokenisation (plain text
or conversational prompt/completion, or pre-tokenised ``input_ids``), puts ``-100`` on the prompt's labels and
handles PEFT; this module adds:

* the reward column and the behaviour log-prob column, kept through preparation, ``remove_unused_columns`` and the
  collator (batch keys ``"rewards"`` and ``"behavior_logps"``);
* truncation to ``max_length`` done here rather than by SFT, so per-token behaviour log-probs are cut with their
  tokens (a per-sequence behaviour log-prob cannot be cut: truncating such a completion is an error);
* behaviour log-probs computed once with the initial model when the dataset has none;
* the baseline from the dataset's rewards (``topr_target_positive_fraction``; the paper's formula for ±1 rewards, the
  general solve of :func:`trl_reasoning.losses.topr.topr_baseline_for_rewards` otherwise), and a refusal of
  ``topr_taper_by="reward"`` when some reward in ``[0, c)`` would be pushed down untapered;
* ``compute_loss``: the completion tokens' log-probs from the fused LM head, then ``topr_loss``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.logging import get_logger
from accelerate.utils import gather_object
from datasets import Dataset
from trl import SFTConfig, SFTTrainer
from trl.data_utils import get_dataset_column_names
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
from trl.trainer.utils import global_then_local_main_first

from ..losses.topr import (
    TOPRParams,
    topr_baseline_for_positive_fraction,
    topr_baseline_for_rewards,
    topr_loss,
)
from ..papers import TOPR
from ..parameters import add_config_fields, fields_docstring
from .common import bind_parent_arguments, mean_over_processes, resolve_config, signature_of


logger = get_logger(__name__)

__all__ = ["DataCollatorForOfflineTOPR", "OfflineTOPRConfig", "OfflineTOPRTrainer"]


@dataclass
@add_config_fields([TOPRParams])
class OfflineTOPRConfig(SFTConfig):
    r"""
    Configuration for [`OfflineTOPRTrainer`]: every field of `trl.SFTConfig`, plus:

    Parameters:
        reward_column (`str`, defaults to `"reward"`):
            Dataset column with each completion's reward (a float; the paper uses +1 correct / −1 wrong). A missing
            value (None/NaN) leaves the row out of the loss.
        behavior_logps_column (`str`, defaults to `"behavior_logps"`):
            Dataset column with the behaviour policy μ's log-probs of the completion: a float (the sum over the
            completion tokens) or a list with one float per completion token. When the dataset has no such column,
            the trainer computes it once, before training, with the initial model.

    TOPR's parameters (`topr_baseline`, `topr_target_positive_fraction`, `topr_ratio_level`, `topr_taper_by`) are
    declared once, in `trl_reasoning.losses.topr.TOPRParams`, and shared with `ReasoningGRPOConfig`. Offline, a
    target share of positives computes the baseline once from the training set's rewards, and the trainer refuses
    `topr_taper_by="reward"` when some training reward lies in `[0, c)` (it would be pushed down untapered).

    These defaults differ from `trl.SFTConfig`:

    - `learning_rate`: `1e-6` instead of `2e-5`. TOPR's loss sums log-probs over the completion's tokens (SFT
      averages them) and pushes negatives down, so an SFT learning rate moves the policy far too much per step.
    - `completion_only_loss`: `True` (must be): the prompt is context, only the completion is scored.
    """

    learning_rate: float = field(
        default=1e-6,
        metadata={
            "help": "The initial learning rate for AdamW. Defaults to 1e-6 (SFT's 2e-5 is too large for TOPR, whose "
            "loss sums log-probs over the completion's tokens; the paper used 5e-7 with Adafactor)."
        },
    )
    completion_only_loss: bool | None = field(
        default=True,
        metadata={
            "help": "Must be True (the default; None is read as True): TOPR scores the completion tokens only, the "
            "prompt is context."
        },
    )
    reward_column: str = field(
        default="reward",
        metadata={
            "help": "Dataset column with each completion's reward, a float (the paper uses +1 for a correct answer "
            "and -1 for a wrong one). Rows with a missing reward (None/NaN) are left out of the loss."
        },
    )
    behavior_logps_column: str = field(
        default="behavior_logps",
        metadata={
            "help": "Dataset column with the behaviour policy's log-probs of the completion: a float (sum over the "
            "completion tokens) or a list of floats, one per completion token (as tokenised by the trainer). If the "
            "dataset has no such column, the trainer computes it once with the initial model before training."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self._post_init_own_fields()

    def _post_init_own_fields(self) -> None:
        """Default and check the fields this class adds or constrains (also run when a `trl.SFTConfig` is
        upgraded)."""
        if self.completion_only_loss is None:
            self.completion_only_loss = True
        for name in ("reward_column", "behavior_logps_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}={value!r} is invalid: give the name of a dataset column, e.g. 'reward'.")
        if self.reward_column == self.behavior_logps_column:
            raise ValueError(
                f"reward_column and behavior_logps_column are both {self.reward_column!r}: give them different "
                "column names."
            )
        reserved = {"input_ids", "labels", "attention_mask", "prompt", "completion", "completion_mask"}
        for name in ("reward_column", "behavior_logps_column"):
            if getattr(self, name) in reserved:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} names a column the trainer builds or tokenises; rename the "
                    f"column (not one of {sorted(reserved)})."
                )
        TOPRParams.from_config(self)  # TOPR's parameters, checked by their one definition (losses/topr.py)
        if self.packing or self.eval_packing:
            raise ValueError(
                "packing=True (or eval_packing=True) is not supported by OfflineTOPRTrainer: TOPR weights each "
                "completion by its own reward and ratio, so sequences cannot be packed together. Set packing=False."
            )
        if self.padding_free:
            raise ValueError(
                "padding_free=True is not supported by OfflineTOPRTrainer: the loss needs one row per completion. "
                "Set padding_free=False."
            )
        if self.completion_only_loss is not True:
            raise ValueError(
                "completion_only_loss=False is not supported by OfflineTOPRTrainer: TOPR scores the completion "
                "tokens only (the prompt is context). Set completion_only_loss=True (the default)."
            )
        if self.dataset_kwargs and self.dataset_kwargs.get("skip_prepare_dataset"):
            raise ValueError(
                "dataset_kwargs={'skip_prepare_dataset': True} is not supported by OfflineTOPRTrainer: preparation "
                "aligns the rewards and behaviour log-probs with the tokens. Pass a pre-tokenised dataset "
                "(`input_ids` with `completion_mask` or `labels`) instead and drop `skip_prepare_dataset`."
            )
        if self.loss_type != "nll":
            raise ValueError(
                f"loss_type={self.loss_type!r} has no effect in OfflineTOPRTrainer, whose loss is TOPR's; leave "
                "loss_type at 'nll'."
            )
        if self.label_smoothing_factor:
            raise ValueError(
                f"label_smoothing_factor={self.label_smoothing_factor} has no effect in OfflineTOPRTrainer, whose loss "
                "is TOPR's; leave it at 0."
            )


OfflineTOPRConfig.__doc__ += "\n" + fields_docstring(
    OfflineTOPRConfig, TOPRParams.config_names(), header="TOPR's parameters (declared in `TOPRParams`):"
)


@dataclass
class DataCollatorForOfflineTOPR(DataCollatorForLanguageModeling):
    """``DataCollatorForLanguageModeling`` that also batches the reward and behaviour log-prob columns.

    Adds ``"rewards"`` (B,) float64 and ``"behavior_logps"``: (B,) float64 for per-sequence log-probs, or
    (B, L − 1) float64 aligned with ``labels[:, 1:]`` (the positions the fused LM head scores), with each row's
    per-token values placed on its completion tokens and 0 elsewhere.
    """

    reward_column: str = "reward"
    behavior_logps_column: str = "behavior_logps"

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        rewards = [_as_reward(example.get(self.reward_column)) for example in examples]
        behavior = [example.get(self.behavior_logps_column) for example in examples]
        output = super().torch_call(examples)
        output["rewards"] = torch.tensor(rewards, dtype=torch.float64)
        if all(value is None for value in behavior):
            return output
        if any(value is None for value in behavior):
            raise ValueError(f"Some rows of the batch have no `{self.behavior_logps_column}` value.")
        if not isinstance(behavior[0], list | tuple):
            output["behavior_logps"] = torch.tensor([float(v) for v in behavior], dtype=torch.float64)
            return output
        scored = output["labels"][:, 1:] != -100
        per_token = torch.zeros(scored.shape, dtype=torch.float64)
        for row, values in enumerate(behavior):
            count = int(scored[row].sum())
            if len(values) != count:
                raise ValueError(
                    f"`{self.behavior_logps_column}` has {len(values)} values for a completion of {count} tokens."
                )
            per_token[row, scored[row]] = torch.tensor(values, dtype=torch.float64)
        output["behavior_logps"] = per_token
        return output


def _as_reward(value) -> float:
    return float("nan") if value is None else float(value)


def _align_offline_columns(example, index, reward_column, behavior_column, keep):
    """Validate one prepared row, truncate it with ``keep`` (a slice or None) and align its behaviour log-probs.

    Returns ``input_ids``, ``labels``, the reward as a float and (if present) the behaviour log-probs: a float, or a
    list with one value per scored completion token (``labels[1:] != -100``) of the truncated row.
    """
    input_ids, labels = example["input_ids"], example["labels"]
    scored = [t for t in range(1, len(labels)) if labels[t] != -100]
    output = {reward_column: _as_reward(example[reward_column])}
    behavior = example.get(behavior_column) if behavior_column is not None else None
    if behavior_column is not None and behavior is None:
        raise ValueError(f"Row {index} has no value in the `{behavior_column}` column; every row needs one.")
    if isinstance(behavior, list | tuple):
        if len(behavior) != len(scored):
            raise ValueError(
                f"Row {index}: `{behavior_column}` has {len(behavior)} per-token values, but the completion has "
                f"{len(scored)} tokens after tokenisation. Give one log-prob per completion token (as the trainer "
                "tokenises prompt + completion), or a single float, the completion's total log-prob."
            )
        by_position = dict(zip(scored, (float(v) for v in behavior), strict=True))
    if keep is not None:
        positions = range(len(input_ids))[keep]
        input_ids, labels = input_ids[keep], labels[keep]
        kept_scored = [p for p in positions[1:] if example["labels"][p] != -100]
    else:
        kept_scored = scored
    output["input_ids"], output["labels"] = input_ids, labels
    if isinstance(behavior, list | tuple):
        output[behavior_column] = [by_position[p] for p in kept_scored]
    elif behavior is not None:
        if len(kept_scored) != len(scored):
            raise ValueError(
                f"Row {index}: `max_length` truncates the completion ({len(kept_scored)} of {len(scored)} tokens "
                f"kept), but `{behavior_column}` is a single per-sequence log-prob, which cannot be truncated with "
                "it. Increase `max_length` (or set it to None), or give per-token log-probs."
            )
        output[behavior_column] = float(behavior)
    return output


class OfflineTOPRTrainer(SFTTrainer):
    """Fully offline TOPR on a dataset of prompts, completions, rewards and (optionally) behaviour log-probs.

    A drop-in ``trl.SFTTrainer`` (same arguments; ``args`` is an [`OfflineTOPRConfig`]). The train dataset needs
    ``prompt`` and ``completion`` columns (plain text or conversational), or pre-tokenised ``input_ids`` with
    ``completion_mask`` or ``labels``, and a reward column (``args.reward_column``). The behaviour log-prob column
    (``args.behavior_logps_column``) holds μ's log-probs of each completion, a float (total) or a list (one per
    completion token). With no such column, μ is the initial model: its per-token log-probs are computed once at
    construction (no grad, eval mode, batches of ``per_device_eval_batch_size``; with PEFT, the initial adapter) and
    stored in the datasets, like DPO's ``precompute_ref_log_probs``.

    Under several processes the rows are sharded round-robin (row ``i`` on process ``i % num_processes``), each
    process scores its share, and ``gather_object`` sends every process all the values, so each process ends up with
    the same column, in the dataset's order. (Runs before the model is wrapped for distributed training, so
    DeepSpeed ZeRO-3 is not supported for this step; provide the column instead.)

    Loss: ``topr_loss`` of the completion tokens' log-probs, a mean over the micro-batch's sequences. The class sets
    ``loss_is_scaled_for_ga = False``, so ``Trainer.training_step`` divides it by the number of accumulated
    micro-batches exactly once, and DDP averages gradients across processes: an optimiser step follows the mean over
    all its sequences when micro-batches have equal sizes.
    """

    _tag_names = ["trl", "trl-reasoning", "topr", "offline-rl"]
    _name = "TOPR"
    _paper = TOPR
    # `compute_loss` returns a per-micro-batch mean: let `Trainer.training_step` divide it by the accumulation steps.
    loss_is_scaled_for_ga = False

    @signature_of(SFTTrainer.__init__)
    def __init__(self, *args, **kwargs):
        """Takes exactly `trl.SFTTrainer`'s arguments, positionally or by keyword. `args` may be an
        [`OfflineTOPRConfig`], a `trl.SFTConfig` (or a subclass), upgraded with this package's defaults, a
        `transformers.TrainingArguments` (as `trl.SFTTrainer` accepts), or None."""
        arguments = bind_parent_arguments(SFTTrainer.__init__, self, args, kwargs)
        args = arguments["args"] = resolve_config(
            arguments["model"], arguments["args"], OfflineTOPRConfig, "TOPR", SFTConfig, accept_training_arguments=True
        )
        if arguments["compute_loss_func"] is not None:
            raise ValueError("`compute_loss_func` is not supported by OfflineTOPRTrainer: its loss is TOPR's.")
        if arguments["formatting_func"] is not None:
            raise ValueError(
                "`formatting_func` is not supported by OfflineTOPRTrainer: it turns the dataset into plain text and "
                "loses the prompt/completion split. Format `prompt` and `completion` before passing the dataset."
            )
        train_dataset = arguments["train_dataset"]
        if train_dataset is not None and not isinstance(train_dataset, Dataset):
            raise TypeError(
                f"OfflineTOPRTrainer needs a map-style `datasets.Dataset`, got {type(train_dataset).__name__}: the "
                "behaviour log-probs and the baseline are computed from the whole dataset before training."
            )
        super().__init__(**arguments)
        if self._is_vision_dataset:
            raise NotImplementedError("OfflineTOPRTrainer does not support vision datasets yet.")
        if type(self.data_collator) is DataCollatorForLanguageModeling:
            # SFT's collator would drop the reward and behaviour columns: swap in the one that batches them.
            self.data_collator = DataCollatorForOfflineTOPR(
                pad_token_id=self.data_collator.pad_token_id,
                return_position_ids=self.data_collator.return_position_ids,
                pad_to_multiple_of=self.data_collator.pad_to_multiple_of,
                reward_column=args.reward_column,
                behavior_logps_column=args.behavior_logps_column,
            )

        self.train_dataset = self._add_behavior_logps(self.train_dataset, "train")
        if isinstance(self.eval_dataset, dict):
            self.eval_dataset = {name: self._add_behavior_logps(d, name) for name, d in self.eval_dataset.items()}
        elif self.eval_dataset is not None:
            self.eval_dataset = self._add_behavior_logps(self.eval_dataset, "eval")
        if args.topr_ratio_level == "token" and not self._has_per_token_behavior(self.train_dataset):
            raise ValueError(
                f"topr_ratio_level='token' needs per-token behaviour log-probs, but `{args.behavior_logps_column}` "
                "holds one float per completion. Give a list per row (one value per completion token), drop the "
                "column to have the trainer compute it, or use topr_ratio_level='sequence'."
            )

        rewards = self._train_rewards(self.train_dataset)
        self.positive_fraction = float((rewards >= 0).double().mean())
        target = args.topr_target_positive_fraction
        if target is None:
            self.topr_baseline = float(args.topr_baseline)
        elif torch.isin(rewards, torch.tensor([-1.0, 1.0], dtype=torch.float64)).all():
            self.topr_baseline = topr_baseline_for_positive_fraction(self.positive_fraction, target)  # the paper's
        else:
            # 0/1 or shaped rewards: solve Σ[R − c]₊ / Σ|R − c| = target on the rewards themselves.
            self.topr_baseline = topr_baseline_for_rewards(rewards, target)
        if target is not None and rewards.min() == rewards.max():
            logger.warning(
                f"Every reward in the training set is {rewards[0].item()}, so no baseline can change the effective "
                "share of positives; using c = 0."
            )
        self._check_taper(rewards)

    # ----------------------------------------------------------------------------------------------- dataset
    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"OfflineTOPRTrainer needs map-style `datasets.Dataset`s, got {type(dataset).__name__} for the "
                f"{dataset_name} dataset."
            )
        columns = get_dataset_column_names(dataset)
        if args.reward_column not in columns:
            raise ValueError(
                f"The {dataset_name} dataset has no reward column {args.reward_column!r} (columns: {columns}). Add "
                "one float reward per row, or point `reward_column` at the column that holds them."
            )
        if "input_ids" not in columns and not {"prompt", "completion"} <= set(columns):
            raise ValueError(
                f"The {dataset_name} dataset needs `prompt` and `completion` columns (plain text or conversational), "
                f"or pre-tokenised `input_ids` with `completion_mask` or `labels`; got columns {columns}."
            )
        # SFT tokenises and masks the prompt; truncation and shuffling happen below, once the behaviour log-probs
        # are aligned with the tokens.
        inner_args = copy.copy(args)
        inner_args.max_length = None
        inner_args.shuffle_dataset = False
        dataset = super()._prepare_dataset(dataset, processing_class, inner_args, packing, None, dataset_name)

        keep = None
        if args.max_length is not None:
            keep = (
                slice(None, args.max_length) if args.truncation_mode == "keep_start" else slice(-args.max_length, None)
            )
        behavior_column = args.behavior_logps_column if args.behavior_logps_column in columns else None
        with global_then_local_main_first():
            dataset = dataset.map(
                _align_offline_columns,
                with_indices=True,
                fn_kwargs={
                    "reward_column": args.reward_column,
                    "behavior_column": behavior_column,
                    "keep": keep,
                },
                num_proc=args.dataset_num_proc,
                desc=f"Aligning rewards and behaviour log-probs of the {dataset_name} dataset",
            )
            before = len(dataset)
            dataset = dataset.filter(
                lambda labels: any(label != -100 for label in labels[1:]),
                input_columns="labels",
                num_proc=args.dataset_num_proc,
                desc=f"Dropping rows without completion tokens from the {dataset_name} dataset",
            )
        if len(dataset) < before:
            logger.warning(
                f"Dropped {before - len(dataset)} of {before} rows of the {dataset_name} dataset that have no "
                "completion token left (empty completion, or truncated away by `max_length`)."
            )
        if len(dataset) == 0:
            raise ValueError(f"The {dataset_name} dataset has no row with a completion token left.")
        if args.shuffle_dataset:
            dataset = dataset.shuffle(seed=args.seed)
        return dataset

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        for column in (self.args.reward_column, self.args.behavior_logps_column):
            if column not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, column]

    def _has_per_token_behavior(self, dataset: Dataset) -> bool:
        return isinstance(dataset[0][self.args.behavior_logps_column], list)

    def _train_rewards(self, dataset: Dataset) -> torch.Tensor:
        """The training set's rewards (float64, missing ones left out); refuses a set with none or an infinite one."""
        rewards = torch.tensor([_as_reward(r) for r in dataset[self.args.reward_column]], dtype=torch.float64)
        rewards = rewards[~torch.isnan(rewards)]
        if rewards.numel() == 0:
            raise ValueError(
                f"Every reward in `{self.args.reward_column}` is missing (None/NaN): nothing to train on."
            )
        if torch.isinf(rewards).any():
            raise ValueError(
                f"`{self.args.reward_column}` holds an infinite reward: give finite floats (None/NaN leaves a row out)."
            )
        return rewards

    def _check_taper(self, rewards: torch.Tensor) -> None:
        """Refuse ``topr_taper_by="reward"`` when some sample would get a negative coefficient ``R − c`` untapered.

        The paper tapers ``R < 0`` with ±1 rewards and ``|c| < 1``, where that is exactly ``R − c < 0``. With 0/1 or
        shaped rewards and ``c > 0``, the rewards in ``[0, c)`` would be pushed down with weight 1: naive off-policy
        REINFORCE, which the paper shows degenerates (TOPR, arXiv 2503.14286, §3).
        """
        if self.args.topr_taper_by != "reward":
            return
        untapered = (rewards >= 0) & (rewards < self.topr_baseline)
        if untapered.any():
            raise ValueError(
                f"topr_taper_by='reward' tapers only rewards < 0, but with the baseline c = {self.topr_baseline:.6g} "
                f"(topr_baseline / topr_target_positive_fraction) {int(untapered.sum())} of the training set's "
                f"rewards lie in [0, c) (e.g. {rewards[untapered][0].item()}): their coefficient R - c is negative "
                "and they would be pushed down without the taper (naive off-policy REINFORCE). Set "
                "topr_taper_by='coefficient' (tapers every sample with R - c < 0), or use rewards of +1/-1 with a "
                "baseline in (-1, 1)."
            )

    @torch.no_grad()
    def _add_behavior_logps(self, dataset: Dataset, name: str) -> Dataset:
        """Add μ = the current (initial) model's per-token log-probs of each completion, unless the column exists."""
        column = self.args.behavior_logps_column
        if column in dataset.column_names:
            return dataset
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        indices = list(range(rank, len(dataset), world))
        batch_size = self.args.per_device_eval_batch_size
        shard = dataset.select(indices).select_columns(["input_ids", "labels"])
        collator = DataCollatorForLanguageModeling(
            pad_token_id=self._tokenizer.pad_token_id, pad_to_multiple_of=self.args.pad_to_multiple_of
        )
        model = self.model
        was_training = model.training
        model.eval()
        local = []
        try:
            with (
                disable_gradient_checkpointing(model, self.args.gradient_checkpointing_kwargs),
                self.accelerator.autocast(),
            ):
                for start in range(0, len(shard), batch_size):
                    rows = [shard[i] for i in range(start, min(start + batch_size, len(shard)))]
                    batch = {k: v.to(self.accelerator.device) for k, v in collator(rows).items()}
                    per_token, scored = self._completion_logps(model, batch)
                    for offset, (values, mask) in enumerate(zip(per_token, scored, strict=True)):
                        local.append((indices[start + offset], values[mask].double().cpu().tolist()))
        finally:
            model.train(was_training)
        gathered = gather_object(local) if world > 1 else local
        values = [None] * len(dataset)
        for index, row_values in gathered:
            values[index] = row_values
        logger.info(f"Computed the behaviour log-probs of the {name} dataset with the initial model.")
        return dataset.add_column(column, values)

    # ----------------------------------------------------------------------------------------------- loss
    @staticmethod
    def _completion_logps(model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L − 1) log-probs of the tokens ``labels[:, 1:]`` (0 where not scored) and the scored-token mask."""
        scored = inputs["labels"][:, 1:] != -100
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        # Prompt-learning PEFT prepends virtual tokens to the outputs; keep the positions of the real tokens.
        return outputs.log_probs[:, -scored.size(1) :], scored

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        inputs = dict(inputs)
        rewards = inputs.pop("rewards")
        behavior = inputs.pop("behavior_logps", None)
        if behavior is None:
            raise ValueError(
                f"The batch has no behaviour log-probs (`{self.args.behavior_logps_column}`): prepare the dataset "
                "through the trainer (pass it at construction or to `evaluate`)."
            )
        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)
        scored = inputs["labels"][:, 1:] != -100
        per_token_logps = outputs.log_probs[:, -scored.size(1) :]
        mask = scored.to(per_token_logps.dtype)
        result = topr_loss(
            per_token_logps,
            behavior.to(per_token_logps.dtype),
            mask,
            rewards.to(per_token_logps.dtype),
            baseline=self.topr_baseline,
            ratio_level=self.args.topr_ratio_level,
            taper_by=self.args.topr_taper_by,
        )
        self._log_topr_metrics(mode, inputs, outputs, per_token_logps, mask, rewards, result.metrics)
        if return_outputs:
            with torch.no_grad():
                full = model(**{k: v for k, v in inputs.items() if k != "labels"})
            return result.loss, full
        return result.loss

    def _log_topr_metrics(self, mode, inputs, outputs, per_token_logps, mask, rewards, loss_metrics) -> None:
        device = per_token_logps.device
        sequence_logps = (per_token_logps.detach() * mask).sum(dim=1)
        rewards = rewards.to(device)
        valid = ~torch.isnan(rewards)
        # Positive / negative as the loss splits them: by R < 0, or by the coefficient R − c < 0.
        tapered = rewards < 0 if self.args.topr_taper_by == "reward" else rewards - self.topr_baseline < 0
        positive, negative = valid & ~tapered, valid & tapered
        nan = torch.tensor(float("nan"), device=device)
        local = {
            **loss_metrics,
            "topr/completion_logp_positive": sequence_logps[positive].mean() if positive.any() else nan,
            "topr/completion_logp_negative": sequence_logps[negative].mean() if negative.any() else nan,
        }
        if outputs.entropy is not None:
            entropy = outputs.entropy[:, -mask.size(1) :].detach()
            local["entropy"] = (entropy * mask).sum() / mask.sum().clamp(min=1)
        for name, value in mean_over_processes(self.accelerator, local, device).items():
            if not math.isnan(value):
                self._metrics[mode][name].append(value)
        if mode == "train":
            tokens = self.accelerator.gather(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]

    def _get_num_items_in_batch(self, batch_samples, device):
        # The loss is a mean over each micro-batch's sequences and is scaled for accumulation by `training_step`;
        # Trainer's token count (and its all-gather every step) is not needed.
        return None

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        # A dataset passed here is prepared like the ones given at construction, behaviour log-probs included (from
        # the current model if the column is missing). SFT's `evaluate` then finds it already prepared.
        if isinstance(eval_dataset, Dataset | dict):
            datasets = eval_dataset if isinstance(eval_dataset, dict) else {"eval": eval_dataset}
            prepared = {
                name: self._add_behavior_logps(
                    self._prepare_dataset(dataset, self.processing_class, self.args, False, None, name), name
                )
                for name, dataset in datasets.items()
            }
            eval_dataset = prepared if isinstance(eval_dataset, dict) else prepared["eval"]
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

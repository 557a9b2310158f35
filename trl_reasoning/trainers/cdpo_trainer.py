r"""CriticalTokenDPOTrainer: ``trl.DPOTrainer`` with critical-token weights on the rejected response (cDPO).

cDPO ("Critical Tokens Matter", Lin et al. 2024, arXiv 2411.19943) weights each token of the rejected response by
``w_t = 1 − s_t``, its contrastive-estimation score under a model fine-tuned on correct traces versus one fine-tuned on
wrong traces (:mod:`trl_reasoning.critical_tokens`), and trains with

    ℓ = −log σ( γ · [ Σ_t log(π_θ/π_ref)(y⁺_t) − Σ_t w_t · log(π_θ/π_ref)(y⁻_t) ] )

(:func:`trl_reasoning.losses.cdpo_loss`). Chosen tokens keep weight 1; with every weight 1 it is DPO.

How it plugs into TRL: the weights travel with the batch as a ``(2B, L)`` tensor (1 on chosen tokens, ``w_t`` on
rejected ones, 0 elsewhere). While TRL's own loss runs, a forward hook on the policy (and the reference model)
multiplies the per-token log-probs the fused LM head returns by these weights, so TRL's sums become the weighted sums
above: every ``loss_type``, ``ld_alpha``, PEFT (the reference is the adapter-disabled base) and
``precompute_ref_log_probs`` (the stored reference sums are weighted the same way) work unchanged. The official code's
per-position form (``cdpo_form="per_position"``) reads the captured per-token log-ratios instead.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import IterableDataset
from datasets.fingerprint import Hasher
from transformers import AutoProcessor
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import get_config_model_id, global_then_local_main_first, pad

from ..critical_tokens.scoring import ContrastiveScorer
from ..losses.cdpo import CDPO_FORMS, cdpo_loss
from ..papers import CDPO
from .common import bind_parent_arguments, mean_over_processes, resolve_config, signature_of


__all__ = ["CriticalTokenDPOConfig", "CriticalTokenDPOTrainer", "DataCollatorForCriticalTokenPreference"]

TOKEN_WEIGHTS_KEY = "token_weights"
# Weight of the rejected completion's final EOS: the paper's 1 − s_EOS, or the official code's 1.
EOS_WEIGHTS = ("score", "one")


@dataclass
class CriticalTokenDPOConfig(DPOConfig):
    r"""
    Configuration for [`CriticalTokenDPOTrainer`]: every field of `trl.DPOConfig`, plus:

    Parameters:
        rejected_weights_column (`str`, defaults to `"rejected_token_weights"`):
            Dataset column with one weight per token of the rejected completion, as the trainer tokenises it
            (`1 − s_t` from contrastive estimation). A list one shorter than the tokenised rejected completion is
            read as missing the EOS the trainer appends, which gets weight 1 (as in the official code).
        critical_positive_adapter (`str` or `None`, defaults to `None`):
            Path of the positive LoRA adapter (`trl_reasoning.critical_tokens.train_contrastive_adapters`). When
            both adapters are set and the dataset has no weight column, the weights are computed once, when the
            trainer is built, on the policy's base model with each adapter in turn, and cached as that column.
        critical_negative_adapter (`str` or `None`, defaults to `None`):
            Path of the negative LoRA adapter.
        critical_beta (`float`, defaults to `1.0`):
            β of the contrastive estimation `softmax((1+β)·z_pos − β·z_neg)` (paper and code: 1.0).
        critical_scoring_batch_size (`int`, defaults to `8`):
            Batch size of that scoring pass.
        cdpo_form (`str`, defaults to `"sequence"`):
            `"sequence"`: the paper's objective (the weighted log-ratios summed inside one sigmoid per pair).
            `"per_position"`: the official code's variant, one sigmoid per completion position (chosen and rejected
            tokens paired by index), averaged; needs `loss_type="sigmoid"` and per-token reference log-probs
            (`precompute_ref_log_probs=False`).
        eos_weight (`str`, defaults to `"score"`):
            Weight of the EOS token that ends the rejected completion (the one the trainer appends to plain-text
            completions). `"score"`: the paper's rule, `1 − s_EOS` like every other rejected token, taken from the
            weight column (a column one weight short, with no score for the EOS, gives it 1). `"one"`: the official
            code's choice, weight 1 whatever the column says. A rejected completion that does not end with the
            tokenizer's EOS is left as it is.

    These defaults differ from `trl.DPOConfig`:

    - `beta` (γ): `1.0` instead of `0.1`, the paper's value (the official code uses 0.1).

    `learning_rate` stays TRL's `1e-6`, so that a `trl.DPOConfig` keeps its meaning here. The paper pairs γ = 1.0 with
    4e-5 (LoRA, 3 epochs; the official code uses 4e-5 with γ = 0.1); `recipes/cdpo.py` defaults to that set, and
    code that builds this config directly should pass `learning_rate=4e-5` with a LoRA `peft_config`.
    """

    beta: float = field(
        default=1.0,
        metadata={
            "help": "γ, the temperature of the DPO sigmoid. Defaults to 1.0 as in the cDPO paper (the official code and "
            "TRL's DPO use 0.1)."
        },
    )
    rejected_weights_column: str = field(
        default="rejected_token_weights",
        metadata={
            "help": "Dataset column with one weight per token of the rejected completion as the trainer tokenises it "
            "(1 - s_t). One weight short is read as missing the appended EOS, which gets weight 1."
        },
    )
    critical_positive_adapter: str | None = field(
        default=None,
        metadata={
            "help": "Path of the positive contrastive LoRA adapter. With `critical_negative_adapter`, the weights are "
            "computed once when the trainer is built if the dataset has no weight column."
        },
    )
    critical_negative_adapter: str | None = field(
        default=None,
        metadata={"help": "Path of the negative contrastive LoRA adapter (see critical_positive_adapter)."},
    )
    critical_beta: float = field(
        default=1.0,
        metadata={
            "help": "β of the contrastive estimation softmax((1+β) z_pos - β z_neg); >= 0. Paper and code: 1.0."
        },
    )
    critical_scoring_batch_size: int = field(
        default=8, metadata={"help": "Batch size of the pass that scores the rejected completions with the adapters."}
    )
    cdpo_form: str = field(
        default="sequence",
        metadata={
            "help": "'sequence' (the paper: weighted log-ratios summed inside one sigmoid per pair) or 'per_position' "
            "(the official code: one sigmoid per completion position, averaged; needs loss_type='sigmoid' and "
            "precompute_ref_log_probs=False).",
            "choices": list(CDPO_FORMS),
        },
    )
    eos_weight: str = field(
        default="score",
        metadata={
            "help": "Weight of the EOS ending the rejected completion: 'score' (the paper: 1 - s_EOS from the weight "
            "column, like every rejected token) or 'one' (the official code: always 1).",
            "choices": list(EOS_WEIGHTS),
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self._post_init_own_fields()

    def _post_init_own_fields(self) -> None:
        """Check the fields this class adds (also run when a `trl.DPOConfig` is upgraded)."""
        if self.cdpo_form not in CDPO_FORMS:
            raise ValueError(f"cdpo_form={self.cdpo_form!r} is not valid. Valid values: {list(CDPO_FORMS)}.")
        if self.eos_weight not in EOS_WEIGHTS:
            raise ValueError(
                f"eos_weight={self.eos_weight!r} is not valid. Valid values: {list(EOS_WEIGHTS)} ('score': the paper's "
                "1 - s_EOS; 'one': the official code's weight 1)."
            )
        if (self.critical_positive_adapter is None) != (self.critical_negative_adapter is None):
            raise ValueError(
                "Set both `critical_positive_adapter` and `critical_negative_adapter` (contrastive estimation needs "
                "the two models), or neither (the dataset then provides the weight column)."
            )
        if not (math.isfinite(self.critical_beta) and self.critical_beta >= 0):
            raise ValueError(f"critical_beta={self.critical_beta} must be a finite number >= 0 (paper: 1.0).")
        if self.critical_scoring_batch_size < 1:
            raise ValueError(f"critical_scoring_batch_size={self.critical_scoring_batch_size} must be >= 1.")
        if self.use_weighting:
            raise ValueError(
                "use_weighting=True (WPO) reads the per-token log-probs, which cDPO rescales; set use_weighting=False."
            )
        if self.cdpo_form == "per_position":
            if list(self.loss_type) != ["sigmoid"]:
                raise ValueError(
                    f"cdpo_form='per_position' is the official code's sigmoid loss; loss_type={self.loss_type} must be "
                    "['sigmoid']. Use cdpo_form='sequence' to weight another DPO loss."
                )
            if self.precompute_ref_log_probs:
                raise ValueError(
                    "cdpo_form='per_position' needs per-token reference log-probs, but precompute_ref_log_probs=True "
                    "stores one sum per sequence. Set precompute_ref_log_probs=False, or use cdpo_form='sequence'."
                )
            if self.ld_alpha is not None or self.f_divergence_type != "reverse_kl":
                raise ValueError(
                    "cdpo_form='per_position' supports neither ld_alpha nor an f-divergence other than 'reverse_kl'."
                )


@dataclass
class DataCollatorForCriticalTokenPreference(DataCollatorForPreference):
    """TRL's preference collator plus ``token_weights`` (2B, L) aligned with ``input_ids``.

    Rows are ``[chosen..., rejected...]`` as in TRL: 1 on chosen completion tokens, the example's weights (key
    ``weights_key``, one per rejected completion token) on rejected ones, 0 on prompt and padding. Truncation follows
    ``max_length`` / ``truncation_mode`` exactly as the token ids do.
    """

    weights_key: str = "rejected_token_weights"

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = super().torch_call(examples)
        rows = [[0.0] * len(ex["prompt_ids"]) + [1.0] * len(ex["chosen_ids"]) for ex in examples]
        rows += [[0.0] * len(ex["prompt_ids"]) + [float(w) for w in ex[self.weights_key]] for ex in examples]
        if self.max_length is not None:
            window = (
                slice(None, self.max_length) if self.truncation_mode == "keep_start" else slice(-self.max_length, None)
            )
            rows = [row[window] for row in rows]
        weights = pad(
            [torch.tensor(row, dtype=torch.float32) for row in rows], padding_value=0.0, padding_side="right"
        )
        width = output["input_ids"].size(1)
        output[TOKEN_WEIGHTS_KEY] = torch.nn.functional.pad(weights, (0, width - weights.size(1)))
        return output


class _LogProbWeighting:
    """Forward hooks that multiply the fused LM head's per-token log-probs by the current batch's weights.

    Only calls made with ``fused_lm_head=True`` (the trainer's scoring forwards) are touched; generation is not. The
    unweighted log-probs of each call are kept in ``captured`` (policy first, then reference) for the per-position
    form.
    """

    def __init__(self):
        self.weights: torch.Tensor | None = None
        self.captured: list[torch.Tensor] = []
        self._handles: dict[int, Any] = {}

    def attach(self, *modules: torch.nn.Module | None) -> None:
        """Hook ``modules`` (once each)."""
        for module in modules:
            if module is not None and id(module) not in self._handles:
                self._handles[id(module)] = module.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output):
        if self.weights is None or not kwargs.get("fused_lm_head", False):
            return None
        log_probs = output.log_probs
        width = self.weights.size(1)
        if log_probs.size(0) != self.weights.size(0) or log_probs.size(1) < width:
            raise RuntimeError(
                f"cDPO token weights {tuple(self.weights.shape)} do not line up with the model's per-token log-probs "
                f"{tuple(log_probs.shape)}: a custom data_collator must return `token_weights` shaped like input_ids."
            )
        self.captured.append(log_probs[:, -width:])
        weights = self.weights.to(log_probs.device, log_probs.dtype)
        output.log_probs = torch.cat([log_probs[:, :-width], log_probs[:, -width:] * weights], dim=1)
        return output

    @contextlib.contextmanager
    def applied(self, weights: torch.Tensor):
        self.weights, self.captured = weights, []
        try:
            yield self.captured
        finally:
            self.weights = None


class CriticalTokenDPOTrainer(DPOTrainer):
    """Drop-in replacement for `trl.DPOTrainer` that trains cDPO: DPO whose rejected tokens are weighted by their
    critical-token weights `1 − s_t`. See [`CriticalTokenDPOConfig`] and `trl_reasoning.losses.cdpo_loss`.

    The dataset is TRL's preference format (`prompt`, `chosen`, `rejected`, text or conversational) plus the weight
    column `args.rejected_weights_column`; or, without that column, `args.critical_positive_adapter` and
    `args.critical_negative_adapter` and the weights are computed when the trainer is built.
    """

    _tag_names = ["trl", "dpo", "trl-reasoning", "cdpo"]
    _name = "cDPO"
    _paper = CDPO

    @signature_of(DPOTrainer.__init__)
    def __init__(self, *args, **kwargs):
        """Takes exactly `trl.DPOTrainer`'s arguments, positionally or by keyword. `args` may be a
        [`CriticalTokenDPOConfig`], a `trl.DPOConfig` (or a subclass), upgraded with this package's defaults, or
        None."""
        arguments = bind_parent_arguments(DPOTrainer.__init__, self, args, kwargs)
        model, train_dataset, eval_dataset = arguments["model"], arguments["train_dataset"], arguments["eval_dataset"]
        args = arguments["args"] = resolve_config(model, arguments["args"], CriticalTokenDPOConfig, "cDPO", DPOConfig)
        processing_class = arguments["processing_class"]
        if processing_class is None:
            model_id = model if isinstance(model, str) else get_config_model_id(model.config)
            processing_class = arguments["processing_class"] = AutoProcessor.from_pretrained(
                model_id, trust_remote_code=args.trust_remote_code
            )
        if arguments["data_collator"] is None:
            tokenizer = getattr(processing_class, "tokenizer", processing_class)
            pad_token = args.pad_token or tokenizer.pad_token or tokenizer.eos_token
            arguments["data_collator"] = DataCollatorForCriticalTokenPreference(
                pad_token_id=tokenizer.convert_tokens_to_ids(pad_token),
                max_length=args.max_length,
                truncation_mode=args.truncation_mode,
                pad_to_multiple_of=args.pad_to_multiple_of,
                weights_key=args.rejected_weights_column,
            )
        # Weights from the contrastive adapters are scored on a frozen copy of the base model, taken before TRL wraps
        # the policy (a `peft_config` injects the policy's adapter in place) and freed once the datasets are ready.
        self._weighting = _LogProbWeighting()
        self._scorer = None
        if args.critical_positive_adapter is not None and _lacks_column(
            [train_dataset, *(eval_dataset.values() if isinstance(eval_dataset, dict) else [eval_dataset])],
            args.rejected_weights_column,
        ):
            self._scorer = ContrastiveScorer.from_policy(
                model,
                args.critical_positive_adapter,
                args.critical_negative_adapter,
                beta=args.critical_beta,
                model_init_kwargs=args.model_init_kwargs,
            )
        super().__init__(**arguments)
        self._scorer = None

    # ----------------------------------------------------------------------------------------------------- data
    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.args.rejected_weights_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.args.rejected_weights_column]

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        column = args.rejected_weights_column
        has_column = column in (dataset.column_names or next(iter(dataset)).keys())
        if not has_column:
            if args.critical_positive_adapter is None:
                raise ValueError(
                    f"The {dataset_name} dataset has no {column!r} column (one weight per rejected completion token). "
                    "Add it (trl_reasoning.critical_tokens scores rejected completions), set `rejected_weights_column` "
                    "to the column you have, or set `critical_positive_adapter` and `critical_negative_adapter` so the "
                    "trainer computes the weights."
                )
            dataset = self._add_weights_from_adapters(dataset, args, dataset_name)
        else:
            fn_kwargs = {"column": column, "eos_token_id": self._tokenizer.eos_token_id}
            dataset = dataset.map(_check_weights, fn_kwargs=fn_kwargs)
        if args.eos_weight == "one":  # the official code's weight 1 on the final EOS, whatever its score
            fn_kwargs = {"column": column, "eos_token_id": self._tokenizer.eos_token_id}
            dataset = dataset.map(_eos_weight_one, fn_kwargs=fn_kwargs)
        return dataset

    def _add_weights_from_adapters(self, dataset, args: CriticalTokenDPOConfig, dataset_name: str):
        if isinstance(dataset, IterableDataset):
            raise ValueError(
                "Computing critical-token weights from adapters needs a map-style Dataset; score the IterableDataset "
                f"beforehand and pass its {args.rejected_weights_column!r} column."
            )
        scorer, column = self._scorer, args.rejected_weights_column
        pad_token_id = self._tokenizer.pad_token_id

        def score(batch):
            weights = scorer.completion_weights(batch["prompt_ids"], batch["rejected_ids"], pad_token_id=pad_token_id)
            return {column: weights}

        fingerprint = Hasher.hash(
            (dataset._fingerprint, args.critical_positive_adapter, args.critical_negative_adapter, args.critical_beta)
        )
        with global_then_local_main_first():
            return dataset.map(
                score,
                batched=True,
                batch_size=args.critical_scoring_batch_size,
                new_fingerprint=fingerprint,
                desc=f"Scoring critical tokens of the {dataset_name} dataset",
            )

    # ----------------------------------------------------------------------------------------------------- loss
    def compute_ref_log_probs(self, model, inputs):
        inputs = dict(inputs)
        weights = inputs.pop(TOKEN_WEIGHTS_KEY)
        self._weighting.attach(self.accelerator.unwrap_model(model), self.model)
        with self._weighting.applied(weights[:, 1:]):
            return super().compute_ref_log_probs(model, inputs)

    def _compute_loss(self, model, inputs, return_outputs):
        inputs = dict(inputs)
        if TOKEN_WEIGHTS_KEY not in inputs:
            raise ValueError(
                f"The batch has no {TOKEN_WEIGHTS_KEY!r}: a custom data_collator must add it (shaped like input_ids; "
                "see DataCollatorForCriticalTokenPreference)."
            )
        weights = inputs.pop(TOKEN_WEIGHTS_KEY)[:, 1:]
        mode = "train" if self.model.training else "eval"
        reference = self.accelerator.unwrap_model(self.ref_model) if self.ref_model is not None else None
        self._weighting.attach(self.model, reference)
        with self._weighting.applied(weights) as captured:
            result = super()._compute_loss(model, inputs, return_outputs)
        loss_mask = inputs["completion_mask"][:, 1:].to(weights.dtype)
        if self.args.cdpo_form == "per_position":
            policy, reference = captured[0], captured[1]
            chosen_mask, rejected_mask = loss_mask.chunk(2, dim=0)
            chosen_ratio, rejected_ratio = (policy - reference.detach()).chunk(2, dim=0)
            per_position = cdpo_loss(
                chosen_ratio,
                rejected_ratio,
                weights.chunk(2, dim=0)[1].to(rejected_ratio.dtype),
                chosen_mask,
                rejected_mask,
                beta=self.beta,
                form="per_position",
            )
            result = (per_position, result[1]) if return_outputs else per_position
        self._log_weight_metrics(mode, weights, loss_mask)
        return result

    def _log_weight_metrics(self, mode: str, weights: torch.Tensor, loss_mask: torch.Tensor) -> None:
        rejected_weights = weights.chunk(2, dim=0)[1].float()
        rejected_mask = loss_mask.chunk(2, dim=0)[1].float()
        tokens = rejected_mask.sum()
        mean = (rejected_weights * rejected_mask).sum() / tokens if tokens > 0 else torch.tensor(float("nan"))
        below = ((rejected_weights < 0.5).float() * rejected_mask).sum() / tokens if tokens > 0 else mean
        metrics = mean_over_processes(
            self.accelerator, {"critical/weight_mean": mean, "critical/frac_below_0.5": below}, weights.device
        )
        for name, value in metrics.items():
            self._metrics[mode][name].append(value)


def _lacks_column(datasets: list, column: str) -> bool:
    """Whether any given dataset (None is skipped) is known to lack ``column`` (unknown columns count as lacking)."""
    return any(ds is not None and column not in (getattr(ds, "column_names", None) or []) for ds in datasets)


def _check_weights(example: dict[str, Any], column: str, eos_token_id: int | None) -> dict[str, Any]:
    """One finite weight per rejected completion token; a missing final EOS weight becomes 1."""
    weights, rejected = example[column], example["rejected_ids"]
    if weights is None:
        raise ValueError(f"A row has {column}=None; every row needs one weight per rejected completion token.")
    weights = [float(w) for w in weights]
    if len(weights) == len(rejected) - 1 and rejected and rejected[-1] == eos_token_id:
        weights.append(1.0)
    if len(weights) != len(rejected):
        raise ValueError(
            f"{column} has {len(weights)} weights but the rejected completion has {len(rejected)} tokens as the trainer "
            "tokenises it. Compute the weights on the trainer's tokenisation (or let the trainer compute them from the "
            "adapters: critical_positive_adapter / critical_negative_adapter)."
        )
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"{column} contains a NaN or infinite weight; weights must be finite (1 - s_t is in [0, 1]).")
    return {column: weights}


def _eos_weight_one(example: dict[str, Any], column: str, eos_token_id: int | None) -> dict[str, Any]:
    """``eos_weight="one"``: weight 1 on the EOS that ends the rejected completion (the official code's choice)."""
    weights, rejected = list(example[column]), example["rejected_ids"]
    if rejected and eos_token_id is not None and rejected[-1] == eos_token_id:
        weights[-1] = 1.0
    return {column: weights}

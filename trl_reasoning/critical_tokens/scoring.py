r"""Score completion tokens with the two contrastive adapters: ``s_t = softmax((1+β)·z_pos − β·z_neg)[y_t]``.

:class:`ContrastiveScorer` wraps a ``PeftModel`` that carries the positive and the negative LoRA adapter on one base
model (:func:`~trl_reasoning.critical_tokens.adapters.train_contrastive_adapters` or
:func:`~trl_reasoning.critical_tokens.adapters.load_contrastive_adapters`). It runs the decoder once per adapter and
projects the hidden states through the shared LM head chunk by chunk
(:func:`trl_reasoning.token_weights.critical_token_scores_from_hidden`), so the ``(B, T, V)`` logits never exist.
Weights ``1 − s_t`` feed :class:`~trl_reasoning.trainers.cdpo_trainer.CriticalTokenDPOTrainer` (cDPO, Lin et al.
2024, arXiv 2411.19943) and ``ReasoningGRPOConfig(token_weighting="critical_tokens")``.
"""

from __future__ import annotations

import copy

import torch

from ..token_weights import critical_token_scores_from_hidden
from .adapters import adapter_hidden_states, lm_head, load_contrastive_adapters


__all__ = ["ContrastiveScorer", "score_preference_dataset", "tokenize_preference"]


class ContrastiveScorer:
    """Critical-token scores and weights from a model carrying a positive and a negative adapter.

    Args:
        model: a ``peft.PeftModel`` with both adapters loaded (the base weights are shared).
        positive_adapter: the positive adapter's name in ``model``.
        negative_adapter: the negative adapter's name in ``model``.
        beta: β of the contrastive estimation (paper and official code: 1.0).
        chunk_size: positions per LM-head chunk (None: automatic, about 64 MiB of logits per chunk).
    """

    def __init__(
        self,
        model,
        *,
        positive_adapter: str = "positive",
        negative_adapter: str = "negative",
        beta: float = 1.0,
        chunk_size: int | None = None,
    ):
        adapters = set(getattr(model, "peft_config", {}))
        missing = [name for name in (positive_adapter, negative_adapter) if name not in adapters]
        if missing:
            raise ValueError(
                f"The scoring model has no adapter named {missing}; it has {sorted(adapters)}. Load both with "
                "trl_reasoning.critical_tokens.load_contrastive_adapters(base_model, positive_path, negative_path)."
            )
        self.model = model.eval()
        self.positive_adapter, self.negative_adapter = positive_adapter, negative_adapter
        self.beta, self.chunk_size = beta, chunk_size

    @classmethod
    def from_adapters(
        cls, base_model, positive_path: str, negative_path: str, *, beta: float = 1.0, chunk_size: int | None = None
    ) -> ContrastiveScorer:
        """Load the two saved adapters onto ``base_model`` (no copy is made) and wrap them."""
        return cls(
            load_contrastive_adapters(base_model, positive_path, negative_path), beta=beta, chunk_size=chunk_size
        )

    @classmethod
    def from_policy(
        cls,
        policy,
        positive_path: str,
        negative_path: str,
        *,
        beta: float = 1.0,
        chunk_size: int | None = None,
        model_init_kwargs: dict | None = None,
    ) -> ContrastiveScorer:
        """Load the two adapters onto a frozen copy of ``policy``'s base model, leaving ``policy`` untouched.

        ``policy`` is a model id/path (loaded with ``model_init_kwargs``), a ``transformers`` model (deep-copied), or
        a ``PeftModel`` (deep-copied, its own adapters removed). The copy costs one more set of base weights.
        """
        if isinstance(policy, str):
            from transformers import AutoModelForCausalLM

            base = AutoModelForCausalLM.from_pretrained(policy, **(model_init_kwargs or {}))
        else:
            base = copy.deepcopy(policy)
            if hasattr(base, "peft_config") and hasattr(base, "unload"):
                base = base.unload()  # drop the policy's own adapter layers, keep the base weights
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        return cls.from_adapters(base.eval(), positive_path, negative_path, beta=beta, chunk_size=chunk_size)

    def to(self, device) -> ContrastiveScorer:
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def scores(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """``s_t`` (B, T) for every token ``input_ids[:, t]`` with ``completion_mask[:, t] == 1``; 0 elsewhere.

        Token ``t`` is scored from the hidden state at ``t − 1``, so position 0 is never scored.
        """
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        completion_mask = completion_mask.to(device)
        positive = adapter_hidden_states(self.model, self.positive_adapter, input_ids, attention_mask)
        negative = adapter_hidden_states(self.model, self.negative_adapter, input_ids, attention_mask)
        weight, bias = lm_head(self.model)
        shifted = critical_token_scores_from_hidden(
            positive[:, :-1],
            negative[:, :-1],
            weight,
            input_ids[:, 1:],
            completion_mask[:, 1:].bool(),
            beta=self.beta,
            lm_head_bias=bias,
            chunk_size=self.chunk_size,
        )
        return torch.nn.functional.pad(shifted, (1, 0))

    def weights(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """Token weights ``1 − s_t`` (B, T) on the completion tokens, 0 elsewhere."""
        return (1.0 - self.scores(input_ids, attention_mask, completion_mask)) * completion_mask.to(self.device).bool()

    def completion_weights(
        self,
        prompt_ids: list[list[int]],
        completion_ids: list[list[int]],
        *,
        pad_token_id: int,
        batch_size: int = 8,
    ) -> list[list[float]]:
        """Weights ``1 − s_t`` of each completion token given its prompt, as plain lists (one per completion)."""
        if len(prompt_ids) != len(completion_ids):
            raise ValueError(
                f"prompt_ids has {len(prompt_ids)} rows but completion_ids has {len(completion_ids)}; pass one prompt "
                "per completion."
            )
        results: list[list[float]] = []
        for start in range(0, len(prompt_ids), batch_size):
            prompts, completions = prompt_ids[start : start + batch_size], completion_ids[start : start + batch_size]
            width = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
            input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros_like(input_ids)
            completion_mask = torch.zeros_like(input_ids)
            for row, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
                length = len(prompt) + len(completion)
                input_ids[row, :length] = torch.tensor(list(prompt) + list(completion), dtype=torch.long)
                attention_mask[row, :length] = 1
                completion_mask[row, len(prompt) : length] = 1
            weights = self.weights(input_ids, attention_mask, completion_mask).cpu()
            for row, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
                results.append(weights[row, len(prompt) : len(prompt) + len(completion)].tolist())
        return results


def tokenize_preference(example: dict, tokenizer) -> dict[str, list[int]]:
    """``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` of one preference row, exactly as ``trl.DPOTrainer`` does.

    Plain-text rows get the EOS token appended to both completions (when missing); conversational rows go through the
    chat template. The completion starts where the tokenised prompt and prompt+completion stop agreeing.
    """
    from trl.data_utils import _tokenize, common_prefix_length, is_conversational

    prompt, chosen, rejected = example["prompt"], example["chosen"], example["rejected"]
    if is_conversational(example):
        template_kwargs = dict(example.get("chat_template_kwargs") or {})
        prompt_ids = _tokenize(tokenizer, prompt, add_generation_prompt=True, **template_kwargs)["input_ids"]
        chosen_full = _tokenize(tokenizer, prompt + chosen, **template_kwargs)["input_ids"]
        rejected_full = _tokenize(tokenizer, prompt + rejected, **template_kwargs)["input_ids"]
    else:
        eos = tokenizer.eos_token
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
        prompt_ids = _tokenize(tokenizer, prompt)["input_ids"]
        chosen_full = _tokenize(tokenizer, prompt + chosen)["input_ids"]
        rejected_full = _tokenize(tokenizer, prompt + rejected)["input_ids"]
    start = min(common_prefix_length(prompt_ids, chosen_full), common_prefix_length(prompt_ids, rejected_full))
    return {"prompt_ids": prompt_ids[:start], "chosen_ids": chosen_full[start:], "rejected_ids": rejected_full[start:]}


def score_preference_dataset(
    pairs,
    scorer: ContrastiveScorer,
    tokenizer,
    *,
    column: str = "rejected_token_weights",
    batch_size: int = 8,
):
    """``pairs`` (TRL preference format) with ``column``: the weights ``1 − s_t`` of each rejected completion token.

    The tokens are those ``CriticalTokenDPOTrainer`` trains on (:func:`tokenize_preference`), so the column can be
    saved and reused; the trainer checks the lengths when it loads it.
    """
    tokenized = [tokenize_preference(row, tokenizer) for row in pairs]
    weights = scorer.completion_weights(
        [t["prompt_ids"] for t in tokenized],
        [t["rejected_ids"] for t in tokenized],
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        batch_size=batch_size,
    )
    if column in pairs.column_names:
        pairs = pairs.remove_columns(column)
    return pairs.add_column(column, weights)

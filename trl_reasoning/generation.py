"""Sample completions with ``transformers`` generation and label them with a reward (shared by evaluation, the
recipes and the critical-tokens pipeline).

:func:`sample_completions` samples ``N`` completions per prompt and labels them (:func:`label_completions`);
:func:`greedy_accuracy` is the share of prompts a greedy completion gets right. For large runs, sample with vLLM or
TRL and label the rows with :func:`label_completions`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


__all__ = ["greedy_accuracy", "label_completions", "sample_completions"]


def label_completions(
    rows: list[dict],
    texts: list[str],
    reward_func: Callable,
    *,
    answer_extractor: Callable[[str], str | None],
    correct_threshold: float = 1.0,
) -> list[dict]:
    """Score one completion text per row: ``{**row, completion, reward, correct, extracted_answer}``.

    The completion is the text, or one assistant message when the row's prompt is conversational; ``reward_func``
    (TRL's reward signature) sees the rows' other columns as keyword arguments.
    """
    if not rows:
        return []
    conversational = not isinstance(rows[0]["prompt"], str)
    completions = [[{"role": "assistant", "content": t}] if conversational else t for t in texts]
    extra = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
    rewards = reward_func(prompts=[row["prompt"] for row in rows], completions=completions, **extra)
    return [
        {
            **row,
            "completion": completion,
            "reward": reward,
            "correct": reward is not None and reward >= correct_threshold,
            "extracted_answer": answer_extractor(text),
        }
        for row, completion, text, reward in zip(rows, completions, texts, rewards, strict=True)
    ]


def _completion_token_counts(new_tokens: torch.Tensor, tokenizer) -> list[int]:
    """Generated tokens per row up to and including the first end-of-sequence (``generate`` pads after it)."""
    length = new_tokens.size(1)
    if tokenizer.eos_token_id is None:
        return [length] * new_tokens.size(0)
    is_eos = new_tokens == tokenizer.eos_token_id
    first_eos = torch.where(
        is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, torch.full_like(is_eos[:, 0], length, dtype=torch.long)
    )
    return [int(value) for value in first_eos]


@torch.no_grad()
def sample_completions(
    model,
    tokenizer,
    dataset,
    reward_func: Callable,
    *,
    num_samples: int = 8,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 32,
    answer_extractor: Callable[[str], str | None] | None = None,
    correct_threshold: float = 1.0,
    seed: int = 0,
    synced_gpus: bool | None = None,
):
    """``num_samples`` completions per row of ``dataset`` (a ``prompt`` column plus the reward's columns), labelled.

    Returns a ``datasets.Dataset`` with ``prompt``, ``completion`` (text, or one assistant message for conversational
    prompts), ``reward``, ``correct`` (``reward >= correct_threshold``) and ``extracted_answer`` (by
    ``answer_extractor``, default :func:`trl_reasoning.rewards.extract_final_answer`) and ``completion_tokens`` (the
    generated tokens up to and including the first end-of-sequence), plus the dataset's other columns.
    ``reward_func`` has TRL's reward signature. ``temperature=0`` decodes greedily; ``top_p`` < 1 samples from the
    nucleus. The caller's random state (CPU and CUDA) is restored afterwards. ``synced_gpus`` is
    passed to ``generate`` (which turns it on by itself under DeepSpeed ZeRO-3 or FSDP with several processes; pass
    False when only one process generates, or the others are waited for forever).
    """
    from datasets import Dataset

    if "prompt" not in dataset.column_names:
        raise ValueError(f"The dataset needs a 'prompt' column; it has {dataset.column_names}.")
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 decodes greedily).")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1].")
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples={num_samples} and batch_size={batch_size} must be >= 1.")
    if answer_extractor is None:
        from .rewards import extract_final_answer

        answer_extractor = extract_final_answer
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    generator_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    torch.manual_seed(seed)
    rows = [row for row in dataset for _ in range(num_samples)]
    out = []
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            conversational = not isinstance(batch[0]["prompt"], str)
            texts = [
                tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
                if conversational
                else row["prompt"]
                for row in batch
            ]
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            sampling = (
                {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": top_p} if temperature > 0 else {}
            )
            generated = model.generate(
                **encoded,
                **(sampling or {"do_sample": False}),
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **({} if synced_gpus is None else {"synced_gpus": synced_gpus}),
            )
            new_tokens = generated[:, encoded["input_ids"].size(1) :]
            texts_out = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            labelled = label_completions(
                batch,
                texts_out,
                reward_func,
                answer_extractor=answer_extractor,
                correct_threshold=correct_threshold,
            )
            for row, count in zip(labelled, _completion_token_counts(new_tokens, tokenizer), strict=True):
                out.append({**row, "completion_tokens": count})
    finally:
        tokenizer.padding_side = padding_side
        torch.random.set_rng_state(generator_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        model.train(was_training)
    return Dataset.from_list(out)


def greedy_accuracy(model, tokenizer, dataset, reward_func, *, max_new_tokens: int = 8, answer_extractor=None):
    """The share of ``dataset``'s prompts whose greedy completion ``reward_func`` scores as correct (1.0), generated
    by this process alone (``synced_gpus=False``: the others may be waiting at a barrier)."""
    samples = sample_completions(
        model,
        tokenizer,
        dataset,
        reward_func,
        num_samples=1,
        max_new_tokens=max_new_tokens,
        temperature=0,
        answer_extractor=answer_extractor,
        synced_gpus=False,
    )
    return sum(samples["correct"]) / max(len(samples), 1)

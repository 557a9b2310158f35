"""Supervised warm-ups that turn the random tiny model into a policy that is sometimes right on the embedded task."""

from __future__ import annotations

import random

import torch

from ..generation import greedy_accuracy
from .model import build_tiny_model
from .task import arithmetic_reward, completion_text


def warm_up(
    model,
    tokenizer,
    dataset,
    *,
    steps: int = 300,
    learning_rate: float = 3e-3,
    batch_size: int = 32,
    seed=0,
    until=None,
    check_every: int = 50,
):
    """A short supervised warm-up on ``dataset`` (``prompt`` + ``answer``): completion-only cross-entropy, AdamW.

    Turns the random tiny model into a policy that answers the embedded task sometimes right and sometimes wrong, as
    a real base model does, so RL and contrastive estimation have both kinds of samples. With ``until`` (a function
    of the model returning True to stop), it is called every ``check_every`` steps and ends the warm-up early, so
    the warm-up can stop at a skill level rather than at a step count. Returns the model.
    """
    rng = random.Random(seed)
    rows = list(dataset)
    eos = tokenizer.eos_token

    def encode(row):
        prompt = row["prompt"]
        text = (
            prompt
            if isinstance(prompt, str)
            else tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        )
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(f"{row['answer']}{eos}", add_special_tokens=False)["input_ids"]
        return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids

    encoded = [encode(row) for row in rows]
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    for step in range(1, steps + 1):
        batch = [encoded[rng.randrange(len(encoded))] for _ in range(batch_size)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
            attention_mask[i, : len(ids)] = 1
        loss = model(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), labels=labels.to(device)
        ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if until is not None and step % check_every == 0:
            model.eval()
            if until(model):
                break
            model.train()
    model.eval()
    return model


def with_verbose_answers(dataset, *, share: float = 0.5, seed: int = 0):
    """Warm-up targets in two lengths: for a random ``share`` of rows the answer restates the problem (``12+7=19``),
    for the rest it is the bare number (``19``). :func:`arithmetic_reward` accepts both, so a policy warmed up on
    these gives correct answers of two lengths, which length-aware methods (DRPO) can tell apart.

    Returns ``(dataset with the new answer column, the share of rows actually made verbose)``.
    """
    rng = random.Random(seed)
    verbose = [rng.random() < share for _ in range(len(dataset))]

    def target(row, index):
        return {"answer": completion_text(row["prompt"]) + row["answer"] if verbose[index] else row["answer"]}

    return dataset.map(target, with_indices=True), sum(verbose) / max(len(verbose), 1)


def warm_up_mixed_lengths(
    tokenizer, train, *, seed: int = 0, verbose_share: float = 0.5, target_accuracy: float = 0.3, max_steps=3000
):
    """A tiny model warmed up on :func:`with_verbose_answers` targets until greedy accuracy on the first 64 rows of
    ``train`` reaches ``target_accuracy`` (checked every 50 steps, with up to 12 new tokens): a policy whose correct
    answers come in two lengths, the start of the docs' DRPO figure and of ``benchmarks/methods_toy.py``.

    Returns ``(model, the share of verbose targets)``.
    """
    targets, share = with_verbose_answers(train, share=verbose_share, seed=seed)
    torch.manual_seed(seed)
    model = build_tiny_model(tokenizer, seed=seed)
    probe = train.select(range(min(64, len(train))))
    warm_up(
        model,
        tokenizer,
        targets,
        steps=max_steps,
        seed=seed,
        until=lambda m: greedy_accuracy(m, tokenizer, probe, arithmetic_reward, max_new_tokens=12) >= target_accuracy,
    )
    return model, share

"""A tiny in-process model, tokenizer and arithmetic task: everything a test or a CPU demo needs, no hub access.

* :func:`build_tokenizer` — a character-level tokenizer made with the ``tokenizers`` library, with a ChatML-style
  chat template and ``<|im_end|>`` as end-of-sequence.
* :func:`build_tiny_model` — a small, randomly initialised ``Qwen2ForCausalLM`` (or ``LlamaForCausalLM``).
* :func:`arithmetic_dataset` — procedurally generated ``a+b`` / ``a-b`` / ``a*b`` prompts with exact gold answers.
* :func:`arithmetic_split` — every problem of a small operand range, split into disjoint training and held-out sets.
* :func:`arithmetic_reward` — 1.0 when the completion's last integer equals the gold answer, else 0.0.
"""

from __future__ import annotations

import random
import re
import string

import torch


SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]
CHARACTERS = list(string.digits + string.ascii_letters + string.punctuation + " \n")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer():
    """A character-level ``PreTrainedTokenizerFast`` with a chat template (pad ``<|pad|>``, eos ``<|im_end|>``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        bos_token=None,
        unk_token="?",
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.padding_side = "left"
    return tokenizer


def load_pretrained_tokenizer(name_or_path: str, **kwargs):
    """``AutoTokenizer.from_pretrained``, except that a directory holding a plain ``tokenizers`` tokenizer (the
    embedded character tokenizer, saved with a model) is loaded as it was saved.

    transformers 5 rebuilds such a tokenizer as the model type's own class (``Qwen2Tokenizer`` next to a Qwen2
    ``config.json``), which drops the character tokenizer's newline tokens: the model trained on one encoding would
    be evaluated on another. Hub ids and directories of other tokenizers go to ``AutoTokenizer`` unchanged.
    """
    import json
    from pathlib import Path

    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    config = Path(name_or_path) / "tokenizer_config.json"
    if config.is_file() and (Path(name_or_path) / "tokenizer.json").is_file():
        saved_class = json.loads(config.read_text()).get("tokenizer_class")
        if saved_class in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return PreTrainedTokenizerFast.from_pretrained(name_or_path, **kwargs)
    return AutoTokenizer.from_pretrained(name_or_path, **kwargs)


def build_tiny_model(
    tokenizer=None,
    *,
    architecture: str = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
):
    """A small randomly initialised causal LM sized to ``tokenizer`` (deterministic given ``seed``)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = tokenizer or build_tokenizer()
    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if architecture not in classes:
        raise ValueError(f"architecture={architecture!r} is not supported. Valid values: {sorted(classes)}.")
    config_cls, model_cls = classes[architecture]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config._name_or_path = f"tiny-{architecture}"
    return model


_OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def arithmetic_problems(n: int, *, seed: int = 0, max_operand: int = 20, operations: str = "+-*") -> list[dict]:
    """``n`` problems ``{"question": "7+5", "answer": "12"}`` drawn with ``random.Random(seed)``."""
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        op = rng.choice(operations)
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        problems.append({"question": f"{a}{op}{b}", "answer": str(_OPERATIONS[op](a, b))})
    return problems


def arithmetic_split(
    *, max_first: int = 99, max_second: int = 9, operations: str = "+", num_eval: int = 200, seed: int = 0
):
    """Every problem ``a op b`` with ``0 <= a <= max_first`` and ``0 <= b <= max_second``, shuffled, split in two.

    Returns ``(train, held_out)`` as ``datasets.Dataset`` with no problem in both; ``held_out`` has ``num_eval``
    problems (at most a quarter of them all). Columns: ``prompt`` (one user message), ``answer`` and
    ``difficulty``: the answer's length in characters, plus one when the last digit carries or borrows (``3+4`` is 1,
    ``13+4`` is 2, ``18+4`` is 3), so results can be broken down by difficulty. The default range (a two-digit plus a
    one-digit number) is one a tiny model learns in a way that generalises: the held-out problems share the digit
    facts of the training ones.
    """
    from datasets import Dataset

    problems = [(a, op, b) for op in operations for a in range(max_first + 1) for b in range(max_second + 1)]
    random.Random(seed).shuffle(problems)
    num_eval = min(num_eval, len(problems) // 4)
    rows = []
    for a, op, b in problems:
        answer = str(_OPERATIONS[op](a, b))
        carries = (op == "+" and a % 10 + b % 10 >= 10) or (op == "-" and a % 10 < b % 10)
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"{a}{op}{b}="}],
                "answer": answer,
                "difficulty": len(answer) + int(carries),
            }
        )
    return Dataset.from_list(rows[num_eval:]), Dataset.from_list(rows[:num_eval])


def arithmetic_dataset(n: int = 64, *, seed: int = 0, conversational: bool = True, **kwargs):
    """A ``datasets.Dataset`` with ``prompt`` (chat messages or plain text) and ``answer`` columns."""
    from datasets import Dataset

    rows = []
    for problem in arithmetic_problems(n, seed=seed, **kwargs):
        text = f"{problem['question']}="
        prompt = [{"role": "user", "content": text}] if conversational else text
        rows.append({"prompt": prompt, "answer": problem["answer"]})
    return Dataset.from_list(rows)


_LAST_INTEGER = re.compile(r"-?\d+")


def completion_text(completion) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return completion[-1]["content"] if completion else ""
    return completion


def last_integer(text: str) -> str | None:
    """The last integer in ``text`` (the embedded task's final answer), or None."""
    found = _LAST_INTEGER.findall(text)
    return found[-1] if found else None


def arithmetic_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when the last integer in the completion equals ``answer``, else 0.0 (TRL reward signature)."""
    return [
        1.0 if last_integer(completion_text(completion)) == str(gold).strip() else 0.0
        for completion, gold in zip(completions, answer, strict=True)
    ]


def coin_reward(completions, **kwargs) -> list[float]:
    """A deterministic 0/1 "coin flip" of the completion text (CRC32 parity): mixed groups for any policy.

    Useful in tests, where a random tiny model would score 0 on every real task and give all-zero advantages.
    """
    import zlib

    return [float(zlib.crc32(completion_text(c).encode()) % 2) for c in completions]


def length_reward(completions, **kwargs) -> list[float]:
    """A continuous reward in [0, 1): the completion's length in characters over 100 (for multi-reward tests)."""
    return [min(len(completion_text(c)), 99) / 100 for c in completions]


def scripted_rollout(lengths=None, *, seed: int = 0, logprob: float | None = None):
    """A ``rollout_func`` for ``GRPOTrainer`` whose completions depend only on the global row and the step.

    Row ``j`` of the global generation batch (``process_index * local_batch + i``) at step ``s`` gets a completion
    of digit tokens whose length is ``lengths[j]`` (a list) or pseudo-random in 1..8, so 1- and N-process runs see
    identical batches. Each completion ends with the end-of-sequence token. With ``logprob``, the rollout reports
    that log-prob for every sampled token (as vLLM reports its sampling log-probs); otherwise none.
    """
    import zlib

    def rollout(prompts, trainer):
        tokenizer = trainer.processing_class
        start = trainer.accelerator.process_index * len(prompts)
        prompt_ids, completion_ids = [], []
        for i, prompt in enumerate(prompts):
            row = start + i
            text = (
                prompt
                if isinstance(prompt, str)
                else tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            )
            prompt_ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
            key = zlib.crc32(f"{seed}:{trainer.state.global_step}:{row}:{text}".encode())
            length = lengths[row] if lengths is not None else 1 + key % 8
            digits = "".join(str((key >> k) % 10) for k in range(max(length - 1, 0)))
            completion_ids.append(tokenizer(digits, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        logprobs = None if logprob is None else [[float(logprob)] * len(ids) for ids in completion_ids]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}

    return rollout


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
    from .recipes.model import greedy_accuracy

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

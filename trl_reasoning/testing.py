"""Test helpers: toy rewards and a scripted rollout for the tests and the step benchmark.

* :func:`coin_reward` — a deterministic 0/1 reward that gives mixed groups for any policy.
* :func:`length_reward` — a continuous reward from the completion's length.
* :func:`scripted_rollout` — a TRL ``rollout_func`` whose completions depend only on the global row and the step.

The tiny model, tokenizer, arithmetic task and warm-up that used to live here are in :mod:`trl_reasoning.embedded`;
importing them from this module still works, with a ``FutureWarning`` naming the new import.
"""

from __future__ import annotations

import importlib
import warnings

from .embedded.task import completion_text as _completion_text


# Names moved to trl_reasoning.embedded, served here with a FutureWarning (see __getattr__).
_MOVED_TO = "trl_reasoning.embedded"  # every name of its __all__ lived here before


def _moved_names() -> list[str]:
    return list(importlib.import_module(_MOVED_TO).__all__)


__all__ = ["coin_reward", "length_reward", "scripted_rollout"]


def __getattr__(name: str):
    if name.startswith("__") or name not in _moved_names():
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _MOVED_TO
    warnings.warn(
        f"trl_reasoning.testing.{name} moved to {module}: use `from {module} import {name}`.",
        FutureWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(_moved_names()))


def coin_reward(completions, **kwargs) -> list[float]:
    """A deterministic 0/1 "coin flip" of the completion text (CRC32 parity): mixed groups for any policy.

    Useful in tests, where a random tiny model would score 0 on every real task and give all-zero advantages.
    """
    import zlib

    return [float(zlib.crc32(_completion_text(c).encode()) % 2) for c in completions]


def length_reward(completions, **kwargs) -> list[float]:
    """A continuous reward in [0, 1): the completion's length in characters over 100 (for multi-reward tests)."""
    return [min(len(_completion_text(c)), 99) / 100 for c in completions]


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

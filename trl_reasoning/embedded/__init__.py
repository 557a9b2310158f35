"""The embedded default: a tiny in-process model, tokenizer and arithmetic task, no hub access.

What the recipes train and evaluate on when no ``--model_name_or_path`` / ``--dataset_name`` is given, and what the
tests, the docs and the benchmarks run on:

* :mod:`.tokenizer` — :func:`build_tokenizer`, a character-level tokenizer made with the ``tokenizers`` library, with
  a ChatML-style chat template and ``<|im_end|>`` as end-of-sequence; :func:`load_pretrained_tokenizer`, which loads
  a saved one as it was saved.
* :mod:`.model` — :func:`build_tiny_model`, a small randomly initialised ``Qwen2ForCausalLM`` (or
  ``LlamaForCausalLM``).
* :mod:`.task` — :func:`arithmetic_dataset` (procedurally generated ``a+b`` / ``a-b`` / ``a*b`` prompts with exact
  gold answers), :func:`arithmetic_split` (every problem of a small operand range, split into disjoint training and
  held-out sets), :func:`arithmetic_reward` (1.0 when the completion's last integer equals the gold answer).
* :mod:`.warmup` — :func:`warm_up`, a short supervised warm-up that makes the random model sometimes right.
* :mod:`.instruct_task` — the same problems (and word problems) phrased for a pretrained instruct model such as
  SmolLM2 (:mod:`trl_reasoning.pretrained`), with a ``\\boxed{}`` answer and a ``solution`` column for
  :func:`trl_reasoning.rewards.accuracy_reward` (import it from the module: ``from
  trl_reasoning.embedded.instruct_task import instruct_dataset``).

This package imports nothing from the recipes, trainers or evaluation (an import-linter contract in pyproject.toml).
"""

from .model import build_tiny_model
from .task import (
    arithmetic_dataset,
    arithmetic_problems,
    arithmetic_reward,
    arithmetic_split,
    completion_text,
    last_integer,
)
from .tokenizer import CHARACTERS, CHAT_TEMPLATE, SPECIAL_TOKENS, build_tokenizer, load_pretrained_tokenizer
from .warmup import warm_up, warm_up_mixed_lengths, with_verbose_answers


__all__ = [
    "CHARACTERS",
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "arithmetic_dataset",
    "arithmetic_problems",
    "arithmetic_reward",
    "arithmetic_split",
    "build_tiny_model",
    "build_tokenizer",
    "completion_text",
    "last_integer",
    "load_pretrained_tokenizer",
    "warm_up",
    "warm_up_mixed_lengths",
    "with_verbose_answers",
]

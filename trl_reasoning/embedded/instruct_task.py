r"""The arithmetic task phrased for an instruct model: chat prompts that ask for brief reasoning and a ``\boxed{}``
answer, with a ``solution`` column for :func:`trl_reasoning.rewards.accuracy_reward`.

The embedded task's prompts (``"7+5="``) suit the character-level tiny model, which learns them from scratch; a
pretrained chat model such as SmolLM2-135M-Instruct (:func:`trl_reasoning.pretrained.smollm2_model_dir`) needs a
question and an instruction. Two kinds of problem, both with exact integer answers:

* ``"arithmetic"``: the embedded task's problems (:func:`~trl_reasoning.embedded.arithmetic_problems`), asked as
  ``"What is 7+5?"``;
* ``"word"``: procedurally generated word problems (``"Tom has 7 apples and buys 5 more. ..."``) for ``+``, ``-``
  and ``*``.

Every prompt is one user message: the question, then :data:`INSTRUCTION`. Completions are scored by
``accuracy_reward`` (the final ``\boxed{}``, "the answer is ...", else the last number), which reads ``solution``.
:data:`MAX_COMPLETION_TOKENS` is enough for the model to finish its answer.
"""

from __future__ import annotations

import random

from .task import arithmetic_problems


__all__ = [
    "INSTRUCTION",
    "MAX_COMPLETION_TOKENS",
    "instruct_dataset",
    "instruct_prompt",
    "word_problems",
]

INSTRUCTION = "Reason briefly, then give the final answer in \\boxed{}."
"""What follows every question."""

MAX_COMPLETION_TOKENS = 64
"""Completion budget for SmolLM2-135M-Instruct on this task (see the "Real model" docs page for the lengths)."""

_NAMES = ("Tom", "Anna", "Ben", "Maria", "Leo", "Sara", "Omar", "Mia")
_ITEMS = ("apples", "pencils", "marbles", "stickers", "books", "cookies", "cards", "shells")
_WORD_TEMPLATES = {
    "+": (
        "{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?",
        "{name} had {a} {item}. A friend gave {name} {b} more {item}. How many {item} does {name} have in total?",
    ),
    "-": (
        "{name} has {a} {item} and gives {b} of them away. How many {item} does {name} have left?",
        "There were {a} {item} in a box. {name} took {b} of them. How many {item} are left in the box?",
    ),
    "*": (
        "{name} buys {a} bags with {b} {item} in each bag. How many {item} does {name} buy in total?",
        "{name} puts {b} {item} on each of {a} shelves. How many {item} are on the shelves?",
    ),
}
_ANSWERS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _spaced_question(expression: str) -> str:
    """``"7-5"`` -> ``"What is 7 - 5?"`` (spaced, the operator is not read as a hyphen or a decimal point)."""
    for op in "+-*":
        head, sep, tail = expression[1:].partition(op)  # [1:]: never split at a leading sign
        if sep:
            return f"What is {expression[0]}{head} {op} {tail}?"
    raise ValueError(f"not an arithmetic problem: {expression!r}")


EXAMPLE = (
    "Lily has 4 balloons and gets 3 more. How many balloons does Lily have now?",
    "Lily has 4 + 3 = 7 balloons. The answer is \\boxed{7}.",
)
"""The worked example (question, answer) that opens every prompt, showing the answer format."""


def instruct_prompt(question: str, *, example: bool = True) -> list[dict]:
    """Chat messages asking ``question`` followed by :data:`INSTRUCTION`; with ``example``, first one worked
    exchange (:data:`EXAMPLE`) in the same form, so a small model fills in ``\\boxed{}`` instead of copying it."""
    messages = []
    if example:
        messages += [
            {"role": "user", "content": f"{EXAMPLE[0]}\n{INSTRUCTION}"},
            {"role": "assistant", "content": EXAMPLE[1]},
        ]
    return [*messages, {"role": "user", "content": f"{question}\n{INSTRUCTION}"}]


def word_problems(n: int, *, seed: int = 0, max_operand: int = 20, operations: str = "+-*") -> list[dict]:
    """``n`` word problems ``{"question": ..., "answer": "12"}`` drawn with ``random.Random(seed)``.

    Operands are drawn from 1..``max_operand``; a subtraction takes the smaller operand
    from the larger, so answers are never negative.
    """
    bad = sorted(set(operations) - set(_WORD_TEMPLATES))
    if bad or not operations:
        raise ValueError(f"operations={operations!r}: use a non-empty string of '+', '-' and '*'.")
    if max_operand < 1:
        raise ValueError(f"max_operand={max_operand} must be >= 1.")
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        op = rng.choice(operations)
        a, b = rng.randint(1, max_operand), rng.randint(1, max_operand)
        if op == "-" and b > a:
            a, b = b, a
        template = rng.choice(_WORD_TEMPLATES[op])
        question = template.format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), a=a, b=b)
        problems.append({"question": question, "answer": str(_ANSWERS[op](a, b))})
    return problems


def instruct_dataset(
    n: int = 64,
    *,
    seed: int = 0,
    word_share: float = 0.5,
    max_operand: int = 10,
    operations: str = "+-*",
):
    """A ``datasets.Dataset`` of ``n`` problems for an instruct model: ``prompt`` (chat messages), ``solution`` (the
    gold integer as text) and ``kind`` (``"arithmetic"`` or ``"word"``).

    ``round(n * word_share)`` rows are word problems, the rest arithmetic ones, in a seeded random order. Different
    seeds give different problems (use one seed for training, another for held-out problems; an arithmetic problem
    may repeat between them, the operand range being small).
    """
    from datasets import Dataset

    if not 0 <= word_share <= 1:
        raise ValueError(f"word_share={word_share} must be between 0 and 1 (the share of word problems).")
    if not operations or set(operations) - set(_ANSWERS):
        raise ValueError(f"operations={operations!r}: use a non-empty string of '+', '-' and '*'.")
    if max_operand < 1:
        raise ValueError(f"max_operand={max_operand} must be >= 1.")
    num_word = round(n * word_share)
    rows = [
        {"prompt": instruct_prompt(_spaced_question(p["question"])), "solution": p["answer"], "kind": "arithmetic"}
        for p in arithmetic_problems(n - num_word, seed=seed, max_operand=max_operand, operations=operations)
    ]
    rows += [
        {"prompt": instruct_prompt(p["question"]), "solution": p["answer"], "kind": "word"}
        for p in word_problems(num_word, seed=seed + 1, max_operand=max_operand, operations=operations)
    ]
    random.Random(seed).shuffle(rows)
    return Dataset.from_list(rows)

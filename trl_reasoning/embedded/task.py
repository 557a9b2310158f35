"""The embedded arithmetic task: problems, datasets, the final-answer extractor and the correctness reward."""

from __future__ import annotations

import random
import re


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

"""Data selection for cDPO's contrastive models and preference pairs (pure Python, no torch).

cDPO ("Critical Tokens Matter", Lin et al. 2024, arXiv 2411.19943, §3) starts from ``N`` sampled completions per
training question and builds three data sets:

* **positive** — one correct trajectory per question, to fine-tune the positive model ``P_p``;
* **negative** — wrong trajectories: per question, the wrong final answers sorted by frequency, the most frequent
  ones that together cover ``negative_top_p`` (paper: 50 %) of the wrong samples, one trajectory per kept answer,
  to fine-tune the negative model ``P_n``;
* **pairs** — one ``(prompt, chosen, rejected)`` pair per question that has both a correct and a wrong sample.

Rules (paper by default; the official code's variants behind named options):

* **Coverage:** answers are kept in frequency order until their cumulative count reaches ``negative_top_p`` times
  the number of wrong samples with an answer (the smallest such prefix): counts ``5,3,1,1`` at ``0.5`` keep one
  answer, ``4,3,3`` keep two. ``negative_skip_singletons=True`` reproduces the official code, which never keeps an
  answer seen only once unless it is the first (most frequent) one.
* **Ties** between equally frequent answers go to the answer that appears first in ``samples`` (input order); the
  trajectory within an answer is drawn with ``random.Random(seed)``. The code breaks ties at random.
* **No answer:** a wrong sample whose ``extracted_answer`` is ``None`` or blank has no answer to count, so (as in the
  official code) it is left out of the coverage denominator, the negative set and the pairs. The ``correct`` flag
  is trusted as is: a correct sample is usable whatever its extracted answer.
* **Positive:** a uniformly random correct trajectory (paper). ``positive_from_most_frequent_answer=True``
  reproduces the code: a random trajectory of the most frequent correct answer.
* **Pairs:** ``chosen`` is the positive trajectory and ``rejected`` the negative trajectory of the most frequent
  wrong answer (the same samples the code uses). A question with no correct, or no wrong sample with an answer,
  gives no pair and feeds only one of the SFT sets.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


__all__ = ["ContrastiveData", "select_contrastive_data"]


@dataclass
class ContrastiveData:
    """The selected data: SFT sets for the two contrastive models, DPO pairs and counts."""

    positive: Any = field(metadata={"help": "`datasets.Dataset` (prompt, completion): one correct per question."})
    negative: Any = field(metadata={"help": "`datasets.Dataset` (prompt, completion): the top-p wrong answers."})
    pairs: Any = field(metadata={"help": "`datasets.Dataset` (prompt, chosen, rejected) in TRL DPO format."})
    stats: dict = field(default_factory=dict, metadata={"help": "Counts of questions, samples and selections."})


def _prompt_key(prompt) -> str:
    """A hashable key for a string or conversational (list of messages) prompt."""
    if isinstance(prompt, str):
        return "s:" + prompt
    return "j:" + json.dumps(prompt, sort_keys=True, default=str)


def _answer_key(answer) -> str | None:
    """The answer as a stripped string; ``None`` when there is none (``None`` or blank)."""
    if answer is None:
        return None
    answer = str(answer).strip()
    return answer or None


def _rows(samples, columns: list[str]) -> list[Mapping]:
    if hasattr(samples, "column_names") and hasattr(samples, "select_columns"):  # datasets.Dataset
        for column in columns:
            if column not in samples.column_names:
                raise ValueError(f"`samples` has no column {column!r} (columns: {samples.column_names}).")
        return samples.select_columns(columns).to_list()
    rows = list(samples)
    for index, row in enumerate(rows):
        for column in columns:
            if column not in row:
                raise ValueError(f"`samples` row {index} has no column {column!r} (keys: {sorted(row)}).")
    return rows


def _groups(rows: Iterable[dict]) -> list[list[dict]]:
    """Rows grouped by answer key, most frequent first, ties by first appearance (input order)."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row["answer"], []).append(row)
    # dicts keep insertion order and `sorted` is stable, so equal counts keep their order of first appearance
    return sorted(groups.values(), key=len, reverse=True)


def _kept_wrong_groups(wrong: list[dict], top_p: float, skip_singletons: bool) -> list[list[dict]]:
    """The most frequent wrong-answer groups whose counts together reach ``top_p`` of the wrong samples."""
    if not wrong:
        return []
    # the smallest count that reaches the share; the tolerance keeps e.g. 0.7 * 10 = 7.000000000000001 at 7
    need = math.ceil(top_p * len(wrong) - 1e-9)
    kept, covered = [], 0
    for group in _groups(wrong):
        if covered >= need:
            break
        if skip_singletons and kept and len(group) == 1:
            continue  # official code: answers seen once are noise unless nothing else was kept
        kept.append(group)
        covered += len(group)
    return kept


def select_contrastive_data(
    samples,
    *,
    prompt_column: str = "prompt",
    completion_column: str = "completion",
    correct_column: str = "correct",
    answer_column: str = "extracted_answer",
    negative_top_p: float = 0.5,
    seed: int = 0,
    positive_from_most_frequent_answer: bool = False,
    negative_skip_singletons: bool = False,
) -> ContrastiveData:
    """Select cDPO's positive/negative SFT data and preference pairs from sampled completions.

    Args:
        samples: a `datasets.Dataset` or a list of dicts with several rows (completions) per prompt.
        prompt_column: the prompt (string or message list, kept as is).
        completion_column: the completion.
        correct_column: whether the completion is correct (truthy/falsy; `None` is an error).
        answer_column: the completion's final answer; `None` or blank counts as no answer (see the module doc).
        negative_top_p: share of the wrong samples (with an answer) the kept wrong answers must cover, in (0, 1].
        seed: seeds the choice of trajectories; the output is deterministic given the inputs and the seed.
        positive_from_most_frequent_answer: official-code variant of the positive choice (paper: any correct one).
        negative_skip_singletons: official-code variant of the coverage rule (skip answers seen once).

    Returns:
        `ContrastiveData` with `positive`, `negative` (prompt, completion), `pairs` (prompt, chosen, rejected),
        each in order of the prompts' first appearance, and `stats`.
    """
    if isinstance(negative_top_p, bool) or not isinstance(negative_top_p, (int, float)):
        raise ValueError(f"negative_top_p must be a number in (0, 1], got {negative_top_p!r}.")
    if not 0 < negative_top_p <= 1:
        raise ValueError(f"negative_top_p must be in (0, 1], got {negative_top_p}.")
    columns = list(dict.fromkeys([prompt_column, completion_column, correct_column, answer_column]))
    rows = _rows(samples, columns)

    questions: dict[str, dict] = {}
    for index, row in enumerate(rows):
        correct = row[correct_column]
        if correct is None:
            raise ValueError(f"`samples` row {index} has no value in column {correct_column!r}.")
        question = questions.setdefault(_prompt_key(row[prompt_column]), {"prompt": row[prompt_column], "rows": []})
        question["rows"].append(
            {"completion": row[completion_column], "correct": bool(correct), "answer": _answer_key(row[answer_column])}
        )

    rng = random.Random(seed)
    positive, negative, pairs = [], [], []
    stats = dict.fromkeys(
        ["questions", "samples", "correct", "wrong", "wrong_no_answer", "all_correct", "all_wrong"], 0
    )
    stats.update(only_no_answer_wrong=0, with_pair=0)
    for question in questions.values():
        prompt, question_rows = question["prompt"], question["rows"]
        correct = [row for row in question_rows if row["correct"]]
        wrong = [row for row in question_rows if not row["correct"]]
        wrong_with_answer = [row for row in wrong if row["answer"] is not None]
        stats["questions"] += 1
        stats["samples"] += len(question_rows)
        stats["correct"] += len(correct)
        stats["wrong"] += len(wrong)
        stats["wrong_no_answer"] += len(wrong) - len(wrong_with_answer)
        stats["all_correct"] += not wrong
        stats["all_wrong"] += not correct
        stats["only_no_answer_wrong"] += bool(correct and wrong and not wrong_with_answer)

        chosen = None
        if correct:
            pool = _groups(correct)[0] if positive_from_most_frequent_answer else correct
            chosen = rng.choice(pool)["completion"]
            positive.append({"prompt": prompt, "completion": chosen})
        rejected = []
        for group in _kept_wrong_groups(wrong_with_answer, negative_top_p, negative_skip_singletons):
            rejected.append(rng.choice(group)["completion"])
            negative.append({"prompt": prompt, "completion": rejected[-1]})
        if chosen is not None and rejected:
            pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected[0]})
            stats["with_pair"] += 1
    stats.update(positive=len(positive), negative=len(negative), pairs=len(pairs))
    return ContrastiveData(
        positive=_dataset(positive, ["prompt", "completion"]),
        negative=_dataset(negative, ["prompt", "completion"]),
        pairs=_dataset(pairs, ["prompt", "chosen", "rejected"]),
        stats=stats,
    )


def _dataset(rows: list[dict], columns: list[str]):
    from datasets import Dataset

    return Dataset.from_dict({column: [row[column] for row in rows] for column in columns})

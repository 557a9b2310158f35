"""Sampling metrics: the unbiased pass@k estimator, maj@k (self-consistency), answer length by correctness.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", arXiv 2107.03374, Eq. 1): with ``n``
samples of which ``c`` are correct, the probability that at least one of ``k`` samples drawn without replacement
is correct,

    pass@k = 1 − C(n − c, k) / C(n, k)        (1 when n − c < k)

computed as ``1 − Π_{i = n−c+1}^{n} (1 − k / i)``: no binomial coefficient is formed, so it is exact to float
precision for any n (tested against exact rationals for n up to 1024).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np


def _as_int_array(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"pass_at_k: {name} must be a whole number (got {value!r}).")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise ValueError(f"pass_at_k: {name} must be an integer or an array of integers (got {value!r}).")
    return array.astype(np.int64)


def pass_at_k(n, c, k):
    """The unbiased pass@k estimate from ``c`` correct answers among ``n`` samples (Chen et al. 2021).

    ``1 − C(n − c, k) / C(n, k)``, and 1.0 when ``n − c < k``. Broadcasts over arrays like numpy.

    Args:
        n: samples drawn per problem (>= 1).
        c: correct samples among them (0 <= c <= n).
        k: the budget (1 <= k <= n).

    Returns:
        A float for scalar inputs, else an ndarray of the broadcast shape.
    """
    n_arr, c_arr, k_arr = (_as_int_array(v, name) for v, name in ((n, "n"), (c, "c"), (k, "k")))
    n_arr, c_arr, k_arr = np.broadcast_arrays(n_arr, c_arr, k_arr)
    if np.any(n_arr < 1):
        raise ValueError(f"pass_at_k: n must be >= 1 (got {n!r}).")
    if np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError(f"pass_at_k: c must be between 0 and n (got c={c!r}, n={n!r}).")
    if np.any(k_arr < 1) or np.any(k_arr > n_arr):
        raise ValueError(f"pass_at_k: k must be between 1 and n (got k={k!r}, n={n!r}); draw at least k samples.")
    result = np.empty(n_arr.shape, dtype=np.float64)
    for index in np.ndindex(n_arr.shape):
        ni, ci, ki = int(n_arr[index]), int(c_arr[index]), int(k_arr[index])
        if ni - ci < ki:
            result[index] = 1.0
        else:
            i = np.arange(ni - ci + 1, ni + 1, dtype=np.float64)
            result[index] = 1.0 - float(np.prod(1.0 - ki / i))
    if np.ndim(n) == np.ndim(c) == np.ndim(k) == 0:
        return float(result)
    return result


def mean_pass_at_k(num_correct, n: int, ks: Iterable[int]) -> dict[int, float]:
    """Mean pass@k over problems, for each k in ``ks``.

    Args:
        num_correct: correct samples per problem (a sequence of ints), each out of ``n``.
        n: samples drawn per problem.
        ks: the budgets.

    Returns:
        ``{k: mean over problems of pass_at_k(n, c, k)}``.
    """
    counts = _as_int_array(list(num_correct), "num_correct")
    if counts.size == 0:
        raise ValueError("mean_pass_at_k: num_correct is empty; pass one count per problem.")
    return {int(k): float(np.mean(pass_at_k(n, counts, int(k)))) for k in ks}


def _majority_correct(answers: list, correct_answers: set) -> float:
    """1 when the most frequent non-None answer is correct, 0 when wrong; a tie scores the share of tied answers that
    are correct (the expected score of a uniform tie-break). No answer at all scores 0."""
    votes: dict = {}
    for answer in answers:
        if answer is not None:
            votes[answer] = votes.get(answer, 0) + 1
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [answer for answer, count in votes.items() if count == top]
    return sum(answer in correct_answers for answer in tied) / len(tied)


def maj_at_k(answers, correct, k: int, *, max_subsets: int = 2000, seed: int = 0) -> float:
    """maj@k for one problem: the chance that the majority vote over ``k`` of its ``n`` samples is correct.

    The vote is over extracted final answers (``None``, no answer, casts no vote); a tie between answers counts as
    the share of tied answers that are correct (a uniform tie-break, in expectation). The chance is averaged over
    every ``k``-subset of the ``n`` samples when there are at most ``max_subsets`` of them (exact: maj@1 is
    ``c / n``, maj@n the vote over all samples), else over ``max_subsets`` subsets drawn uniformly with ``seed``.
    maj@k is the self-consistency accuracy of Wang et al. 2023 ("Self-Consistency Improves Chain of Thought
    Reasoning in Language Models", arXiv 2203.11171).

    Args:
        answers: the ``n`` extracted answers (hashable, or None).
        correct: for each sample, whether its answer is correct (the reward's verdict).
        k: votes per majority (1 <= k <= n).
        max_subsets: above this many k-subsets, estimate from this many random ones.
        seed: seeds the random subsets.
    """
    answers, correct = list(answers), [bool(value) for value in correct]
    n = len(answers)
    if n == 0:
        raise ValueError("maj_at_k: answers is empty; pass the n sampled answers of one problem.")
    if len(correct) != n:
        raise ValueError(f"maj_at_k: answers has {n} entries but correct has {len(correct)}; pass one per sample.")
    if not 1 <= int(k) <= n:
        raise ValueError(f"maj_at_k: k must be between 1 and n (got k={k}, n={n}); draw at least k samples.")
    if max_subsets < 1:
        raise ValueError(f"maj_at_k: max_subsets must be >= 1 (got {max_subsets}).")
    k = int(k)
    correct_answers = {answer for answer, ok in zip(answers, correct, strict=True) if ok and answer is not None}
    if math.comb(n, k) <= max_subsets:
        subsets = itertools.combinations(range(n), k)
        scores = [_majority_correct([answers[i] for i in subset], correct_answers) for subset in subsets]
    else:
        rng = np.random.default_rng(seed)
        scores = [
            _majority_correct([answers[i] for i in rng.choice(n, size=k, replace=False)], correct_answers)
            for _ in range(max_subsets)
        ]
    return float(np.mean(scores))


def mean_maj_at_k(answers_per_problem, correct_per_problem, ks: Iterable[int], **kwargs) -> dict[int, float]:
    """Mean :func:`maj_at_k` over problems, for each k in ``ks`` (``kwargs`` go to :func:`maj_at_k`)."""
    answers_per_problem, correct_per_problem = list(answers_per_problem), list(correct_per_problem)
    if not answers_per_problem:
        raise ValueError("mean_maj_at_k: no problems; pass one list of answers per problem.")
    if len(answers_per_problem) != len(correct_per_problem):
        raise ValueError("mean_maj_at_k: answers_per_problem and correct_per_problem differ in length.")
    problems = list(zip(answers_per_problem, correct_per_problem, strict=True))
    return {
        int(k): float(np.mean([maj_at_k(answers, correct, int(k), **kwargs) for answers, correct in problems]))
        for k in ks
    }


def mean_length_by_correctness(lengths, correct) -> tuple[float | None, float | None]:
    """(mean length of the correct answers, mean length of the incorrect ones); None where there are none."""
    lengths, correct = list(lengths), [bool(value) for value in correct]
    if len(lengths) != len(correct):
        raise ValueError(f"mean_length_by_correctness: {len(lengths)} lengths but {len(correct)} correctness flags.")
    right = [length for length, ok in zip(lengths, correct, strict=True) if ok]
    wrong = [length for length, ok in zip(lengths, correct, strict=True) if not ok]
    return (float(np.mean(right)) if right else None, float(np.mean(wrong)) if wrong else None)

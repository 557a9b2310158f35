"""Sampling metrics: the unbiased pass@k estimator.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", arXiv 2107.03374, Eq. 1): with ``n``
samples of which ``c`` are correct, the probability that at least one of ``k`` samples drawn without replacement
is correct,

    pass@k = 1 − C(n − c, k) / C(n, k)        (1 when n − c < k)

computed as ``1 − Π_{i = n−c+1}^{n} (1 − k / i)``: no binomial coefficient is formed, so it is exact to float
precision for any n (tested against exact rationals for n up to 1024).
"""

from __future__ import annotations

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

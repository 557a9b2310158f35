"""pass@k against hand-computed values and the exact closed form (Chen et al. 2021, arXiv 2107.03374)."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from trl_reasoning.evaluation import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (4, 1, 1, 0.25),  # pass@1 is the share correct
        (10, 3, 1, 0.3),
        (10, 0, 5, 0.0),  # nothing correct: never passes
        (10, 8, 3, 1.0),  # n - c = 2 < k = 3: every draw of 3 holds a correct one
        (6, 2, 3, 0.8),  # 1 - C(4,3)/C(6,3) = 1 - 4/20
        (1, 1, 1, 1.0),
    ],
)
def test_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-15)
    assert isinstance(pass_at_k(n, c, k), float)


def test_matches_the_exact_closed_form_up_to_n_1024():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 1024)
        c, k = rng.randint(0, n), rng.randint(1, n)
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert abs(pass_at_k(n, c, k) - float(exact)) <= 1e-12, (n, c, k)


def test_extreme_binomials_stay_finite():
    # C(1024, 512) overflows float64; the product form does not form it.
    assert pass_at_k(1024, 1, 512) == pytest.approx(0.5, abs=1e-12)
    assert pass_at_k(1024, 1023, 1) == pytest.approx(1023 / 1024, abs=1e-15)


def test_broadcasts_like_numpy():
    out = pass_at_k(8, np.array([0, 1, 8]), np.array([[1], [8]]))
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, [[0.0, 0.125, 1.0], [0.0, 1.0, 1.0]], atol=1e-15)


def test_mean_over_problems():
    assert mean_pass_at_k([0, 1, 8], 8, [1, 8]) == pytest.approx({1: 3 / 8, 8: 2 / 3})


@pytest.mark.parametrize(
    ("n", "c", "k", "field"),
    [
        (0, 0, 1, "n"),
        (4, 5, 1, "c"),
        (4, -1, 1, "c"),
        (4, 2, 0, "k"),
        (4, 2, 5, "k"),
        (4.5, 2, 1, "n"),
        ("4", 2, 1, "n"),
    ],
)
def test_bad_input_names_the_argument(n, c, k, field):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        pass_at_k(n, c, k)

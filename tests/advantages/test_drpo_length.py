"""The ``drpo_length`` advantage estimator: hand-computed values and its promises on random batches."""

import math
import random

import pytest
import torch

from trl_reasoning import get_advantage_estimator


def estimate(correct, lengths, group_size, max_length=100, **kwargs):
    return get_advantage_estimator("drpo_length").compute(
        correct=torch.tensor(correct),
        lengths=torch.tensor(lengths),
        group_size=group_size,
        max_length=max_length,
        rewards=torch.tensor([float(c) for c in correct]),  # standard argument, ignored
        **kwargs,
    )


def test_worked_example():
    # docs/methods/drpo.md, Worked example: GRPO advantages of [1, 0, 0, 1] are ±0.5 / (sqrt(1/3) + 1e-4); the two positives
    # share 2 × that in proportion to w = [0.9525741268, 0.0474258732].
    grpo = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    out = estimate([True, False, False, True], [10, 20, 30, 40], 4, length_lambda=0.1)
    expected = [2 * 0.9525741268 * grpo, -grpo, -grpo, 2 * 0.0474258732 * grpo]
    assert out.advantages.tolist() == pytest.approx(expected, abs=1e-6)
    assert out.keep.all()
    w = [0.9525741268, 0.0474258732]
    assert out.metrics["drpo/weight_entropy"] == pytest.approx(-sum(x * math.log(x) for x in w), abs=1e-8)
    assert out.metrics["drpo/length_correct"] == 25.0 and out.metrics["drpo/length_incorrect"] == 25.0


def test_equal_lengths_or_one_positive_is_plain_grpo_and_large_lambda_tends_to_it():
    grpo = get_advantage_estimator("grpo")
    correct = [True, True, False, False, True, False, False, False]
    rewards = torch.tensor([float(c) for c in correct])
    plain = grpo(rewards=rewards, group_size=4)
    same_length = estimate(correct, [7] * 8, 4).advantages
    torch.testing.assert_close(same_length, plain)
    lengths = [3, 9, 4, 1, 5, 2, 8, 6]
    torch.testing.assert_close(estimate(correct, lengths, 4, length_lambda=1e6).advantages, plain, atol=1e-5, rtol=0)
    # Group 2 has a single positive: its advantage is GRPO's whatever its length.
    assert estimate(correct, lengths, 4).advantages[4].item() == pytest.approx(plain[4].item(), abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_promises_on_random_batches(seed):
    rng = random.Random(seed)
    group_size, groups = rng.randint(2, 8), rng.randint(1, 6)
    max_length = rng.randint(8, 64)
    correct = [rng.random() < 0.5 for _ in range(group_size * groups)]
    lengths = [rng.randint(1, max_length) for _ in correct]
    length_lambda = rng.choice([0.01, 0.1, 0.5, 2.0])
    scale = rng.choice(["group", "batch", "none"])
    out = estimate(correct, lengths, group_size, max_length, length_lambda=length_lambda, scale=scale)
    grpo = get_advantage_estimator("grpo")(
        rewards=torch.tensor([float(c) for c in correct]), group_size=group_size, scale=scale
    )
    for g in range(groups):
        members = range(g * group_size, (g + 1) * group_size)
        pos = [i for i in members if correct[i]]
        neg = [i for i in members if not correct[i]]
        # No correct answer ever gets a lower advantage than an incorrect one of its group.
        if pos and neg:
            assert min(out.advantages[i] for i in pos) > max(out.advantages[j] for j in neg)
        # Incorrect samples keep their GRPO advantage; the positives' total is GRPO's.
        for j in neg:
            assert out.advantages[j].item() == pytest.approx(grpo[j].item(), abs=1e-6)
        total = sum(out.advantages[i].item() for i in pos)
        assert total == pytest.approx(sum(grpo[i].item() for i in pos), rel=1e-5, abs=1e-5)
        # Shorter correct answers get at least as much as longer ones (strictly more when the group is mixed).
        for a in pos:
            for b in pos:
                if lengths[a] < lengths[b]:
                    assert out.advantages[a] >= out.advantages[b]
                    if neg:
                        assert out.advantages[a] > out.advantages[b]


def test_unscorable_samples_get_zero_and_leave_the_statistics():
    correct = [True, False, True, False]
    scorable = torch.tensor([True, True, True, False])
    out = estimate(correct, [2, 3, 4, 5], 4, scorable=scorable)
    assert out.advantages[3].item() == 0.0
    # Statistics of [1, 0, 1] only: mean 2/3, sample std sqrt(1/3).
    std = math.sqrt(1 / 3) + 1e-4
    assert out.advantages[1].item() == pytest.approx(-(2 / 3) / std, abs=1e-6)
    w = [math.exp(-2 / 10), math.exp(-4 / 10)]
    expected_first = 2 * w[0] / sum(w) * (1 / 3) / std
    assert out.advantages[0].item() == pytest.approx(expected_first, abs=1e-6)


def drpo_length_reference(correct, lengths, group_size, max_length, length_lambda):
    """Loops in float64: GRPO of 0/1 correctness per group (sample std + 1e-4), positives times |P|·w_i."""
    out = []
    for g in range(len(correct) // group_size):
        members = list(range(g * group_size, (g + 1) * group_size))
        values = [1.0 if correct[i] else 0.0 for i in members]
        mean = sum(values) / group_size
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (group_size - 1))
        pos = [i for i in members if correct[i]]
        raw = {i: math.exp(-lengths[i] / (length_lambda * max_length)) for i in pos}
        for i, value in zip(members, values, strict=True):
            advantage = (value - mean) / (std + 1e-4)
            if correct[i]:
                advantage *= len(pos) * raw[i] / sum(raw.values())
            out.append(advantage)
    return out


@pytest.mark.parametrize("seed", range(10))
def test_matches_a_loop_reference(seed):
    rng = random.Random(100 + seed)
    group_size, groups, max_length = rng.randint(2, 8), rng.randint(1, 5), rng.randint(4, 512)
    correct = [rng.random() < 0.5 for _ in range(group_size * groups)]
    lengths = [rng.randint(1, max_length) for _ in correct]
    length_lambda = rng.choice([0.05, 0.1, 1.0])
    expected = drpo_length_reference(correct, lengths, group_size, max_length, length_lambda)
    out = estimate(correct, lengths, group_size, max_length, length_lambda=length_lambda)
    assert out.advantages.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_all_correct_all_wrong_and_truncated_groups():
    # All-correct and all-wrong groups: GRPO gives 0, and 0 · weight stays 0 (finite, no length signal).
    out = estimate([True] * 4 + [False] * 4, [1, 2, 3, 4, 5, 6, 7, 8], 4, max_length=8)
    assert out.advantages.tolist() == [0.0] * 8
    assert out.metrics["drpo/length_correct"] == 2.5 and out.metrics["drpo/length_incorrect"] == 6.5
    # A truncated correct answer (length = the budget) gets the smallest share, but stays above the incorrect ones.
    out = estimate([True, True, False, False], [8, 2, 8, 3], 4, max_length=8)
    assert 0 < out.advantages[0] < out.advantages[1] and out.advantages[2] < 0

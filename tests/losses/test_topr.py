"""TOPR (docs/methods/topr.md): the worked example, the baseline for a target positive fraction, a slow float64
loop reference (values and gradients), edge cases and the registered loss."""

import math
import random

import pytest
import torch
from support import spread

from trl_reasoning.losses import (
    get_policy_loss,
    topr_baseline_for_positive_fraction,
    topr_baseline_for_rewards,
    topr_effective_positive_fraction,
    topr_loss,
    topr_weighted_positive_fraction,
)


# docs/methods/topr.md, Worked example


TOPR_R = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
TOPR_LOG_RATIO = [0.2, -0.5, 0.3, -1.0]
TOPR_LOGPI = [-10.0, -20.0, -30.0, -40.0]


def topr_example(baseline=0.0, lengths=(2, 3, 4, 5)):
    logps, mask = spread(TOPR_LOGPI, lengths)
    behavior, _ = spread([lp - r for lp, r in zip(TOPR_LOGPI, TOPR_LOG_RATIO, strict=True)], lengths)
    logps.requires_grad_(True)
    return logps, behavior, mask, topr_loss(logps, behavior, mask, TOPR_R, baseline=baseline)


def test_topr_worked_example_value_and_gradient():
    logps, _, mask, out = topr_example()
    assert out.loss.item() == pytest.approx(1.9673467014, abs=1e-9)
    out.loss.backward()
    # d loss / d logπ(τ_i) is shared by every token of sequence i (logπ(τ) is the token sum).
    expected = [-0.25, 0.1516326649, 0.25, -0.25]
    for i, value in enumerate(expected):
        torch.testing.assert_close(logps.grad[i][mask[i] > 0], torch.full_like(logps.grad[i][mask[i] > 0], value))
    assert (logps.grad[mask == 0] == 0).all()
    assert out.metrics["topr/alpha_negative_mean"].item() == pytest.approx((0.6065306597 + 1.0) / 2)
    assert out.metrics["topr/frac_truncated"].item() == pytest.approx(0.5)  # sample 2: ratio 1.35 cut to 1
    assert out.metrics["topr/positive_fraction"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("baseline, loss", [(0.5, -9.5489799478), (-0.5, 13.4836733507)])
def test_topr_worked_example_with_a_baseline(baseline, loss):
    logps, _, _, out = topr_example(baseline)
    assert out.loss.item() == pytest.approx(loss, abs=1e-8)
    out.loss.backward()
    coefficients = {0.5: [0.5, -0.9097959896, -1.5, 0.5], -0.5: [1.5, -0.3032653299, -0.5, 1.5]}[baseline]
    assert logps.grad[:, 0].tolist() == pytest.approx([-c / 4 for c in coefficients], abs=1e-9)


def test_topr_sequence_level_behaviour_logps_equal_per_token_ones():
    logps, behavior, mask, out = topr_example()
    sequence = topr_loss(logps, (behavior * mask).sum(dim=1), mask, TOPR_R)
    assert sequence.loss.item() == pytest.approx(out.loss.item(), abs=1e-12)


@pytest.mark.parametrize(
    "p, c, expected", [(0.5, 0.0, 0.5), (0.5, 0.5, 0.25), (0.5, 0.6, 0.2), (0.1, -0.5, 0.25), (0.1, -0.8, 0.5)]
)
def test_topr_effective_positive_fraction(p, c, expected):
    assert topr_effective_positive_fraction(p, c) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("p, target, expected", [(0.5, 0.15, 0.7), (0.1, 0.15, -0.2272727273)])
def test_topr_baseline_for_a_target_fraction(p, target, expected):
    c = topr_baseline_for_positive_fraction(p, target)
    assert c == pytest.approx(expected, abs=1e-9)
    assert topr_effective_positive_fraction(p, c) == pytest.approx(target, abs=1e-12)


def test_topr_baseline_without_positives_or_negatives_is_zero_and_bad_targets_fail():
    assert topr_baseline_for_positive_fraction(0.0, 0.2) == 0.0
    assert topr_baseline_for_positive_fraction(1.0, 0.2) == 0.0
    with pytest.raises(ValueError, match="target_positive_fraction"):
        topr_baseline_for_positive_fraction(0.5, 1.0)
    with pytest.raises(ValueError, match="baseline"):
        topr_effective_positive_fraction(0.5, 1.0)


def topr_reference(logps, behavior, mask, rewards, baseline, ratio_level, taper_by):
    """Loops in float64: loss and d loss / d logπ_{i,t} in closed form (α is a constant under the stop-gradient)."""
    rows, width = len(logps), len(logps[0])
    valid = [i for i in range(rows) if not math.isnan(rewards[i])]
    loss, grad = 0.0, [[0.0] * width for _ in range(rows)]
    for i in valid:
        c = rewards[i] - baseline[i]
        negative = rewards[i] < 0 if taper_by == "reward" else c < 0
        tokens = [t for t in range(width) if mask[i][t]]
        sequence_ratio = sum(logps[i][t] - behavior[i][t] for t in tokens)
        for t in tokens:
            if not negative:
                alpha = 1.0
            elif ratio_level == "sequence":
                alpha = min(math.exp(sequence_ratio), 1.0)
            else:
                alpha = min(math.exp(logps[i][t] - behavior[i][t]), 1.0)
            loss += -alpha * c * logps[i][t] / len(valid)
            grad[i][t] = -alpha * c / len(valid)
    return loss, grad


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ratio_level", ["sequence", "token"])
@pytest.mark.parametrize("taper_by", ["reward", "coefficient"])
def test_topr_matches_a_loop_reference_in_value_and_gradient(seed, ratio_level, taper_by):
    rng = random.Random(seed)
    rows, width = rng.randint(1, 7), rng.randint(1, 9)
    lengths = [rng.randint(0, width) for _ in range(rows)]
    mask = torch.tensor([[1.0 if t < n else 0.0 for t in range(width)] for n in lengths], dtype=torch.float64)
    logps = torch.tensor([[-rng.uniform(0.01, 4) for _ in range(width)] for _ in range(rows)], dtype=torch.float64)
    behavior = logps + torch.tensor([[rng.gauss(0, 0.6) for _ in range(width)] for _ in range(rows)])
    rewards = [rng.choice([1.0, -1.0, 0.5, -0.3, float("nan")]) for _ in range(rows)]
    baseline = [rng.uniform(-0.9, 0.9) for _ in range(rows)]
    expected_loss, expected_grad = topr_reference(
        logps.tolist(), behavior.tolist(), mask.tolist(), rewards, baseline, ratio_level, taper_by
    )
    logps.requires_grad_(True)
    out = topr_loss(
        logps,
        behavior,
        mask,
        torch.tensor(rewards, dtype=torch.float64),
        baseline=torch.tensor(baseline, dtype=torch.float64),
        ratio_level=ratio_level,
        taper_by=taper_by,
    )
    out.loss.backward()
    assert out.loss.item() == pytest.approx(expected_loss, abs=1e-10)
    torch.testing.assert_close(logps.grad, torch.tensor(expected_grad, dtype=torch.float64), rtol=0, atol=1e-12)


def test_topr_on_policy_is_reinforce_and_all_positive_is_sft():
    logps, mask = spread([-3.0, -5.0, -2.0], [2, 4, 1])
    rewards = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    out = topr_loss(logps, logps, mask, rewards)  # π = μ: α = 1 for everyone
    assert out.loss.item() == pytest.approx(-(-3.0 * 1 + -5.0 * -1 + -2.0 * 1) / 3)
    assert out.metrics["topr/alpha_negative_mean"].item() == 1.0
    sft = topr_loss(logps, logps - 50.0, mask, torch.ones(3, dtype=torch.float64))  # positives are never tapered
    assert sft.loss.item() == pytest.approx((3.0 + 5.0 + 2.0) / 3)


def test_topr_edge_cases_stay_finite():
    # A long negative far below μ (sequence log-ratio −10,000): α underflows to exactly 0, no NaN.
    logps, mask = spread([-10_000.0, -1.0], [500, 1])
    behavior, _ = spread([0.0, -1.0], [500, 1])
    logps.requires_grad_(True)
    out = topr_loss(logps, behavior, mask, torch.tensor([-1.0, 1.0], dtype=torch.float64))
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(logps.grad).all()
    assert (logps.grad[0] == 0).all() and out.metrics["topr/alpha_negative_mean"].item() == 0.0
    # Zero-length completions: no gradient, but they count in the mean over sequences.
    logps, mask = spread([-2.0, 0.0], [2, 0])
    out = topr_loss(logps, logps, mask, torch.tensor([1.0, -1.0], dtype=torch.float64))
    assert out.loss.item() == pytest.approx(2.0 / 2)
    # Every reward unscorable: an explicit zero, and NaN metrics ("nothing measured").
    out = topr_loss(logps, logps, mask, torch.tensor([float("nan")] * 2, dtype=torch.float64))
    assert out.loss.item() == 0.0 and math.isnan(out.metrics["topr/positive_fraction"].item())


def test_topr_rejects_bad_shapes_and_options():
    logps, mask = spread([-1.0, -2.0], [1, 2])
    rewards = torch.tensor([1.0, -1.0])
    with pytest.raises(ValueError, match="per-token behaviour"):
        topr_loss(logps, logps.sum(dim=1), mask, rewards, ratio_level="token")
    with pytest.raises(ValueError, match="behavior_per_token_logps"):
        topr_loss(logps, logps[:, :1], mask, rewards)
    with pytest.raises(ValueError, match="ratio_level"):
        topr_loss(logps, logps, mask, rewards, ratio_level="seq")
    with pytest.raises(ValueError, match="taper_by"):
        topr_loss(logps, logps, mask, rewards, taper_by="sign")


def test_registered_topr_uses_signed_correctness_and_the_batch_positive_fraction():
    logps, behavior, mask, _ = topr_example()
    entry = get_policy_loss("topr")
    correct = torch.tensor([True, False, False, True])
    out = entry.compute(
        per_token_logps=logps,
        behavior_per_token_logps=behavior,
        mask=mask,
        correct=correct,
        scorable=torch.ones(4, dtype=torch.bool),
        rewards=torch.tensor([7.0, 0.0, 0.0, 7.0]),  # ignored: signed correctness is ±1
        positive_fraction=torch.full((4,), 0.5),
        target_positive_fraction=0.25,
        unrelated_argument="ignored",
    )
    # p = 0.5, p̃ = 0.25 → c = 0.5 (docs/methods/topr.md, The formula), whose worked loss is −9.5489799478.
    assert out.metrics["topr/baseline"].item() == pytest.approx(0.5)
    assert out.loss.item() == pytest.approx(-9.5489799478, abs=1e-8)


# TOPR with 0/1 and shaped rewards (issue 16, item 3.2): the effective share of positives is Σ[R − c]₊ / Σ|R − c|,
# and every sample with R − c < 0 must be tapered.


@pytest.mark.parametrize(
    ("rewards", "target", "expected"),
    [
        ([1.0, 1.0, -1.0, -1.0], 0.15, 0.7),  # ±1: docs/methods/topr.md, Worked example, p = 0.5 → c = 0.7
        ([1.0] + [-1.0] * 9, 0.15, -0.2272727273),  # ±1: p = 0.1 → c = −0.2272727
        ([1.0, 0.0, 0.0, 1.0], 0.15, 0.85),  # 0/1: c = p(1 − p̃)/(p(1 − p̃) + p̃(1 − p)) = 0.425/0.5
        ([1.0, 0.0, 0.0, 0.0], 0.5, 0.25),  # p̃ = 0.5: coefficients sum to 0, so c is the mean reward
        ([1.0, 0.5, 0.0, 0.0], 0.5, 0.375),  # shaped, p̃ = 0.5: the mean again
        ([1.0, 0.5, 0.0, 0.0], 0.2, 0.9 / 1.4),  # shaped: c in [0.5, 1], (0.8·1 + 0.2·0.5)/(0.8·1 + 0.2·3)
        ([1.0, float("nan"), 0.0, 0.0, 1.0], 0.15, 0.85),  # NaN (unscorable) rewards are left out
    ],
)
def test_topr_baseline_for_rewards_hand_computed(rewards, target, expected):
    c = topr_baseline_for_rewards(rewards, target)
    assert c == pytest.approx(expected, abs=1e-10)
    assert topr_weighted_positive_fraction(rewards, c) == pytest.approx(target, abs=1e-12)


def test_topr_weighted_positive_fraction_is_the_paper_formula_on_pm1_and_its_0_1_analogue():
    # ±1: the paper's p(1 − c)/(1 + (1 − 2p)c), e.g. (p, c) = (0.5, 0.6) → 0.2 and (0.1, −0.5) → 0.25.
    assert topr_weighted_positive_fraction([1.0, -1.0], 0.6) == pytest.approx(0.2, abs=1e-12)
    assert topr_weighted_positive_fraction([1.0] + [-1.0] * 9, -0.5) == pytest.approx(0.25, abs=1e-12)
    assert topr_weighted_positive_fraction([1.0] + [-1.0] * 9, -0.5) == pytest.approx(
        topr_effective_positive_fraction(0.1, -0.5), abs=1e-12
    )
    # 0/1 with c = 0.5: (1 − c) for the correct, c for the wrong: p = 0.25 → 0.125/(0.125 + 0.375) = 0.25.
    assert topr_weighted_positive_fraction([1.0, 0.0, 0.0, 0.0], 0.5) == pytest.approx(0.25, abs=1e-12)
    # The ±1 formula applied to 0/1 rewards is wrong: at p = 0.5 it wants c = 0.7, which gives 0.3/(0.3 + 0.7).
    assert topr_weighted_positive_fraction([1.0, 0.0, 0.0, 1.0], 0.7) == pytest.approx(0.3, abs=1e-12)
    assert math.isnan(topr_weighted_positive_fraction([0.5, 0.5], 0.5))


def test_topr_baseline_for_rewards_degenerate_and_bad_inputs():
    assert topr_baseline_for_rewards([1.0, 1.0, 1.0], 0.2) == 0.0  # one value: no baseline changes the mix
    assert topr_baseline_for_rewards([], 0.2) == 0.0
    with pytest.raises(ValueError, match="target_positive_fraction"):
        topr_baseline_for_rewards([1.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="finite"):
        topr_baseline_for_rewards([1.0, float("inf")], 0.5)


ZERO_ONE_R = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)


def test_topr_zero_one_rewards_taper_by_coefficient_hand_computed():
    """0/1 rewards, c = 0.85 (p = 0.5, p̃ = 0.15), the worked example's log-ratios and log π.

    Coefficients R − c = [0.15, −0.85, −0.85, 0.15]; the wrong answers are tapered: α₁ = e^−0.5 = 0.6065306597,
    α₂ = min(e^0.3, 1) = 1. loss = −¼ Σ α(R − c) log π = −¼ (−1.5 + 0.85·0.6065306597·20 + 25.5 − 6) = −7.0777553038;
    ∂loss/∂log π(τ_i) = −α(R − c)/4 = [−0.0375, 0.1288877652, 0.2125, −0.0375].
    """
    logps, mask = spread(TOPR_LOGPI, (2, 3, 4, 5))
    behavior, _ = spread([lp - r for lp, r in zip(TOPR_LOGPI, TOPR_LOG_RATIO, strict=True)], (2, 3, 4, 5))
    logps.requires_grad_(True)
    out = topr_loss(logps, behavior, mask, ZERO_ONE_R, baseline=0.85, taper_by="coefficient")
    assert out.loss.item() == pytest.approx(-7.0777553038, abs=1e-9)
    out.loss.backward()
    for i, value in enumerate([-0.0375, 0.1288877652, 0.2125, -0.0375]):
        torch.testing.assert_close(logps.grad[i][mask[i] > 0], torch.full_like(logps.grad[i][mask[i] > 0], value))
    assert out.metrics["topr/alpha_negative_mean"].item() == pytest.approx((0.6065306597 + 1.0) / 2)
    assert out.metrics["topr/positive_fraction"].item() == pytest.approx(0.5)
    # The paper's literal split (R < 0) tapers nothing here: both wrong answers get weight 1, naive REINFORCE.
    naive = topr_loss(logps, behavior, mask, ZERO_ONE_R, baseline=0.85, taper_by="reward")
    assert naive.loss.item() == pytest.approx(-8.75, abs=1e-9)  # −¼ (−1.5 + 17 + 25.5 − 6)
    assert naive.metrics["topr/positive_fraction"].item() == 1.0


def test_registered_topr_with_total_rewards_solves_the_baseline_from_them():
    logps, behavior, mask, _ = topr_example()
    out = get_policy_loss("topr").compute(
        per_token_logps=logps,
        behavior_per_token_logps=behavior,
        mask=mask,
        correct=torch.tensor([True, False, False, True]),
        scorable=torch.ones(4, dtype=torch.bool),
        rewards=ZERO_ONE_R,
        positive_fraction=torch.full((4,), 0.5),  # the ±1 formula would give c = 0.7
        reward_source="reward",
        target_positive_fraction=0.15,
        taper_by="coefficient",
    )
    assert out.metrics["topr/baseline"].item() == pytest.approx(0.85)
    assert out.loss.item() == pytest.approx(-7.0777553038, abs=1e-9)

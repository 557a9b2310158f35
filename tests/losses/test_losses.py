"""Policy losses (TOPR, DRPO) against their docs pages' worked examples and slow float64 loop references."""

import math
import random

import pytest
import torch

from trl_reasoning.losses import (
    drpo_length_weights,
    drpo_loss,
    get_policy_loss,
    policy_loss_names,
    register_policy_loss,
    topr_baseline_for_positive_fraction,
    topr_baseline_for_rewards,
    topr_effective_positive_fraction,
    topr_loss,
    topr_weighted_positive_fraction,
)
from trl_reasoning.losses.base import _POLICY_LOSSES


def spread(totals, lengths, width=None, dtype=torch.float64):
    """(B, T) per-token values whose masked sum over row i is totals[i] (spread evenly over lengths[i] tokens)."""
    width = width or max(lengths)
    values = torch.zeros(len(totals), width, dtype=dtype)
    mask = torch.zeros(len(totals), width, dtype=dtype)
    for i, (total, length) in enumerate(zip(totals, lengths, strict=True)):
        if length:
            values[i, :length] = total / length
            mask[i, :length] = 1
    return values, mask


# --------------------------------------------------------------------------------------------------------------------
# TOPR: docs/methods/topr.md, Worked example

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


# --------------------------------------------------------------------------------------------------------------------
# DRPO: docs/methods/drpo.md, Worked example

DRPO_CORRECT = [True, False, False, True]
DRPO_LENGTHS = [10, 20, 30, 40]
DRPO_SCORES = [-0.5, -1.0, -2.0, -0.8]


def drpo_example(extra_groups=(), old_shift=0.0, **kwargs):
    correct, lengths, scores = list(DRPO_CORRECT), list(DRPO_LENGTHS), list(DRPO_SCORES)
    for group in extra_groups:
        correct += group["correct"]
        lengths += group["lengths"]
        scores += group["scores"]
    logps, mask = spread([s * n for s, n in zip(scores, lengths, strict=True)], lengths)
    logps.requires_grad_(True)
    out = drpo_loss(
        logps,
        logps.detach() + old_shift,
        mask,
        torch.tensor(correct),
        torch.tensor(lengths),
        group_size=4,
        max_length=100,
        **kwargs,
    )
    return logps, mask, out


def test_drpo_worked_example_value_gradient_and_metrics():
    logps, mask, out = drpo_example()
    assert out.loss.item() == pytest.approx(-0.9732774429, abs=1e-9)
    out.loss.backward()
    expected = [-0.0952574127, 0.0262489594, 0.0158340271, -0.0011856468]
    for i, value in enumerate(expected):
        tokens = logps.grad[i][mask[i] > 0]
        torch.testing.assert_close(tokens, torch.full_like(tokens, value), rtol=0, atol=1e-10)
    w = [0.9525741268, 0.0474258732]
    assert out.metrics["drpo/weight_entropy"].item() == pytest.approx(-sum(x * math.log(x) for x in w), abs=1e-9)
    assert out.metrics["drpo/length_correct"].item() == 25.0  # (10 + 40) / 2
    assert out.metrics["drpo/length_incorrect"].item() == 25.0  # (20 + 30) / 2
    assert out.metrics["drpo/frac_valid_groups"].item() == 1.0


def test_drpo_weights_of_the_worked_example():
    positive = torch.tensor(DRPO_CORRECT)
    weights = drpo_length_weights(torch.tensor(DRPO_LENGTHS), positive, 4, 100, 0.1)
    assert weights.tolist() == pytest.approx([0.9525741268, 0.0, 0.0, 0.0474258732], abs=1e-10)


def test_drpo_log_sum_exp_variant_shifts_the_value_only():
    logps, _, out = drpo_example(negative_pooling="sum")
    assert out.loss.item() == pytest.approx(5.9581943627, abs=1e-9)  # −Ĵ of the log-sum-exp form
    out.loss.backward()
    assert logps.grad[0, 0].item() == pytest.approx(-0.0952574127, abs=1e-10)


def test_drpo_invalid_groups_count_in_the_prompt_average():
    all_correct = {"correct": [True] * 4, "lengths": [5, 6, 7, 8], "scores": [-0.1, -0.2, -0.3, -0.4]}
    _, _, out = drpo_example(extra_groups=[all_correct])
    assert out.loss.item() == pytest.approx(-0.4866387215, abs=1e-9)
    assert out.metrics["drpo/frac_valid_groups"].item() == 0.5


@pytest.mark.parametrize("kl, coef, added", [(5e-5, 0.0, 0.0), (3e-4, 0.2, 6e-5)])
def test_drpo_kl_penalty_is_a_detached_squared_hinge(kl, coef, added):
    # k1 estimator: KL = token mean of (logπ_old − logπ) = old_shift.
    logps, mask, out = drpo_example(old_shift=kl)
    assert out.metrics["drpo/kl"].item() == pytest.approx(kl, rel=1e-9)
    assert out.metrics["drpo/kl_coef"].item() == pytest.approx(coef, rel=1e-9, abs=1e-12)
    assert out.loss.item() == pytest.approx(-0.9732774429 + added, abs=1e-9)
    out.loss.backward()
    # The KL term adds coef · d(mean over all 100 tokens of −logπ) = −coef/100 to every token's gradient.
    assert logps.grad[0, 0].item() == pytest.approx(-0.0952574127 - coef / 100, abs=1e-10)


def drpo_reference(logps, old, mask, correct, lengths, group_size, max_length, lam, tau, delta, beta, pooling, kl_est):
    """Loops in float64 over groups: loss and d loss / d logπ_{i,t} from the closed-form gradient (drpo.md's formula)."""
    rows, width = len(logps), len(logps[0])
    tokens = [[t for t in range(width) if mask[i][t]] for i in range(rows)]
    score = [sum(logps[i][t] for t in tokens[i]) / len(tokens[i]) if tokens[i] else 0.0 for i in range(rows)]
    coefficient = [0.0] * rows
    groups = rows // group_size
    objective = 0.0
    for g in range(groups):
        members = range(g * group_size, (g + 1) * group_size)
        pos = [i for i in members if correct[i] and tokens[i]]
        neg = [i for i in members if not correct[i] and tokens[i]]
        if not pos or not neg:
            continue
        raw = [math.exp(-lengths[i] / (lam * max_length)) for i in pos]
        weights = [r / sum(raw) for r in raw]
        exps = [math.exp(score[j] / tau) for j in neg]
        pooled = math.log(sum(exps)) - (math.log(len(neg)) if pooling == "mean" else 0.0)
        objective += sum(w * score[i] for w, i in zip(weights, pos, strict=True)) - tau * pooled
        for w, i in zip(weights, pos, strict=True):
            coefficient[i] = w
        for e, j in zip(exps, neg, strict=True):
            coefficient[j] = -e / sum(exps)
    all_tokens = [(i, t) for i in range(rows) for t in tokens[i]]
    diffs = {(i, t): logps[i][t] - old[i][t] for i, t in all_tokens}
    if kl_est == "k1":
        kl = sum(-d for d in diffs.values()) / max(len(all_tokens), 1)
    else:
        kl = sum(math.exp(d) - 1 - d for d in diffs.values()) / max(len(all_tokens), 1)
    kl_coef = max(beta * (kl - delta), 0.0)
    loss = -objective / groups + kl_coef * kl
    grad = [[0.0] * width for _ in range(rows)]
    for i, t in all_tokens:
        d_kl = (-1.0 if kl_est == "k1" else math.exp(diffs[i, t]) - 1.0) / len(all_tokens)
        grad[i][t] = -coefficient[i] / (len(tokens[i]) * groups) + kl_coef * d_kl
    return loss, grad


@pytest.mark.parametrize("seed", range(8))
def test_drpo_matches_a_loop_reference_in_value_and_gradient(seed):
    rng = random.Random(seed)
    group_size, groups, width = rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 10)
    rows = group_size * groups
    lengths = [rng.randint(0, width) for _ in range(rows)]
    mask = torch.tensor([[1.0 if t < n else 0.0 for t in range(width)] for n in lengths], dtype=torch.float64)
    logps = torch.tensor([[-rng.uniform(0.01, 3) for _ in range(width)] for _ in range(rows)], dtype=torch.float64)
    old = logps + torch.tensor([[rng.gauss(0, 0.02) for _ in range(width)] for _ in range(rows)], dtype=torch.float64)
    correct = [rng.random() < 0.5 for _ in range(rows)]
    settings = dict(
        length_lambda=rng.choice([0.05, 0.1, 1.0]),
        tau=rng.choice([0.5, 10.0]),
        kl_delta=1e-4,
        kl_beta=rng.choice([0.0, 1e3]),
        negative_pooling=rng.choice(["mean", "sum"]),
        kl_estimator=rng.choice(["k1", "k3"]),
    )
    max_length = width + 2
    expected_loss, expected_grad = drpo_reference(
        logps.tolist(),
        old.tolist(),
        mask.tolist(),
        correct,
        lengths,
        group_size,
        max_length,
        settings["length_lambda"],
        settings["tau"],
        settings["kl_delta"],
        settings["kl_beta"],
        settings["negative_pooling"],
        settings["kl_estimator"],
    )
    logps.requires_grad_(True)
    out = drpo_loss(logps, old, mask, torch.tensor(correct), torch.tensor(lengths), group_size, max_length, **settings)
    out.loss.backward()
    assert out.loss.item() == pytest.approx(expected_loss, abs=1e-10)
    torch.testing.assert_close(logps.grad, torch.tensor(expected_grad, dtype=torch.float64), rtol=0, atol=1e-12)


def test_drpo_edge_cases_give_finite_documented_results():
    # All-correct and all-wrong groups: no policy term (an explicit zero, still in the graph), no NaN anywhere.
    logps, mask = spread([-2.0, -3.0, -1.0, -4.0], [2, 3, 1, 4])
    logps.requires_grad_(True)
    for correct in ([True] * 4, [False] * 4):
        out = drpo_loss(logps, logps.detach(), mask, torch.tensor(correct), torch.tensor([2, 3, 1, 4]), 4, 8)
        out.loss.backward()
        assert out.loss.item() == 0.0 and out.metrics["drpo/frac_valid_groups"].item() == 0.0
        assert torch.isfinite(logps.grad).all() and (logps.grad == 0).all()
        assert math.isnan(out.metrics["drpo/weight_entropy"].item())
    # A zero-length correct answer is neither positive nor negative: the other positive takes all the weight.
    logps, mask = spread([0.0, -3.0, -1.0, -4.0], [0, 3, 1, 4])
    out = drpo_loss(logps, logps, mask, torch.tensor([True, True, False, False]), torch.tensor([0, 3, 1, 4]), 4, 8)
    assert torch.isfinite(out.loss)
    assert out.metrics["drpo/weight_entropy"].item() == 0.0 and out.metrics["drpo/length_correct"].item() == 3.0
    # A truncated correct answer (length = C) gets the smallest weight; one positive gets weight 1 whatever its length.
    lengths = torch.tensor([8, 2, 5, 3])
    weights = drpo_length_weights(lengths, torch.tensor([True, True, False, False]), 4, 8, 0.1)
    assert weights[0] < weights[1] and weights[0] + weights[1] == pytest.approx(1.0)
    single = drpo_length_weights(lengths, torch.tensor([True, False, False, False]), 4, 8, 0.1)
    assert single.tolist() == [1.0, 0.0, 0.0, 0.0]
    # Unscorable samples are left out like zero-length ones.
    logps, mask = spread([-1.0, -2.0, -3.0, -4.0], [1, 1, 1, 1])
    out = drpo_loss(
        logps,
        logps,
        mask,
        torch.tensor([True, False, True, False]),
        torch.ones(4, dtype=torch.long),
        4,
        8,
        scorable=torch.tensor([True, True, False, False]),
    )
    # One positive (score −1), one negative (score −2): Ĵ = −1 − 10·log(exp(−0.2)) = 1.
    assert out.loss.item() == pytest.approx(-1.0, abs=1e-6)


def test_drpo_rejects_split_groups_and_bad_options():
    logps, mask = spread([-1.0] * 6, [1] * 6)
    with pytest.raises(ValueError, match="whole groups"):
        drpo_loss(logps, logps, mask, torch.ones(6, dtype=torch.bool), torch.ones(6), 4, 8)
    with pytest.raises(ValueError, match="max_length"):
        drpo_length_weights(torch.ones(4), torch.ones(4, dtype=torch.bool), 4, 0, 0.1)
    with pytest.raises(ValueError, match="length_lambda"):
        drpo_length_weights(torch.ones(4), torch.ones(4, dtype=torch.bool), 4, 8, 0.0)
    with pytest.raises(TypeError, match="bool"):
        drpo_loss(logps[:4], logps[:4], mask[:4], torch.ones(4), torch.ones(4), 4, 8)


def test_drpo_uses_the_budget_not_the_padded_width():
    # The same batch padded to 6 or to 60 columns gives the same loss: C comes from max_length only.
    logps, mask = spread([-1.0, -4.0, -2.0, -6.0], [1, 4, 2, 6])
    wide_logps = torch.nn.functional.pad(logps, (0, 54))
    wide_mask = torch.nn.functional.pad(mask, (0, 54))
    args = (torch.tensor([True, True, False, False]), torch.tensor([1, 4, 2, 6]), 4, 16)
    narrow = drpo_loss(logps, logps, mask, *args).loss
    wide = drpo_loss(wide_logps, wide_logps, wide_mask, *args).loss
    assert narrow.item() == pytest.approx(wide.item(), abs=1e-12)


def test_drpo_kl_hinge_is_estimated_over_the_whole_loss_call():
    """docs/methods/drpo.md, implementation detail 9: one KL token-mean and one hinge per call, not per group.

    Two all-correct groups of 2 (no policy term): group A has 2 × 2 tokens at k1 KL 4e-4 each, group B 2 × 4 tokens at
    1e-4. In one call: KL = (4·4e-4 + 8·1e-4)/12 = 2e-4, coefficient 1e3·(2e-4 − 1e-4) = 0.1, loss 2e-5, gradient
    −0.1/12 per token. One group per call (the recipe's layout, accumulated over 2 calls): A alone has KL 4e-4,
    coefficient 0.3, loss 1.2e-4/2 = 6e-5 and gradient −0.3/4/2 = −0.0375 per token; B alone is under the budget.
    """
    lengths = [2, 2, 4, 4]
    mask = torch.tensor([[1.0 if t < n else 0.0 for t in range(4)] for n in lengths], dtype=torch.float64)
    old = torch.tensor([[4e-4] * 4, [4e-4] * 4, [1e-4] * 4, [1e-4] * 4], dtype=torch.float64) * mask
    correct = torch.ones(4, dtype=torch.bool)

    def call(rows, accumulation):
        logps = torch.zeros(len(rows), 4, dtype=torch.float64, requires_grad=True)
        out = drpo_loss(logps, old[rows], mask[rows], correct[rows], torch.tensor(lengths)[rows], 2, 8)
        (grad,) = torch.autograd.grad(out.loss / accumulation, logps)
        return out, out.loss.item() / accumulation, grad

    pooled, loss, grad = call([0, 1, 2, 3], 1)
    assert pooled.metrics["drpo/kl"].item() == pytest.approx(2e-4, rel=1e-12)
    assert pooled.metrics["drpo/kl_coef"].item() == pytest.approx(0.1, rel=1e-9)
    assert loss == pytest.approx(2e-5, rel=1e-9)
    torch.testing.assert_close(grad, torch.full((4, 4), -0.1 / 12, dtype=torch.float64) * mask, rtol=1e-9, atol=0)

    group_a, loss_a, grad_a = call([0, 1], 2)
    group_b, loss_b, grad_b = call([2, 3], 2)
    assert group_a.metrics["drpo/kl_coef"].item() == pytest.approx(0.3, rel=1e-9)
    assert group_b.metrics["drpo/kl_coef"].item() == 0.0
    assert loss_a + loss_b == pytest.approx(6e-5, rel=1e-9)
    torch.testing.assert_close(grad_a, torch.full((2, 4), -0.0375, dtype=torch.float64) * mask[:2], rtol=1e-9, atol=0)
    assert (grad_b == 0).all()


# --------------------------------------------------------------------------------------------------------------------
# Registry


def test_policy_loss_registry_lists_names_refuses_duplicates_and_the_reserved_name():
    assert {"drpo", "topr"} <= set(policy_loss_names())
    assert get_policy_loss("drpo").needs_whole_groups and not get_policy_loss("topr").needs_whole_groups
    with pytest.raises(ValueError, match="drpo"):
        get_policy_loss("dpro")
    with pytest.raises(ValueError, match="reserved"):
        register_policy_loss("trl")
    with pytest.raises(ValueError, match="already registered"):
        register_policy_loss("topr")(lambda per_token_logps: per_token_logps.sum())


def test_a_custom_policy_loss_is_checked():
    @register_policy_loss("test_vector_loss")
    def vector_loss(per_token_logps):
        return per_token_logps.sum(dim=1)

    @register_policy_loss("test_nan_loss")
    def nan_loss(per_token_logps, mask):
        return (per_token_logps * mask).sum() * float("nan")

    try:
        logps = torch.zeros(2, 3)
        with pytest.raises(TypeError, match="scalar"):
            get_policy_loss("test_vector_loss").compute(per_token_logps=logps, mask=logps)
        with pytest.raises(ValueError, match="non-finite"):
            get_policy_loss("test_nan_loss").compute(per_token_logps=logps, mask=logps, extra=1)
        with pytest.raises(TypeError, match="mask"):
            get_policy_loss("test_nan_loss").compute(per_token_logps=logps)
        assert get_policy_loss("test_nan_loss").takes("mask") and not get_policy_loss("test_nan_loss").takes("rewards")
    finally:
        for name in ("test_vector_loss", "test_nan_loss"):
            _POLICY_LOSSES._entries.pop(name)

"""DRPO (docs/methods/drpo.md): the worked example, length weights, the KL hinge, a slow float64 loop reference
(values and gradients) and edge cases."""

import math
import random

import pytest
import torch
from support import spread

from trl_reasoning.losses import drpo_length_weights, drpo_loss


# docs/methods/drpo.md, Worked example


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

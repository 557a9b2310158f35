"""BNPO's ``beta_norm`` estimator: the worked examples of docs/methods/bnpo.md, special cases, a loop reference, edge cases."""

import math

import pytest
import torch
from support import make_trainer

from trl_reasoning import get_advantage_estimator
from trl_reasoning.embedded import completion_text
from trl_reasoning.testing import scripted_rollout


NAN = float("nan")


def bnpo(rewards, group_size, **kwargs):
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    return get_advantage_estimator("beta_norm").compute(rewards=rewards, group_size=group_size, **kwargs)


def assert_advantages(got, expected, atol=1e-6):
    torch.testing.assert_close(got.double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=atol)


# --- docs/methods/bnpo.md, Worked example ---------------------------------------------------------------------------

ACCURACY = [[1, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 1]]
FORMAT = [[1, 1, 0, 1], [1, 1, 1, 1], [0, 1, 0, 1]]
A1, A2, A3 = 0.3926990817, 0.2267249205, 0.6801747616  # α = β = 1.5 table


def flat(groups):
    return [r for group in groups for r in group]


def test_worked_example_three_prompts():
    out = bnpo(flat(ACCURACY), 4)
    assert_advantages(out.advantages, [A1, -A1, -A1, A1, A2, A2, A2, -A3, -A2, -A2, -A2, A3])
    assert out.metrics == pytest.approx({"beta_norm/alpha": 1.5, "beta_norm/beta": 1.5}, abs=1e-9)
    assert out.keep.all()
    assert out.advantages.dtype == torch.float32


def test_worked_example_with_all_wrong_prompt():
    out = bnpo(flat([*ACCURACY, [0, 0, 0, 0]]), 4)
    a, b, c, d = 0.4474371565, 0.2515249200, 0.7545747600, (0.2243266593, 0.6729799779)
    expected = [a, -a, -a, a, b, b, b, -c, -d[0], -d[0], -d[0], d[1], 0, 0, 0, 0]
    assert_advantages(out.advantages, expected)
    assert out.metrics["beta_norm/alpha"] == pytest.approx(1.15625, abs=1e-9)
    assert out.metrics["beta_norm/beta"] == pytest.approx(1.2604166667, abs=1e-9)


def test_worked_example_single_prompt_is_reinforce():
    out = bnpo([1, 0, 0, 1], 4)
    assert_advantages(out.advantages, [0.5, -0.5, -0.5, 0.5])
    assert out.metrics == {"beta_norm/alpha": 1.0, "beta_norm/beta": 1.0}


def test_worked_example_over_dispersed_batch():
    # p̂ = [0, 1, 0, 1]: μ = 0.5, s² = 1/3 > μ(1 − μ) → a = b = −0.125 → α = β = 1; every group is saturated.
    out = bnpo([0, 0, 1, 1, 0, 0, 1, 1], 2)
    assert_advantages(out.advantages, [0.0] * 8)
    assert out.metrics == {"beta_norm/alpha": 1.0, "beta_norm/beta": 1.0}


def test_worked_example_decomposition():
    rewards_per_func = torch.tensor([flat(ACCURACY), flat(FORMAT)], dtype=torch.float32).T
    out = get_advantage_estimator("beta_norm").compute(
        rewards=rewards_per_func.sum(dim=1),
        group_size=4,
        rewards_per_func=rewards_per_func,
        reward_weights=torch.ones(2),
        reward_names=["accuracy", "format"],
        decompose=True,
    )
    expected = [0.2957229706, -0.0969761111, -0.4944698300, 0.2957229706]
    expected += [0.1133624603] * 3 + [-0.3400873808]
    expected += [-0.3302198561, 0.1034949356, -0.3302198561, 0.5569447767]
    assert_advantages(out.advantages, expected)
    assert out.metrics == pytest.approx(
        {
            "beta_norm/accuracy/alpha": 1.5,
            "beta_norm/accuracy/beta": 1.5,
            "beta_norm/format/alpha": 1.5,
            "beta_norm/format/beta": 1.1666666667,
        },
        abs=1e-9,
    )


def test_decomposition_format_advantages_alone():
    # bnpo.md, Worked example: format advantages, from the format reward alone (α = 1.5, β = 7/6).
    out = bnpo(flat(FORMAT), 4)
    f1, f2 = 0.1987468594, (0.5962405782, 0.4337147917)
    assert_advantages(out.advantages, [f1, f1, -f2[0], f1, 0, 0, 0, 0, -f2[1], f2[1], -f2[1], f2[1]])


def test_decomposition_without_names_uses_indices_and_weights():
    rewards_per_func = torch.tensor([flat(ACCURACY), flat(FORMAT)], dtype=torch.float32).T
    weighted = get_advantage_estimator("beta_norm").compute(
        rewards=rewards_per_func[:, 0],
        group_size=4,
        rewards_per_func=rewards_per_func,
        reward_weights=torch.tensor([3.0, 1.0]),
        decompose=True,
    )
    assert set(weighted.metrics) == {"beta_norm/0/alpha", "beta_norm/0/beta", "beta_norm/1/alpha", "beta_norm/1/beta"}
    # (3·A_acc + 1·A_fmt) / 4, from the worked example's accuracy and format tables.
    acc = [A1, -A1, -A1, A1, A2, A2, A2, -A3, -A2, -A2, -A2, A3]
    fmt = [0.1987468594, 0.1987468594, -0.5962405782, 0.1987468594, 0, 0, 0, 0]
    fmt += [-0.4337147917, 0.4337147917, -0.4337147917, 0.4337147917]
    assert_advantages(weighted.advantages, [(3 * a + f) / 4 for a, f in zip(acc, fmt, strict=True)])


# --- special cases --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "groups",
    [
        ACCURACY,  # p̂ = [0.5, 0.75, 0.25]
        [[1, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]],  # p̂ = [¼, ¾, ¼, ¾, ½]: s² = 1/16
    ],
)
def test_alpha_beta_three_halves_is_pi_over_8_grpo_with_population_std(groups):
    out = bnpo(flat(groups), 4)
    assert out.metrics == pytest.approx({"beta_norm/alpha": 1.5, "beta_norm/beta": 1.5}, abs=1e-9)
    expected = []
    for group in groups:
        mean = sum(group) / len(group)
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / len(group))  # population std
        expected += [math.pi / 8 * (r - mean) / std for r in group]
    assert_advantages(out.advantages, expected)


@pytest.mark.parametrize(
    "groups",
    [
        [[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 1, 0]],  # s² = μ(1 − μ) → k = 0 → a = b = 0
        [[1, 0, 1, 0], [0, 1, 1, 0]],  # zero variance
        [[1, 1, 0, 1, 0, 0]],  # one prompt
    ],
)
def test_alpha_beta_one_is_group_mean_baseline(groups):
    out = bnpo(flat(groups), len(groups[0]))
    assert out.metrics == {"beta_norm/alpha": 1.0, "beta_norm/beta": 1.0}
    expected = [r - sum(group) / len(group) for group in groups for r in group]
    assert_advantages(out.advantages, expected)


def test_density_clamp():
    # α = β = 1.5: 1/f(0.5) = π/8 ≈ 0.393 and 1/f(0.75) = 1/f(0.25) ≈ 0.907, all clamped to 0.3.
    out = bnpo(flat(ACCURACY), 4, max_inverse_density=0.3)
    assert_advantages(
        out.advantages, [0.15, -0.15, -0.15, 0.15, 0.075, 0.075, 0.075, -0.225, -0.075] + [-0.075, -0.075, 0.225]
    )
    with pytest.raises(ValueError, match="max_inverse_density"):
        bnpo(flat(ACCURACY), 4, max_inverse_density=float("inf"))
    with pytest.raises(ValueError, match="max_inverse_density"):
        bnpo(flat(ACCURACY), 4, max_inverse_density=0.0)


# --- loop reference -------------------------------------------------------------------------------------------------


def reference_bnpo(rewards, group_size, clamp=1e6):
    """Slow float64 reference for rewards in [0, 1] (NaN = unscorable): a Python loop, ``math.lgamma``."""
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    means = []
    for group in groups:
        valid = [r for r in group if not math.isnan(r)]
        means.append(sum(valid) / len(valid) if valid else None)
    fitted = [m for m in means if m is not None]
    alpha = beta = 1.0
    if len(fitted) >= 2:
        mu = sum(fitted) / len(fitted)
        var = sum((m - mu) ** 2 for m in fitted) / (len(fitted) - 1)
        if var > 1e-12:
            k = mu * (1 - mu) / var - 1
            alpha, beta = max(1 + k * mu / 3, 1.0), max(1 + k * (1 - mu) / 3, 1.0)

    def log_term(exponent, x):  # exponent · log x, with 0 · log 0 = 0
        if exponent == 0:
            return 0.0
        return -math.inf if x == 0 else exponent * math.log(x)

    out = []
    for group, p in zip(groups, means, strict=True):
        if p is None:
            out += [0.0] * len(group)
            continue
        log_f = log_term(alpha - 1, p) + log_term(beta - 1, 1 - p)
        log_f += math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)
        inverse = clamp if log_f == -math.inf else min(math.exp(-log_f), clamp)
        out += [0.0 if math.isnan(r) else (r - p) * inverse for r in group]
    return out, alpha, beta


def random_batch(generator, num_funcs=1):
    group_size = int(torch.randint(1, 9, (1,), generator=generator))
    num_groups = int(torch.randint(1, 13, (1,), generator=generator))
    n = group_size * num_groups
    # Binary rewards with per-prompt success rates, so groups differ; ~10% NaN (reward function returned None).
    rates = torch.rand(num_groups, 1, num_funcs, generator=generator).expand(-1, group_size, -1).reshape(n, num_funcs)
    rewards = (torch.rand(n, num_funcs, generator=generator) < rates).double()
    rewards[torch.rand(n, num_funcs, generator=generator) < 0.1] = NAN
    return rewards, group_size


@pytest.mark.parametrize("seed", range(12))
def test_matches_loop_reference(seed):
    rewards, group_size = random_batch(torch.Generator().manual_seed(seed))
    rewards = rewards[:, 0]
    out = bnpo(rewards, group_size)
    expected, alpha, beta = reference_bnpo(rewards.tolist(), group_size)
    assert_advantages(out.advantages, expected, atol=1e-5)
    assert out.metrics == pytest.approx({"beta_norm/alpha": alpha, "beta_norm/beta": beta}, rel=1e-9)
    assert out.keep.all()


@pytest.mark.parametrize("seed", range(12))
def test_decomposition_matches_loop_reference(seed):
    generator = torch.Generator().manual_seed(100 + seed)
    num_funcs = 2 + seed % 2
    rewards_per_func, group_size = random_batch(generator, num_funcs)
    weights = [0.5, 2.0, 1.25][:num_funcs]
    names = ["acc", "fmt", "len"][:num_funcs]
    out = get_advantage_estimator("beta_norm").compute(
        rewards=torch.zeros(len(rewards_per_func)),
        group_size=group_size,
        rewards_per_func=rewards_per_func.float(),
        reward_weights=torch.tensor(weights),
        reward_names=names,
        decompose=True,
    )
    expected = [0.0] * len(rewards_per_func)
    for k in range(num_funcs):
        per_func, alpha, beta = reference_bnpo(rewards_per_func[:, k].tolist(), group_size)
        expected = [e + weights[k] * a / sum(weights) for e, a in zip(expected, per_func, strict=True)]
        assert out.metrics[f"beta_norm/{names[k]}/alpha"] == pytest.approx(alpha, rel=1e-9)
        assert out.metrics[f"beta_norm/{names[k]}/beta"] == pytest.approx(beta, rel=1e-9)
    assert_advantages(out.advantages, expected, atol=1e-5)


def test_groups_permuted_gives_permuted_advantages():
    rewards, group_size = random_batch(torch.Generator().manual_seed(7))
    rewards = torch.nan_to_num(rewards[:, 0])
    grouped = rewards.view(-1, group_size)
    order = torch.randperm(grouped.size(0), generator=torch.Generator().manual_seed(0))
    plain = bnpo(rewards, group_size).advantages.view(-1, group_size)
    permuted = bnpo(grouped[order].flatten(), group_size).advantages.view(-1, group_size)
    torch.testing.assert_close(permuted, plain[order])


# --- edge cases -----------------------------------------------------------------------------------------------------


def test_unscorable_rewards_leave_group_mean_and_get_zero():
    # Group [1, nan, 0, 0] → p̂ = 1/3; group [1, 1, 0, 0] → p̂ = 1/2. μ = 5/12, s² = 2·(1/12)² = 1/72,
    # k = (35/144)·72 − 1 = 16.5 → a = 6.875, b = 9.625 → α = 1 + a/3, β = 1 + b/3.
    out = bnpo([1, NAN, 0, 0, 1, 1, 0, 0, NAN, NAN, NAN, NAN], 4)
    assert out.metrics == pytest.approx({"beta_norm/alpha": 1 + 6.875 / 3, "beta_norm/beta": 1 + 9.625 / 3})
    assert out.advantages[[1, 8, 9, 10, 11]].tolist() == [0.0] * 5
    assert out.keep.all()
    alpha, beta = 1 + 6.875 / 3, 1 + 9.625 / 3
    log_b = math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta)
    inv = [math.exp(log_b - (alpha - 1) * math.log(p) - (beta - 1) * math.log(1 - p)) for p in (1 / 3, 1 / 2)]
    expected = [2 / 3 * inv[0], 0, -1 / 3 * inv[0], -1 / 3 * inv[0], 0.5 * inv[1], 0.5 * inv[1], -0.5 * inv[1]]
    assert_advantages(out.advantages, [*expected, -0.5 * inv[1], 0, 0, 0, 0])


def test_group_size_one_gives_zero_advantages():
    # The official code would set p̂ = 0 here and return R / f(0) (up to 1e6·R); p̂ is the reward itself, so A = 0.
    out = bnpo([1, 0, 1, 1, 0], 1)
    assert out.advantages.tolist() == [0.0] * 5
    assert torch.isfinite(torch.tensor(list(out.metrics.values()))).all()


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_all_correct_or_all_wrong_batch(value):
    out = bnpo([value] * 12, 4)
    assert out.advantages.tolist() == [0.0] * 12
    assert out.metrics == {"beta_norm/alpha": 1.0, "beta_norm/beta": 1.0}


def test_zero_variance_batch_falls_back_to_reinforce():
    # p̂ = [1/3, 1/3, 1/3]: s² = 0 → α = β = 1 → A = R − 1/3.
    out = bnpo([1, 0, 0, 0, 1, 0, 0, 0, 1], 3)
    assert out.metrics == {"beta_norm/alpha": 1.0, "beta_norm/beta": 1.0}
    assert_advantages(out.advantages, [2 / 3, -1 / 3, -1 / 3, -1 / 3, 2 / 3, -1 / 3, -1 / 3, -1 / 3, 2 / 3])


def test_saturated_group_with_large_alpha_is_zero_not_nan():
    # Concentrated p̂ near 0.8 → large α, β; the all-correct group has f(1) = 0, 1/f clamped, times R − p̂ = 0.
    groups = [[1, 1, 1, 1, 1]] + [[1, 1, 1, 1, 0]] * 12 + [[1, 1, 1, 0, 0]] * 2
    out = bnpo(flat(groups), 5)
    assert out.metrics["beta_norm/alpha"] > 2 and out.metrics["beta_norm/beta"] > 1
    assert torch.isfinite(out.advantages).all()
    assert out.advantages[:5].tolist() == [0.0] * 5
    expected, _, _ = reference_bnpo([float(r) for r in flat(groups)], 5)
    assert_advantages(out.advantages, expected, atol=1e-5)


def test_rewards_outside_unit_interval_raise():
    # Accuracy + format ∈ {0, 1, 2} without decomposition.
    summed = [a + f for a, f in zip(flat(ACCURACY), flat(FORMAT), strict=True)]
    with pytest.raises(ValueError, match=r"reward_range.*advantage_estimator_kwargs.*beta_norm_decompose=True"):
        bnpo(summed, 4)
    with pytest.raises(ValueError, match="reward_range"):
        bnpo([-1, 1, 1, -1], 4)


def test_reward_range_maps_rewards():
    # Rewards in {−1, 1} with reward_range=(−1, 1) map to {0, 1}: the worked example, advantages in mapped units.
    signed = [2 * r - 1 for r in flat(ACCURACY)]
    out = bnpo(signed, 4, reward_range=[-1, 1])
    assert_advantages(out.advantages, [A1, -A1, -A1, A1, A2, A2, A2, -A3, -A2, -A2, -A2, A3])
    # {0, 1, 2} with reward_range=(0, 2): p̂ in halves.
    out = bnpo([2, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 2], 4, reward_range=(0.0, 2.0))
    assert_advantages(out.advantages, [A1, -A1, -A1, A1, A2, A2, A2, -A3, -A2, -A2, -A2, A3])


@pytest.mark.parametrize("reward_range", [(1, 0), (0, 0), (0, float("inf")), (0, 1, 2), "01", [[0, 1]]])
def test_invalid_reward_range(reward_range):
    with pytest.raises(ValueError, match="reward_range"):
        bnpo(flat(ACCURACY), 4, reward_range=reward_range)


def test_decomposition_per_function_reward_ranges():
    # Accuracy in {−1, 1}, format in {0, 1}: one (min, max) pair per function gives the worked example's decomposition.
    rewards_per_func = torch.tensor([[2 * r - 1 for r in flat(ACCURACY)], flat(FORMAT)], dtype=torch.float32).T
    out = get_advantage_estimator("beta_norm").compute(
        rewards=rewards_per_func.sum(dim=1),
        group_size=4,
        rewards_per_func=rewards_per_func,
        decompose=True,
        reward_range=[[-1, 1], [0, 1]],
    )
    assert_advantages(out.advantages[:4], [0.2957229706, -0.0969761111, -0.4944698300, 0.2957229706])
    with pytest.raises(ValueError, match="Reward function '0'.*reward_range"):
        get_advantage_estimator("beta_norm").compute(
            rewards=rewards_per_func.sum(dim=1), group_size=4, rewards_per_func=rewards_per_func, decompose=True
        )
    with pytest.raises(ValueError, match="3 \\(min, max\\) pairs for 2"):
        get_advantage_estimator("beta_norm").compute(
            rewards=rewards_per_func.sum(dim=1),
            group_size=4,
            rewards_per_func=rewards_per_func,
            decompose=True,
            reward_range=[[-1, 1], [0, 1], [0, 1]],
        )


def test_decomposition_needs_rewards_per_func():
    with pytest.raises(ValueError, match="rewards_per_func"):
        bnpo(flat(ACCURACY), 4, decompose=True)


def test_decomposition_unscorable_function_contributes_zero():
    # Function 1 returned None for row 0: its contribution there is 0, function 0's is weighted 1/(1 + 1).
    rewards_per_func = torch.tensor([[1.0, NAN], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    out = get_advantage_estimator("beta_norm").compute(
        rewards=rewards_per_func.nansum(dim=1), group_size=4, rewards_per_func=rewards_per_func, decompose=True
    )
    # One prompt → α = β = 1 for both: A_acc = R − 0.5, A_fmt = R − 2/3 over rows 1..3, 0 on row 0.
    expected = [(0.5 + 0) / 2, (-0.5 + 1 / 3) / 2, (-0.5 - 2 / 3) / 2, (0.5 + 1 / 3) / 2]
    assert_advantages(out.advantages, expected)


def test_bad_group_size():
    with pytest.raises(ValueError, match="group_size"):
        bnpo([1, 0, 1], 2)


# --- through the registry -------------------------------------------------------------------------------------------


def test_called_with_the_standard_arguments():
    rewards = torch.tensor(flat(ACCURACY), dtype=torch.float32)
    estimator = get_advantage_estimator("beta_norm")
    assert estimator.display_name == "BNPO" and estimator.paper["id"] == "2506.02864"
    assert not estimator.drops_samples
    out = estimator.compute(
        rewards=rewards,
        group_size=4,
        correct=rewards >= 1.0,
        scorable=torch.ones_like(rewards, dtype=torch.bool),
        lengths=torch.full_like(rewards, 10, dtype=torch.long),
        max_length=64,
        rewards_per_func=rewards.unsqueeze(1),
        reward_weights=torch.ones(1),
        reward_names=["accuracy"],
        # a direct call may pass a superset: what BNPO does not declare (another method's parameters) is left out
        scale="group",
        aggregation="sum_then_normalize",
        positive_weight=0.1,
    )
    assert_advantages(out.advantages, [A1, -A1, -A1, A1, A2, A2, A2, -A3, -A2, -A2, -A2, A3])
    assert out.keep.all()
    assert estimator(rewards=rewards, group_size=4).shape == rewards.shape


# --- the official loss aggregation through the trainer --------------------------------------------------------------


def correct_if_short(completions, **kwargs):
    # scripted completions are (L - 1) digits + EOS: the 10- and 20-token ones are "correct"
    return [1.0 if len(completion_text(c)) + 1 in (10, 20) else 0.0 for c in completions]


def bnpo_trainer(tmp_path, **args):
    settings = dict(
        advantage_estimator="beta_norm",
        loss_type="luspo",  # recipes/configs/bnpo.yaml
        epsilon=0.2,
        epsilon_high=0.28,
        delta=10.0,
        per_device_train_batch_size=4,
        max_completion_length=64,
        reward_funcs=(correct_if_short,),
        trainer_kwargs={"rollout_func": scripted_rollout([10, 20, 30, 40])},
    )
    trainer = make_trainer(tmp_path, **{**settings, **args})
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train() in a real run
    return trainer


def loss_and_grad(trainer, inputs, old_log_ratio=None, rows=(0, 1, 2, 3)):
    """TRL's loss on ``rows`` of ``inputs``, with the policy's log-probs replaced by a leaf of zeros."""
    rows = list(rows)
    part = {key: value[rows] if torch.is_tensor(value) and value.dim() and len(value) == 4 else value
            for key, value in inputs.items()}  # fmt: skip
    width = part["completion_ids"].size(1)
    logps = torch.zeros(len(rows), width, requires_grad=True)
    if old_log_ratio is not None:  # log π_old per token, so that the ratio π/π_old is exp(-old) on every token
        part["old_per_token_logps"] = torch.tensor(old_log_ratio)[rows, None].expand(len(rows), width).clone()
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros_like(logps), None)
    loss = trainer._compute_loss(trainer.model, part)
    (grad,) = torch.autograd.grad(loss, logps)
    return loss.item(), grad


@pytest.mark.slow
def test_luspo_is_verls_seq_mean_token_sum(tmp_path):
    """docs/methods/bnpo.md: `loss_type="luspo"` (token-level ratios) is the official `seq-mean-token-sum`.

    Rewards [1, 1, 0, 0] on lengths [10, 20, 30, 40], one prompt: α = β = 1, A = [0.5, 0.5, -0.5, -0.5]. On-policy
    every token's loss is -A, so the token sums are [-5, -10, 15, 20] and their mean over the 4 sequences is 5.0
    (dr_grpo: 20 / (4 · 64) = 0.078125; dapo, the token mean: 20 / 100 = 0.2). Gradient per token: -A / 4.
    """
    trainer = bnpo_trainer(tmp_path)
    inputs = trainer._generate_and_score_completions([trainer.train_dataset[0]] * 4)
    torch.testing.assert_close(inputs["advantages"], torch.tensor([0.5, 0.5, -0.5, -0.5]))
    assert inputs["completion_mask"].sum(dim=1).tolist() == [10, 20, 30, 40]
    loss, grad = loss_and_grad(trainer, inputs)
    assert loss == pytest.approx(5.0, abs=1e-6)
    for row, (length, g) in enumerate(zip([10, 20, 30, 40], [-0.125, -0.125, 0.125, 0.125], strict=True)):
        torch.testing.assert_close(grad[row, :length], torch.full((length,), g), rtol=0, atol=1e-7)
        assert (grad[row, length:] == 0).all()

    # Two accumulation steps of 2 sequences: mean(-5, -10)/2 + mean(15, 20)/2 = 5.0 again, the same gradient (verl
    # scales each micro-batch by its share of the mini-batch, which is 1/2 here).
    trainer.current_gradient_accumulation_steps = 2
    first, grad_first = loss_and_grad(trainer, inputs, rows=(0, 1))
    second, grad_second = loss_and_grad(trainer, inputs, rows=(2, 3))
    assert first == pytest.approx(-3.75, abs=1e-6) and second == pytest.approx(8.75, abs=1e-6)
    torch.testing.assert_close(torch.cat([grad_first, grad_second]), grad, rtol=0, atol=1e-7)

    # Off-policy, with verl's dual clip (clip_ratio_low 0.2, high 0.28, c = 10) worked by hand per token:
    # ratio 1.5, A > 0: -min(0.75, 1.28 · 0.5) = -0.64;  ratio 0.5, A > 0: -min(0.25, 0.8 · 0.5) = -0.25;
    # ratio 20, A < 0: min(c · 0.5, max(20 · 0.5, 1.28 · 0.5)) = 5;  ratio 0.5, A < 0: min(5, max(0.25, 0.4)) = 0.4.
    # Token sums [-6.4, -5, 150, 16], mean 38.65; only the unclipped second row has a gradient, -0.5 · 0.5 / 4.
    trainer.current_gradient_accumulation_steps = 1
    ratios = [1.5, 0.5, 20.0, 0.5]
    loss, grad = loss_and_grad(trainer, inputs, old_log_ratio=[-math.log(r) for r in ratios])
    assert loss == pytest.approx(38.65, abs=1e-4)
    expected = torch.zeros_like(grad)
    expected[1, :20] = -0.0625
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-6)

"""Advantage estimators as pure functions: hand-computed values (the Worked examples of docs/methods/), properties."""

import math

import pytest
import torch

from trl_reasoning import advantage_estimator_names, get_advantage_estimator


BUILTINS = ["grpo", "psr", "nsr", "w_reinforce"]


def call(name, rewards, group_size, **kwargs):
    rewards = torch.tensor(rewards, dtype=torch.float32)
    kwargs.setdefault("correct", rewards >= 1.0)
    kwargs.setdefault("lengths", torch.full_like(rewards, 10, dtype=torch.long))
    kwargs.setdefault("max_length", 64)
    return get_advantage_estimator(name).compute(rewards=rewards, group_size=group_size, **kwargs)


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(advantage_estimator_names())


# --- GRPO ----------------------------------------------------------------------------------------------------------


def test_grpo_group_scale_hand_computed():
    # Group [1, 0, 0, 1]: mean 0.5, sample std sqrt((4 * 0.25) / 3) = 0.577350..., A = ±0.5 / (std + 1e-4).
    std = math.sqrt(1 / 3)
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4)]
    # Group [2, 2, 2, 5]: mean 2.75, std sqrt((3 * 0.5625 + 5.0625) / 3) = 1.5.
    expected += [-0.75 / 1.5001] * 3 + [2.25 / 1.5001]
    out = call("grpo", [1, 0, 0, 1, 2, 2, 2, 5], 4)
    torch.testing.assert_close(out.advantages, torch.tensor(expected), rtol=0, atol=1e-6)
    assert out.keep.all()


def test_grpo_scale_none_and_batch_hand_computed():
    out = call("grpo", [1, 0, 0, 1, 2, 2, 2, 5], 4, scale="none")
    torch.testing.assert_close(out.advantages, torch.tensor([0.5, -0.5, -0.5, 0.5, -0.75, -0.75, -0.75, 2.25]))
    # Batch std of [1,0,0,1,2,2,2,5]: mean 13/8, sum of squares 39 - 8 * (13/8)^2 = 17.875, / 7.
    batch_std = math.sqrt(17.875 / 7)
    out = call("grpo", [1, 0, 0, 1, 2, 2, 2, 5], 4, scale="batch")
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5, -0.75, -0.75, -0.75, 2.25]) / (batch_std + 1e-4)
    torch.testing.assert_close(out.advantages, expected, rtol=0, atol=1e-6)


def test_grpo_unscorable_rows_leave_statistics_and_get_zero():
    # Group [1, nan, 0, 0]: statistics over [1, 0, 0] -> mean 1/3, std sqrt((4/9 + 2/9) / 2) = sqrt(1/3).
    std = math.sqrt(1 / 3)
    out = call("grpo", [1, float("nan"), 0, 0], 4)
    expected = torch.tensor([(2 / 3) / (std + 1e-4), 0.0, (-1 / 3) / (std + 1e-4), (-1 / 3) / (std + 1e-4)])
    torch.testing.assert_close(out.advantages, expected, rtol=0, atol=1e-6)


def test_grpo_normalize_then_sum_hand_computed():
    # Two functions, weights [1, 2]; one group of 2: f1 = [1, 0] -> ±0.5 / (sqrt(0.5) + 1e-4); f2 = [0.2, 0.2] -> 0.
    rewards_per_func = torch.tensor([[1.0, 0.2], [0.0, 0.2]])
    weights = torch.tensor([1.0, 2.0])
    z = 0.5 / (math.sqrt(0.5) + 1e-4)
    total_std = math.sqrt(2 * z * z)  # sample std of [z, -z]
    out = get_advantage_estimator("grpo").compute(
        rewards=(rewards_per_func * weights).sum(1),
        group_size=2,
        aggregation="normalize_then_sum",
        rewards_per_func=rewards_per_func,
        reward_weights=weights,
    )
    expected = torch.tensor([z / (total_std + 1e-4), -z / (total_std + 1e-4)])
    torch.testing.assert_close(out.advantages, expected, rtol=0, atol=1e-6)


def grpo_loop_reference(rewards, group_size, scale):
    """Slow float64 reference: a Python loop over groups."""
    rewards = rewards.double().tolist()
    out = []
    batch_mean = sum(rewards) / len(rewards)
    batch_std = math.sqrt(sum((r - batch_mean) ** 2 for r in rewards) / (len(rewards) - 1))
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        mean = sum(group) / len(group)
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / (len(group) - 1))
        for r in group:
            if scale == "none":
                out.append(r - mean)
            else:
                out.append((r - mean) / ((std if scale == "group" else batch_std) + 1e-4))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("seed", range(5))
def test_grpo_matches_loop_reference(scale, seed):
    generator = torch.Generator().manual_seed(seed)
    group_size = int(torch.randint(2, 9, (1,), generator=generator))
    num_groups = int(torch.randint(1, 20, (1,), generator=generator))
    rewards = torch.randn(group_size * num_groups, generator=generator)
    got = get_advantage_estimator("grpo")(rewards=rewards, group_size=group_size, scale=scale)
    torch.testing.assert_close(got.double(), grpo_loop_reference(rewards, group_size, scale), rtol=1e-5, atol=1e-5)


def test_grpo_group_mean_is_zero():
    rewards = torch.rand(64, generator=torch.Generator().manual_seed(0))
    for scale in ("group", "none"):
        adv = get_advantage_estimator("grpo")(rewards=rewards, group_size=8, scale=scale)
        torch.testing.assert_close(adv.view(8, 8).mean(dim=1), torch.zeros(8), rtol=0, atol=1e-6)


# --- PSR / NSR / W-REINFORCE: docs/methods/negative-reinforcement.md, Worked example ----------------------------


@pytest.mark.parametrize(
    ("name", "advantages", "keep"),
    [
        ("psr", [1.0, 0.0, 0.0, 1.0], [True, False, False, True]),
        ("nsr", [0.0, -1.0, -1.0, 0.0], [False, True, True, False]),
        ("w_reinforce", [0.1, -1.0, -1.0, 0.1], [True, True, True, True]),
    ],
)
def test_negative_reinforcement_worked_example(name, advantages, keep):
    out = call(name, [1, 0, 0, 1], 4, positive_weight=0.1)
    torch.testing.assert_close(out.advantages, torch.tensor(advantages))
    assert out.keep.tolist() == keep


def test_token_mean_loss_of_worked_example():
    """negative-reinforcement.md, Worked example: lengths [10, 20, 30, 40], on-policy: loss = −Σ A_i·|o_i| / Σ_kept |o_i| → −1.0, +1.0, 0.45."""
    lengths = torch.tensor([10.0, 20.0, 30.0, 40.0])
    expected = {"psr": (-1.0, 50), "nsr": (1.0, 50), "w_reinforce": (0.45, 100)}
    for name, (loss, denominator) in expected.items():
        out = call(name, [1, 0, 0, 1], 4, positive_weight=0.1)
        kept_tokens = (lengths * out.keep).sum()
        assert kept_tokens.item() == denominator
        assert (-(out.advantages * lengths).sum() / kept_tokens).item() == pytest.approx(loss, abs=1e-6)


def test_w_reinforce_no_baseline_on_saturated_groups():
    # All-correct and all-wrong groups still carry signal (no group baseline): +λ and −1.
    out = call("w_reinforce", [1, 1, 1, 0, 0, 0], 3, positive_weight=0.2)
    torch.testing.assert_close(out.advantages, torch.tensor([0.2, 0.2, 0.2, -1.0, -1.0, -1.0]))


def test_w_reinforce_lambda_limits():
    # λ = 0 is NSR's advantages with every sample kept; λ = 1 is plain REINFORCE with ±1.
    assert call("w_reinforce", [1, 0], 2, positive_weight=0.0).advantages.tolist() == [0.0, -1.0]
    assert call("w_reinforce", [1, 0], 2, positive_weight=1.0).advantages.tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="positive_weight"):
        call("w_reinforce", [1, 0], 2, positive_weight=-0.5)


def test_unscorable_samples_are_dropped_by_binary_estimators():
    scorable = torch.tensor([True, False, True, True])
    for name in ("psr", "nsr", "w_reinforce"):
        out = call(name, [1, 0, 0, 1], 4, scorable=scorable)
        assert not out.keep[1] and out.advantages[1] == 0


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize(
    ("rewards", "group_size"),
    [([1, 1, 1, 1], 4), ([0, 0, 0, 0], 4), ([1, 0, 1], 1), ([0.0], 1)],
    ids=["all_correct", "all_wrong", "single_sample_groups", "one_sample"],
)
def test_no_nan_on_degenerate_groups(name, rewards, group_size):
    out = call(name, rewards, group_size)
    assert torch.isfinite(out.advantages).all()
    if name == "grpo":  # zero-variance groups carry no signal
        assert (out.advantages == 0).all()


def test_bad_group_size_is_a_clear_error():
    with pytest.raises(ValueError, match="group_size"):
        call("grpo", [1, 0, 0], 2)


def test_missing_required_argument_is_named():
    with pytest.raises(TypeError, match="correct"):
        get_advantage_estimator("psr").compute(rewards=torch.ones(2), group_size=2)


def test_vectorised_at_scale():
    """A million rollouts go through every built-in without a Python loop over groups (speed: benchmarks/)."""
    n = 1_000_000
    rewards = (torch.arange(n) % 3 == 0).float()
    for name in BUILTINS:
        out = get_advantage_estimator(name).compute(rewards=rewards, group_size=8, correct=rewards >= 1)
        assert out.advantages.shape == (n,)

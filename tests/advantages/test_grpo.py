"""The "grpo" advantage estimator: hand-computed values (docs/methods/grpo.md, Worked example), a float64 loop
reference, properties."""

import math

import pytest
import torch
from support import estimate

from trl_reasoning import get_advantage_estimator


def test_grpo_group_scale_hand_computed():
    # Group [1, 0, 0, 1]: mean 0.5, sample std sqrt((4 * 0.25) / 3) = 0.577350..., A = ±0.5 / (std + 1e-4).
    std = math.sqrt(1 / 3)
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4)]
    # Group [2, 2, 2, 5]: mean 2.75, std sqrt((3 * 0.5625 + 5.0625) / 3) = 1.5.
    expected += [-0.75 / 1.5001] * 3 + [2.25 / 1.5001]
    out = estimate("grpo", [1, 0, 0, 1, 2, 2, 2, 5], 4)
    torch.testing.assert_close(out.advantages, torch.tensor(expected), rtol=0, atol=1e-6)
    assert out.keep.all()


def test_grpo_scale_none_and_batch_hand_computed():
    out = estimate("grpo", [1, 0, 0, 1, 2, 2, 2, 5], 4, scale="none")
    torch.testing.assert_close(out.advantages, torch.tensor([0.5, -0.5, -0.5, 0.5, -0.75, -0.75, -0.75, 2.25]))
    # Batch std of [1,0,0,1,2,2,2,5]: mean 13/8, sum of squares 39 - 8 * (13/8)^2 = 17.875, / 7.
    batch_std = math.sqrt(17.875 / 7)
    out = estimate("grpo", [1, 0, 0, 1, 2, 2, 2, 5], 4, scale="batch")
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5, -0.75, -0.75, -0.75, 2.25]) / (batch_std + 1e-4)
    torch.testing.assert_close(out.advantages, expected, rtol=0, atol=1e-6)


def test_grpo_unscorable_rows_leave_statistics_and_get_zero():
    # Group [1, nan, 0, 0]: statistics over [1, 0, 0] -> mean 1/3, std sqrt((4/9 + 2/9) / 2) = sqrt(1/3).
    std = math.sqrt(1 / 3)
    out = estimate("grpo", [1, float("nan"), 0, 0], 4)
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

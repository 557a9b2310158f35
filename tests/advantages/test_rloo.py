"""RLOO's leave-one-out advantages against hand-computed numbers (docs/methods/rloo.md, Worked example)."""

import math

import pytest
import torch

from trl_reasoning import ReasoningGRPOConfig, get_advantage_estimator


rloo = get_advantage_estimator("rloo")


def test_leave_one_out_baseline():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 5.0])
    # prompt 1: 1 - (0 + 0 + 1)/3 = 2/3; prompt 2: 2 - (2 + 2 + 5)/3 = -1 and 5 - 2 = 3
    expected = torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3, -1.0, -1.0, -1.0, 3.0])
    torch.testing.assert_close(rloo(rewards=rewards, group_size=4), expected, atol=1e-6, rtol=0)


def test_unscorable_completions_leave_the_baseline():
    out = rloo(
        rewards=torch.tensor([1.0, float("nan"), 0.0, 0.0, float("nan"), 1.0, float("nan"), float("nan")]),
        group_size=4,
    )
    # group 2 has one scorable completion: no baseline, all zero
    torch.testing.assert_close(out, torch.tensor([1.0, 0.0, -0.5, -0.5, 0.0, 0.0, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_normalised_over_the_batch():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 5.0])
    std = math.sqrt((4 * 4 / 9 + 3 + 9) / 7)  # the advantages' sample std; their mean is 0
    expected = torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3, -1.0, -1.0, -1.0, 3.0]) / (std + 1e-4)
    got = rloo(rewards=rewards, group_size=4, normalize_advantages=True)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert abs(got[-1].item() - 2.1382069) < 1e-6


def test_is_grpo_rescaled_without_the_std():
    # n/(n-1)·(r - mean): GRPO with scale_rewards="none" times 4/3
    rewards = torch.rand(64, generator=torch.Generator().manual_seed(0))
    grpo = get_advantage_estimator("grpo")(rewards=rewards, group_size=4, scale="none")
    torch.testing.assert_close(rloo(rewards=rewards, group_size=4), grpo * 4 / 3, atol=1e-6, rtol=1e-6)


def test_config_field_and_kwargs(tmp_path):
    config = ReasoningGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        advantage_estimator="rloo",
        rloo_normalize_advantages=True,
    )
    assert config.advantage_kwargs() == {"normalize_advantages": True}
    with pytest.raises(ValueError, match="advantage_estimator_kwargs has 'scale'"):
        ReasoningGRPOConfig(
            output_dir=str(tmp_path),
            use_cpu=True,
            report_to="none",
            advantage_estimator="rloo",
            advantage_estimator_kwargs={"scale": "none"},
        )

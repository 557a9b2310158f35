"""PSR, NSR and W-REINFORCE advantages: docs/methods/negative-reinforcement.md, Worked example, and edge cases."""

import pytest
import torch
from support import estimate


@pytest.mark.parametrize(
    ("name", "advantages", "keep"),
    [
        ("psr", [1.0, 0.0, 0.0, 1.0], [True, False, False, True]),
        ("nsr", [0.0, -1.0, -1.0, 0.0], [False, True, True, False]),
        ("w_reinforce", [0.1, -1.0, -1.0, 0.1], [True, True, True, True]),
    ],
)
def test_negative_reinforcement_worked_example(name, advantages, keep):
    out = estimate(name, [1, 0, 0, 1], 4, positive_weight=0.1)
    torch.testing.assert_close(out.advantages, torch.tensor(advantages))
    assert out.keep.tolist() == keep


def test_token_mean_loss_of_worked_example():
    """negative-reinforcement.md, Worked example: lengths [10, 20, 30, 40], on-policy: loss = −Σ A_i·|o_i| / Σ_kept |o_i| → −1.0, +1.0, 0.45."""
    lengths = torch.tensor([10.0, 20.0, 30.0, 40.0])
    expected = {"psr": (-1.0, 50), "nsr": (1.0, 50), "w_reinforce": (0.45, 100)}
    for name, (loss, denominator) in expected.items():
        out = estimate(name, [1, 0, 0, 1], 4, positive_weight=0.1)
        kept_tokens = (lengths * out.keep).sum()
        assert kept_tokens.item() == denominator
        assert (-(out.advantages * lengths).sum() / kept_tokens).item() == pytest.approx(loss, abs=1e-6)


def test_w_reinforce_no_baseline_on_saturated_groups():
    # All-correct and all-wrong groups still carry signal (no group baseline): +λ and −1.
    out = estimate("w_reinforce", [1, 1, 1, 0, 0, 0], 3, positive_weight=0.2)
    torch.testing.assert_close(out.advantages, torch.tensor([0.2, 0.2, 0.2, -1.0, -1.0, -1.0]))


def test_w_reinforce_lambda_limits():
    # λ = 0 is NSR's advantages with every sample kept; λ = 1 is plain REINFORCE with ±1.
    assert estimate("w_reinforce", [1, 0], 2, positive_weight=0.0).advantages.tolist() == [0.0, -1.0]
    assert estimate("w_reinforce", [1, 0], 2, positive_weight=1.0).advantages.tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="positive_weight"):
        estimate("w_reinforce", [1, 0], 2, positive_weight=-0.5)


def test_unscorable_samples_are_dropped_by_binary_estimators():
    scorable = torch.tensor([True, False, True, True])
    for name in ("psr", "nsr", "w_reinforce"):
        out = estimate(name, [1, 0, 0, 1], 4, scorable=scorable)
        assert not out.keep[1] and out.advantages[1] == 0

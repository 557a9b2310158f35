"""The advantage-estimator registry: built-in names, argument and group checks, and properties every built-in
estimator shares (no NaN on degenerate groups, vectorised)."""

import pytest
import torch
from support import estimate

from trl_reasoning import advantage_estimator_names, get_advantage_estimator


BUILTINS = ["grpo", "psr", "nsr", "w_reinforce"]


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(advantage_estimator_names())


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize(
    ("rewards", "group_size"),
    [([1, 1, 1, 1], 4), ([0, 0, 0, 0], 4), ([1, 0, 1], 1), ([0.0], 1)],
    ids=["all_correct", "all_wrong", "single_sample_groups", "one_sample"],
)
def test_no_nan_on_degenerate_groups(name, rewards, group_size):
    out = estimate(name, rewards, group_size)
    assert torch.isfinite(out.advantages).all()
    if name == "grpo":  # zero-variance groups carry no signal
        assert (out.advantages == 0).all()


def test_bad_group_size_is_a_clear_error():
    with pytest.raises(ValueError, match="group_size"):
        estimate("grpo", [1, 0, 0], 2)


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

"""The policy-loss registry: names, lookup errors, reserved and duplicate names, and the checks on a custom loss."""

import pytest
import torch

from trl_reasoning.losses import get_policy_loss, policy_loss_names, register_policy_loss
from trl_reasoning.losses.base import _POLICY_LOSSES


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

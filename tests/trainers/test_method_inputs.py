"""A method receives exactly what it declares: its parameters and its inputs, computed only when declared."""

from types import SimpleNamespace

import pytest
import torch
from support import make_trainer

from trl_reasoning import (
    ReasoningGRPOConfig,
    register_advantage_estimator,
    register_input_provider,
    register_policy_loss,
)
from trl_reasoning.advantages.base import _ESTIMATORS
from trl_reasoning.inputs import _PROVIDERS, InputContext
from trl_reasoning.losses.base import _POLICY_LOSSES


NAN = float("nan")


@pytest.fixture
def registered():
    """Names registered by a test are removed afterwards."""
    before = {registry: set(registry._entries) for registry in (_ESTIMATORS, _POLICY_LOSSES, _PROVIDERS)}
    yield
    for registry, names in before.items():
        for name in set(registry._entries) - names:
            del registry._entries[name]


def test_a_parameter_another_method_owns_never_reaches_a_custom_method(tmp_path, registered):
    # Before, one flat dict went to every method: `scale` got scale_rewards, `tau` DRPO's, `baseline` TOPR's.
    seen = []

    @register_advantage_estimator("test_probe_estimator")
    def probe_estimator(rewards, group_size, scale="mine", tau="mine"):
        seen.append(("estimator", scale, tau))
        return torch.zeros_like(rewards)

    @register_policy_loss("test_probe_loss")
    def probe_loss(per_token_logps, mask, advantages, baseline="mine", tau="mine", length_lambda="mine"):
        seen.append(("loss", baseline, tau, length_lambda))
        return (per_token_logps * mask).sum() * 0.0

    trainer = make_trainer(
        tmp_path,
        advantage_estimator="test_probe_estimator",
        policy_loss="test_probe_loss",
        max_steps=1,
        topr_baseline=0.5,
        drpo_tau=3.0,
    )
    trainer.train()
    assert set(seen) == {("estimator", "mine", "mine"), ("loss", "mine", "mine", "mine")}


def test_providers_run_only_for_the_inputs_a_configured_method_declares(tmp_path, registered):
    calls = []

    @register_input_provider("test_counted", scope="sample", description="float (N,): ones, counted")
    def counted(context):
        calls.append(context.mode)
        return torch.ones_like(context.get("rewards"))

    make_trainer(tmp_path / "grpo", max_steps=2).train()  # GRPO does not declare it
    assert calls == []

    received = []

    @register_advantage_estimator("test_reads_counted", inputs=("rewards", "group_size", "test_counted"))
    def reads_counted(rewards, group_size, test_counted):
        received.append(test_counted)
        return rewards - rewards.view(-1, group_size).mean(dim=1).repeat_interleave(group_size)

    make_trainer(tmp_path / "custom", advantage_estimator="test_reads_counted", max_steps=2).train()
    # one generation batch per optimizer step here (steps_per_generation = gradient_accumulation_steps = 1)
    assert calls == ["train", "train"] and all(torch.equal(v, torch.ones(8)) for v in received)


def test_a_required_input_nobody_provides_is_an_error_when_the_trainer_is_built(tmp_path, registered):
    @register_advantage_estimator("test_needs_scores", inputs=("rewards", "token_scores"))
    def needs_scores(rewards, token_scores):
        return rewards

    with pytest.raises(ValueError, match=r"reads \['token_scores'\].*register_input_provider"):
        make_trainer(tmp_path, advantage_estimator="test_needs_scores", max_steps=1)


def test_correctness_providers_against_hand_counts():
    # Two groups of four; the correctness reward is None (NaN) for one sample of the first group.
    rewards_per_func = torch.tensor([[1.0], [0.0], [NAN], [1.0], [0.0], [0.0], [0.0], [0.0]])
    trainer = SimpleNamespace(_correctness_index=0, args=SimpleNamespace(correct_threshold=1.0))
    context = InputContext(
        trainer,
        batch={},
        mode="train",
        local=slice(4, 8),
        values={"rewards_per_func": rewards_per_func, "group_size": 4},
    )
    assert context.get("correct").tolist() == [True, False, False, True, False, False, False, False]
    assert context.get("scorable").tolist() == [True, True, False, True, True, True, True, True]
    torch.testing.assert_close(context.get("group_accuracy"), torch.tensor([2 / 3] * 4 + [0.0] * 4))
    torch.testing.assert_close(context.get("positive_fraction"), torch.full((8,), 2 / 7))
    assert context.local_value("correct").tolist() == [False] * 4  # this process's slice


def test_token_weighting_composes_only_with_losses_that_take_per_token_advantages(registered):
    @register_policy_loss("test_sequence_loss")
    def sequence_loss(per_token_logps, mask, advantages):
        return -(advantages.unsqueeze(1) * per_token_logps * mask).sum()

    @register_policy_loss("test_token_loss", token_advantages=True)
    def token_loss(per_token_logps, mask, advantages):
        return -(advantages * per_token_logps * mask).sum()

    def config(**kwargs):
        return ReasoningGRPOConfig(output_dir="unused", report_to="none", use_cpu=True, **kwargs)

    with pytest.raises(ValueError, match="does not train on per-token advantages.*token_advantages=True"):
        config(token_weighting="entropy_token_scale", policy_loss="test_sequence_loss")
    assert config(token_weighting="entropy_token_scale", policy_loss="test_token_loss").token_weighting

"""Config validation, the estimator registry, and the TRL methods we override."""

import inspect
import re

import pytest
import torch
from trl import GRPOTrainer

from trl_reasoning import (
    ReasoningGRPOConfig,
    advantage_estimator_names,
    get_advantage_estimator,
    register_advantage_estimator,
)
from trl_reasoning.advantages.base import _ESTIMATORS


def config(**kwargs):
    return ReasoningGRPOConfig(output_dir="unused", report_to="none", use_cpu=True, **kwargs)


def test_unknown_estimator_names_the_field_and_valid_values():
    valid = re.escape(str(advantage_estimator_names()))
    assert "'beta_norm', 'drpo_length', 'grpo'" in valid.replace("\\", "")
    with pytest.raises(ValueError, match=r"advantage_estimator='ppo'.*Valid values: " + valid):
        config(advantage_estimator="ppo")


def test_negative_positive_weight_is_rejected():
    with pytest.raises(ValueError, match=r"positive_weight=-0\.1.*>= 0"):
        config(advantage_estimator="w_reinforce", positive_weight=-0.1)


def test_dropping_estimator_needs_token_level_loss():
    with pytest.raises(ValueError, match=r"loss_type='grpo'.*loss_type to one of \['dapo', 'bnpo'"):
        config(advantage_estimator="psr", loss_type="grpo")
    assert config(advantage_estimator="psr", loss_type="bnpo").loss_type == "bnpo"


def test_normalize_then_sum_only_for_grpo():
    with pytest.raises(ValueError, match="multi_objective_aggregation"):
        config(advantage_estimator="nsr", multi_objective_aggregation="normalize_then_sum")


def test_non_finite_threshold_is_rejected():
    with pytest.raises(ValueError, match="correct_threshold"):
        config(correct_threshold=float("nan"))


def test_cli_strings_are_parsed():
    cfg = config(
        correctness_reward="1",
        advantage_estimator="w_reinforce",
        advantage_estimator_kwargs='{"positive_weight": 0.3}',
    )
    assert cfg.correctness_reward == 1 and cfg.advantage_estimator_kwargs == {"positive_weight": 0.3}
    assert cfg.advantage_kwargs() == {"positive_weight": 0.3}


def test_kwargs_reach_only_the_method_that_declares_them():
    # GRPO declares no `temperature`: before one flat dict went to every estimator and this passed silently.
    with pytest.raises(ValueError, match=r"advantage_estimator_kwargs has 'temperature'.*'grpo'.*\['scale'"):
        config(advantage_estimator_kwargs={"temperature": 2.0})
    with pytest.raises(ValueError, match=r"policy_loss_kwargs has 'baseline'.*'drpo'"):
        config(policy_loss="drpo", policy_loss_kwargs={"baseline": 0.5}, per_device_train_batch_size=8)


def test_every_field_has_help_listing_values():
    fields = ReasoningGRPOConfig.__dataclass_fields__
    for name in ("advantage_estimator", "positive_weight", "correctness_reward", "correct_threshold"):
        assert fields[name].metadata["help"], name
    for estimator in ("grpo", "psr", "nsr", "w_reinforce"):
        assert f"'{estimator}'" in fields["advantage_estimator"].metadata["help"]


def test_registry_refuses_duplicates_and_lists_names_on_a_miss():
    with pytest.raises(ValueError, match="already registered"):
        register_advantage_estimator("grpo")(lambda rewards: rewards)
    with pytest.raises(ValueError, match=r"Unknown advantage estimator 'nope'.*\['beta_norm', 'drpo_length', 'grpo'"):
        get_advantage_estimator("nope")


@pytest.fixture
def custom_estimator():
    @register_advantage_estimator("test_centered", display_name="Centered")
    def centered(rewards, group_size, shift=0.0):
        grouped = rewards.view(-1, group_size)
        return (grouped - grouped.mean(dim=1, keepdim=True)).flatten() + shift

    yield "test_centered"
    del _ESTIMATORS._entries["test_centered"]


def test_user_estimator_is_selectable_and_gets_its_parameters(custom_estimator):
    assert custom_estimator in advantage_estimator_names()
    cfg = config(advantage_estimator=custom_estimator, advantage_estimator_kwargs={"shift": 0.5})
    out = get_advantage_estimator(custom_estimator)(
        rewards=torch.tensor([1.0, 0.0, 3.0, 3.0]),
        group_size=2,
        correct=torch.ones(4, dtype=torch.bool),
        **cfg.advantage_kwargs(),
    )
    assert out.tolist() == [1.0, 0.0, 0.5, 0.5]


def test_non_finite_advantage_is_an_error_naming_the_estimator(custom_estimator):
    with pytest.raises(ValueError, match="test_centered.*non-finite"):
        get_advantage_estimator(custom_estimator)(rewards=torch.tensor([1.0, float("inf")]), group_size=2)


# TRL methods ReasoningGRPOTrainer overrides: if a TRL upgrade changes them, this fails loudly.
OVERRIDDEN = {
    "__init__": [
        "self",
        "model",
        "reward_funcs",
        "args",
        "train_dataset",
        "eval_dataset",
        "processing_class",
        "reward_processing_classes",
        "callbacks",
        "optimizers",
        "quantization_config",
        "peft_config",
        "tools",
        "rollout_func",
        "environment_factory",
    ],
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_generate_and_score_completions": ["self", "inputs"],
    "_prepare_inputs": ["self", "generation_batch"],
    "_compute_loss": ["self", "model", "inputs"],
    # Not overridden, but called by our `_compute_loss` with these keyword arguments.
    "_get_per_token_logps_and_entropies": [
        "self",
        "model",
        "input_ids",
        "attention_mask",
        "logits_to_keep",
        "batch_size",
        "compute_entropy",
        "compute_aux_loss",
        "pixel_values",
        "image_grid_thw",
        "num_images",
        "pixel_attention_mask",
        "spatial_shapes",
        "num_tiles",
        "image_sizes",
        "token_type_ids",
        "mm_token_type_ids",
        "image_position_ids",
    ],
}


@pytest.mark.parametrize("method", sorted(OVERRIDDEN))
def test_overridden_trl_signatures_are_pinned(method):
    assert list(inspect.signature(getattr(GRPOTrainer, method)).parameters) == OVERRIDDEN[method]


# trl.DPOTrainer methods CriticalTokenDPOTrainer overrides (or calls), and the collator fields it relies on.
OVERRIDDEN_DPO = {
    "_prepare_dataset": ["self", "dataset", "processing_class", "args", "dataset_name"],
    "_set_signature_columns_if_needed": ["self"],
    "compute_ref_log_probs": ["self", "model", "inputs"],
    "_compute_loss": ["self", "model", "inputs", "return_outputs"],
}


@pytest.mark.parametrize("method", sorted(OVERRIDDEN_DPO))
def test_overridden_trl_dpo_signatures_are_pinned(method):
    from trl import DPOTrainer

    assert list(inspect.signature(getattr(DPOTrainer, method)).parameters) == OVERRIDDEN_DPO[method]


def test_trl_preference_collator_fields_are_pinned():
    import dataclasses

    from trl.trainer.dpo_trainer import DataCollatorForPreference

    fields = [f.name for f in dataclasses.fields(DataCollatorForPreference)]
    assert fields == ["pad_token_id", "max_length", "truncation_mode", "pad_to_multiple_of", "return_tensors"]


@pytest.fixture
def broken_estimators():
    @register_advantage_estimator("test_wrong_shape")
    def wrong_shape(rewards):
        return rewards[:1]

    @register_advantage_estimator("test_float_keep", drops_samples=True)
    def float_keep(rewards):
        return rewards, torch.ones_like(rewards)

    yield
    del _ESTIMATORS._entries["test_wrong_shape"], _ESTIMATORS._entries["test_float_keep"]


def test_malformed_estimator_outputs_are_clear_errors(broken_estimators):
    rewards = torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match=r"test_wrong_shape.*one advantage per sample"):
        get_advantage_estimator("test_wrong_shape")(rewards=rewards)
    with pytest.raises(ValueError, match=r"test_float_keep.*must be a bool tensor"):
        get_advantage_estimator("test_float_keep")(rewards=rewards)

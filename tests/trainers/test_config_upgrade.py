"""Drop-in configs: every trainer of ours takes its TRL parent's config (and None) exactly where TRL does.

A user who changes only the trainer's import keeps their `trl.GRPOConfig` / `trl.DPOConfig` / `trl.SFTConfig`. The
trainer upgrades a copy of it to our config: every attribute kept as it is (including values `to_dict()` would turn
into strings, and the state TRL's `__post_init__` derived), our fields at their defaults, our checks run.
"""

import copy
import inspect
import pickle
from dataclasses import dataclass, field

import pytest
import torch
from transformers import TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SchedulerType
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

from trl_reasoning import (
    CriticalTokenDPOConfig,
    CriticalTokenDPOTrainer,
    OfflineTOPRConfig,
    OfflineTOPRTrainer,
    ReasoningGRPOConfig,
    ReasoningGRPOTrainer,
)
from trl_reasoning.embedded import arithmetic_dataset, build_tiny_model, build_tokenizer
from trl_reasoning.testing import coin_reward
from trl_reasoning.trainers.common import resolve_config


CPU = dict(report_to="none", use_cpu=True, bf16=False)
GRPO = (ReasoningGRPOConfig, "GRPO", GRPOConfig)


@dataclass
class ThirdPartyGRPOConfig(GRPOConfig):
    """A library's own GRPOConfig subclass: a field, a derived value and a property."""

    rollout_budget: int = field(default=3, metadata={"help": "a third party's field"})

    def __post_init__(self):
        super().__post_init__()
        self.derived_budget = self.rollout_budget * 10

    @property
    def doubled_budget(self) -> int:
        return 2 * self.rollout_budget


def test_grpo_config_keeps_every_value_and_derived_state(tmp_path):
    user = GRPOConfig(
        output_dir=str(tmp_path),
        learning_rate=3e-5,
        lr_scheduler_type="cosine",  # becomes SchedulerType.COSINE in __post_init__; to_dict() makes it "cosine"
        eval_strategy="steps",  # becomes IntervalStrategy.STEPS
        eval_steps=7,
        scale_rewards=False,  # TRL's __post_init__ turns False into "none"
        hub_token="secret",  # to_dict() hides it
        num_generations=4,
        loss_type="bnpo",
        **CPU,
    )
    before = dict(vars(user))
    upgraded = resolve_config("model", user, *GRPO)

    assert type(upgraded) is ReasoningGRPOConfig and type(user) is GRPOConfig
    assert vars(user) == before, "the user's config was changed"
    for name, value in before.items():
        assert getattr(upgraded, name) is value, name  # the very objects, not round-tripped copies
    assert upgraded.lr_scheduler_type is SchedulerType.COSINE and upgraded.eval_strategy is IntervalStrategy.STEPS
    assert upgraded.scale_rewards == "none" and upgraded.hub_token == "secret" and upgraded.loss_type == "bnpo"
    # Our fields at our defaults, and the result is the same as building ReasoningGRPOConfig directly.
    assert (upgraded.advantage_estimator, upgraded.policy_loss, upgraded.positive_weight) == ("grpo", "trl", 0.1)
    direct = ReasoningGRPOConfig(
        output_dir=str(tmp_path),
        learning_rate=3e-5,
        lr_scheduler_type="cosine",
        eval_strategy="steps",
        eval_steps=7,
        scale_rewards=False,
        hub_token="secret",
        num_generations=4,
        loss_type="bnpo",
        **CPU,
    )
    assert upgraded.to_dict() == direct.to_dict()


def test_our_config_and_none_are_taken_as_trl_takes_them(tmp_path, bf16_gpu):
    ours = ReasoningGRPOConfig(output_dir=str(tmp_path), advantage_estimator="nsr", **CPU)
    assert resolve_config("model", ours, *GRPO) is ours
    default = resolve_config("org/tiny-model", None, *GRPO)
    assert type(default) is ReasoningGRPOConfig and default.output_dir == "tiny-model-GRPO"
    model = build_tiny_model(build_tokenizer())
    model.config._name_or_path = "org/other"
    assert resolve_config(model, None, *GRPO).output_dir == "other-GRPO"


def test_third_party_subclass_keeps_its_fields_methods_and_pickles(tmp_path):
    user = ThirdPartyGRPOConfig(output_dir=str(tmp_path), rollout_budget=5, **CPU)
    upgraded = resolve_config("model", user, *GRPO)

    assert isinstance(upgraded, ThirdPartyGRPOConfig) and isinstance(upgraded, ReasoningGRPOConfig)
    assert upgraded.rollout_budget == 5 and upgraded.derived_budget == 50 and upgraded.doubled_budget == 10
    assert upgraded.to_dict()["rollout_budget"] == 5 and upgraded.to_dict()["advantage_estimator"] == "grpo"
    # Trainer saves `training_args.bin` with torch.save, and copies configs: both round-trip.
    torch.save(upgraded, tmp_path / "training_args.bin")
    for restored in (
        torch.load(tmp_path / "training_args.bin", weights_only=False),
        pickle.loads(pickle.dumps(upgraded)),
        copy.deepcopy(upgraded),
    ):
        assert type(restored) is type(upgraded)
        assert restored.rollout_budget == 5 and restored.advantage_estimator == "grpo"
    assert type(resolve_config("model", ThirdPartyGRPOConfig(**CPU), *GRPO)) is type(upgraded)  # one class


def test_upgraded_config_runs_our_checks(tmp_path):
    # Our checks still run on an upgraded config: DPO's WPO weighting is incompatible with cDPO's weights.
    with pytest.raises(ValueError, match="use_weighting"):
        resolve_config("m", DPOConfig(output_dir=str(tmp_path), use_weighting=True, **CPU), *DPO)
    with pytest.raises(ValueError, match="packing"):
        resolve_config("m", SFTConfig(output_dir=str(tmp_path), packing=True, **CPU), *SFT)


DPO = (CriticalTokenDPOConfig, "cDPO", DPOConfig)
SFT = (OfflineTOPRConfig, "TOPR", SFTConfig)


def test_dpo_config_is_upgraded(tmp_path):
    user = DPOConfig(output_dir=str(tmp_path), beta=0.3, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5], **CPU)
    upgraded = resolve_config("model", user, *DPO)
    assert type(upgraded) is CriticalTokenDPOConfig
    assert upgraded.beta == 0.3 and upgraded.loss_type == ["sigmoid", "sft"] and upgraded.loss_weights == [1.0, 0.5]
    assert upgraded.rejected_weights_column == CriticalTokenDPOConfig.rejected_weights_column


def test_none_gives_a_default_config_named_after_the_model(bf16_gpu):
    assert resolve_config("org/m", None, *DPO).output_dir == "m-cDPO"
    assert resolve_config("org/m", None, *SFT).output_dir == "m-TOPR"


def test_sft_config_and_training_arguments_are_upgraded(tmp_path):
    user = SFTConfig(output_dir=str(tmp_path), max_length=77, learning_rate=2e-4, **CPU)
    assert user.completion_only_loss is None
    upgraded = resolve_config("model", user, *SFT)
    assert type(upgraded) is OfflineTOPRConfig and upgraded.max_length == 77 and upgraded.learning_rate == 2e-4
    assert upgraded.completion_only_loss is True  # our default, set as OfflineTOPRConfig's __post_init__ sets it
    assert upgraded.reward_column == "reward" and user.completion_only_loss is None
    # trl.SFTTrainer also takes plain TrainingArguments (rebuilt from to_dict()); so do we, there only.
    plain = TrainingArguments(output_dir=str(tmp_path), learning_rate=5e-4, hub_token="secret", **CPU)
    rebuilt = resolve_config("model", plain, *SFT, accept_training_arguments=True)
    assert type(rebuilt) is OfflineTOPRConfig and rebuilt.learning_rate == 5e-4 and rebuilt.hub_token == "secret"


@pytest.mark.parametrize(
    ("trainer_cls", "wrong"),
    [(ReasoningGRPOTrainer, DPOConfig), (CriticalTokenDPOTrainer, GRPOConfig), (OfflineTOPRTrainer, dict)],
)
def test_another_trainers_config_is_refused_by_name(tmp_path, trainer_cls, wrong):
    """(trl.SFTTrainer rebuilds any TrainingArguments from to_dict(), so the offline trainer is shown a dict.)"""
    kwargs = {"reward_funcs": coin_reward} if trainer_cls is ReasoningGRPOTrainer else {}
    args = wrong(output_dir=str(tmp_path), **CPU)
    with pytest.raises(
        TypeError, match=rf"`args` must be a trl\.\w+Config or a trl_reasoning\.\w+, got {wrong.__name__}"
    ):
        trainer_cls(build_tiny_model(build_tokenizer()), args=args, train_dataset=arithmetic_dataset(8), **kwargs)


@pytest.mark.parametrize(
    ("ours", "trl_parent"),
    [(ReasoningGRPOTrainer, GRPOTrainer), (CriticalTokenDPOTrainer, DPOTrainer), (OfflineTOPRTrainer, SFTTrainer)],
)
def test_trainers_take_exactly_their_parents_arguments(ours, trl_parent):
    assert inspect.signature(ours) == inspect.signature(trl_parent)
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such_argument'"):
        ours("model", no_such_argument=1)

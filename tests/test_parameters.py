"""Typed method parameters: one definition gives the config field, the check and the help; errors name the field."""

import dataclasses

import pytest
from trl import GRPOConfig

from trl_reasoning import OfflineTOPRConfig, ReasoningGRPOConfig
from trl_reasoning.losses.drpo import DRPOParams
from trl_reasoning.losses.topr import TOPRParams, TOPRPolicyLossParams
from trl_reasoning.parameters import MethodParams, add_config_fields, at_least, param
from trl_reasoning.token_weighting.entropy import EMPGParams


def config(**kwargs):
    return ReasoningGRPOConfig(output_dir="unused", report_to="none", use_cpu=True, **kwargs)


def test_a_bad_value_names_the_config_field_the_method_and_the_default():
    with pytest.raises(
        ValueError, match=r"^drpo_tau=-1\.0 must be a finite number > 0 \(policy_loss='drpo'; default 10\.0\)"
    ):
        DRPOParams(tau=-1.0)
    with pytest.raises(ValueError, match=r"drpo_kl_estimator='k2' is invalid.*Valid values: \['k1', 'k3'\]"):
        config(drpo_kl_estimator="k2")
    # checked even while the method is not selected, as before
    with pytest.raises(ValueError, match="positive_weight=-0.5 must be a finite number >= 0"):
        config(positive_weight=-0.5)


def test_from_config_reads_the_methods_fields_and_refuses_undeclared_overrides():
    cfg = config(policy_loss="drpo", drpo_tau=5.0, per_device_train_batch_size=8)
    params = cfg.method_params("policy loss")
    assert isinstance(params, DRPOParams) and (params.tau, params.length_lambda) == (5.0, 0.1)
    assert DRPOParams.from_config(cfg, {"kl_estimator": "k3"}).kl_estimator == "k3"
    with pytest.raises(ValueError, match=r"overrides has 'baseline', which policy_loss='drpo' does not take"):
        DRPOParams.from_config(cfg, {"baseline": 0.5}, source="overrides")


def test_parse_applies_to_the_config_field():
    assert config(empg_step_delimiter="\\n\\n").empg_step_delimiter == "\n\n"
    assert EMPGParams(step_delimiter="\\t").step_delimiter == "\t"


def test_offline_and_online_topr_share_one_definition():
    assert issubclass(TOPRPolicyLossParams, TOPRParams)
    grpo, offline = ReasoningGRPOConfig.__dataclass_fields__, OfflineTOPRConfig.__dataclass_fields__
    for name in TOPRParams.config_names():
        assert grpo[name].metadata["help"] == offline[name].metadata["help"], name
        assert grpo[name].default == offline[name].default, name
    with pytest.raises(ValueError, match="set only one of them"):
        OfflineTOPRConfig(
            output_dir="unused", report_to="none", use_cpu=True, topr_baseline=0.2, topr_target_positive_fraction=0.2
        )
    # The online loss adds its own rule: with +/-1 rewards the baseline must stay in (-1, 1) unless tapered by c.
    with pytest.raises(ValueError, match=r"topr_baseline=1.5 is outside \(-1, 1\)"):
        config(topr_baseline=1.5)
    OfflineTOPRConfig(
        output_dir="unused", report_to="none", use_cpu=True, topr_baseline=1.5, topr_taper_by="coefficient"
    )


def test_every_parameter_is_a_flag_with_its_help():
    from trl import TrlParser

    parser = TrlParser((ReasoningGRPOConfig,))
    help_text = parser.format_help()
    for flag in ("--drpo_kl_estimator", "--beta_norm_reward_range", "--rloo_normalize_advantages", "--empg_zeta"):
        assert flag in help_text, flag
    (parsed,) = parser.parse_args_into_dataclasses(
        [
            "--output_dir",
            "x",
            "--use_cpu",
            "true",
            "--report_to",
            "none",
            "--beta_norm_reward_range",
            "-1",
            "1",
            "0",
            "1",
        ]
    )
    assert parsed.beta_norm_reward_range == [-1.0, 1.0, 0.0, 1.0]
    assert parsed.method_params("advantage estimator") is not None  # grpo's (TRL's scale_rewards)


def test_two_different_definitions_of_one_field_are_refused():
    @dataclasses.dataclass(frozen=True)
    class A(MethodParams):
        tau: float = param(1.0, config="shared_tau", check=at_least(0), help="one")

    @dataclasses.dataclass(frozen=True)
    class B(MethodParams):
        tau: float = param(2.0, config="shared_tau", help="another")

    with pytest.raises(TypeError, match="'shared_tau' differently"):
        add_config_fields([A, B])

    @dataclasses.dataclass
    @add_config_fields([A, A])  # the same definition twice (e.g. inherited by two methods) is one field
    class Config(GRPOConfig):
        pass

    assert [f.name for f in dataclasses.fields(Config)].count("shared_tau") == 1

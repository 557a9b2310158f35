"""ReasoningGRPOTrainer with a registered policy loss (TOPR, DRPO) on the tiny model (CPU)."""

import pytest
import torch
from support import make_trainer, parameters

from trl_reasoning import ReasoningGRPOConfig, policy_loss_names, register_policy_loss
from trl_reasoning.losses.base import _POLICY_LOSSES
from trl_reasoning.testing import coin_reward, scripted_rollout


pytestmark = pytest.mark.slow

METRICS = {
    "drpo": ("drpo/weight_entropy", "drpo/length_correct", "drpo/length_incorrect", "drpo/kl"),
    "topr": ("topr/alpha_negative_mean", "topr/frac_truncated", "topr/positive_fraction", "topr/baseline"),
}


def train_logs(trainer):
    trainer.train()
    return [entry for entry in trainer.state.log_history if "loss" in entry]


@pytest.mark.parametrize("loss_name", policy_loss_names())
def test_every_policy_loss_trains_logs_and_names_itself(tmp_path, loss_name):
    trainer = make_trainer(tmp_path, policy_loss=loss_name)
    before = parameters(trainer)
    logs = train_logs(trainer)
    after = parameters(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert len(logs) == 3 and all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logs)
    for metric in METRICS.get(loss_name, ()):
        assert any(metric in entry for entry in logs), metric
    trainer.create_model_card()
    card = (tmp_path / "README.md").read_text()
    assert trainer.policy_loss.display_name in card and trainer.policy_loss.paper["id"] in card
    assert trainer.policy_loss.name in trainer._tag_names


@pytest.fixture
def probe_loss():
    """A whole-group policy loss that records what the trainer passes it."""
    calls = []

    @register_policy_loss("test_probe", needs_whole_groups=True)
    def probe(per_token_logps, mask, correct, scorable, rewards, lengths, group_size, max_length, positive_fraction):
        calls.append({k: v for k, v in locals().items() if k != "per_token_logps"})
        return (per_token_logps * mask).sum() * 0.0

    yield calls
    _POLICY_LOSSES._entries.pop("test_probe")


def test_whole_group_losses_see_whole_groups_and_the_standard_inputs(tmp_path, probe_loss):
    # Group k of each generation batch has completions of length k + 2, so a group split across calls shows up as
    # mixed lengths. gradient_accumulation_steps=2 makes TRL split every generation batch in two.
    lengths = [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4
    trainer = make_trainer(
        tmp_path,
        policy_loss="test_probe",
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        max_steps=2,
        trainer_kwargs={"rollout_func": scripted_rollout(lengths)},
    )
    trainer.train()
    assert len(probe_loss) == 4
    seen = []
    for call in probe_loss:
        grouped = call["lengths"].view(-1, 4)
        assert (grouped == grouped[:, :1]).all(), grouped  # whole groups, contiguous
        seen += grouped[:, 0].tolist()
        assert torch.equal(call["lengths"], call["mask"].sum(dim=1).long())
        assert call["group_size"] == 4 and call["max_length"] == 8
        assert call["correct"].dtype == torch.bool and call["scorable"].all()
        torch.testing.assert_close(call["correct"], call["rewards"] >= 1.0)  # coin_reward is 0/1
    # Each generation batch's four groups are all seen, once each, in some order.
    assert sorted(seen[:4]) == [2, 3, 4, 5] and sorted(seen[4:]) == [2, 3, 4, 5]
    # positive_fraction is the share of correct samples in the whole generation batch, the same in both halves.
    first_two = torch.cat([probe_loss[0]["correct"], probe_loss[1]["correct"]]).float().mean()
    assert probe_loss[0]["positive_fraction"][0].item() == pytest.approx(first_two.item())


def test_drpo_gradient_accumulation_matches_one_big_batch(tmp_path):
    common = dict(
        policy_loss="drpo",
        pad_to_multiple_of=32,  # same padding width in both runs, so the logits match
        trainer_kwargs={"rollout_func": scripted_rollout()},
        optim="sgd",
        lr_scheduler_type="constant",
        learning_rate=0.1,
        model_dtype=torch.float64,  # compare updates, not float32 rounding (small gradients cancel)
    )
    whole = make_trainer(tmp_path / "whole", per_device_train_batch_size=8, **common)
    split = make_trainer(tmp_path / "split", per_device_train_batch_size=4, gradient_accumulation_steps=2, **common)
    whole_logs, split_logs = train_logs(whole), train_logs(split)
    for a, b in zip(whole_logs, split_logs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-9)
    assert any(abs(entry["loss"]) > 1e-3 for entry in whole_logs)
    split_params = parameters(split)
    for name, value in parameters(whole).items():
        torch.testing.assert_close(split_params[name], value, rtol=1e-7, atol=1e-8, msg=name)


def test_topr_tapers_negatives_off_policy_with_several_iterations(tmp_path):
    trainer = make_trainer(tmp_path, policy_loss="topr", num_iterations=2, max_steps=4, learning_rate=0.05)
    logs = train_logs(trainer)
    alphas = [entry["topr/alpha_negative_mean"] for entry in logs if entry.get("topr/alpha_negative_mean") is not None]
    # First pass over a batch: π = μ, α = 1. Second pass: the negatives were pushed down, so π < μ and α < 1.
    assert alphas[0] == pytest.approx(1.0, abs=1e-5)
    assert min(alphas) < 0.999


def test_topr_uses_the_sampling_engines_logprobs_as_the_behaviour_policy(tmp_path):
    # The rollout reports log-prob 0 (probability 1) for every token, so every negative has π(τ)/μ(τ) = π(τ) << 1.
    trainer = make_trainer(
        tmp_path, policy_loss="topr", max_steps=1, trainer_kwargs={"rollout_func": scripted_rollout(logprob=0.0)}
    )
    logs = train_logs(trainer)
    assert logs[0]["topr/alpha_negative_mean"] < 1e-3
    assert logs[0]["topr/frac_truncated"] == 0.0


def test_topr_target_positive_fraction_sets_the_baseline_per_batch(tmp_path):
    trainer = make_trainer(tmp_path, policy_loss="topr", topr_target_positive_fraction=0.2, max_steps=3)
    for entry in train_logs(trainer):
        p, target = entry["advantage/frac_correct"], 0.2
        expected = 0.0 if p in (0.0, 1.0) else (p - target) / (target * (1 - 2 * p) + p)  # topr.md: formula
        assert entry["topr/baseline"] == pytest.approx(expected, abs=1e-5)


def test_topr_total_rewards_solve_the_baseline_from_the_rewards_and_taper_by_coefficient(tmp_path):
    # 0/1 coin rewards, one loss call per generation batch of 8: c = p(1 − p̃)/(p(1 − p̃) + p̃(1 − p)) with p the
    # batch's share of 1s (the ±1 formula would be wrong here), and every 0 (R − c < 0) is tapered.
    trainer = make_trainer(
        tmp_path,
        policy_loss="topr",
        topr_reward_source="reward",
        topr_taper_by="coefficient",
        topr_target_positive_fraction=0.2,
        max_steps=3,
    )
    for entry in train_logs(trainer):
        p, target = entry["advantage/frac_correct"], 0.2
        expected = 0.0 if p in (0.0, 1.0) else p * (1 - target) / (p * (1 - target) + target * (1 - p))
        assert entry["topr/baseline"] == pytest.approx(expected, abs=1e-5)
        assert entry["topr/positive_fraction"] == pytest.approx(p if 0 < p < 1 else 1.0, abs=1e-5)


def test_topr_total_rewards_with_a_baseline_refuse_the_reward_sign_taper(tmp_path):
    args = dict(output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=8)
    for baseline in ({"topr_baseline": 0.5}, {"topr_target_positive_fraction": 0.15}):
        with pytest.raises(ValueError, match="topr_taper_by='coefficient'") as error:
            ReasoningGRPOConfig(policy_loss="topr", topr_reward_source="reward", **baseline, **args)
        assert "topr_reward_source" in str(error.value) and "naive off-policy REINFORCE" in str(error.value)
        ReasoningGRPOConfig(
            policy_loss="topr", topr_reward_source="reward", topr_taper_by="coefficient", **baseline, **args
        )
    # Without a baseline, R < 0 and R − c < 0 are the same samples: the paper's rule is accepted.
    ReasoningGRPOConfig(policy_loss="topr", topr_reward_source="reward", **args)


def test_drpo_evaluates_on_whole_groups(tmp_path):
    trainer = make_trainer(
        tmp_path,
        policy_loss="drpo",
        max_steps=1,
        eval_strategy="steps",
        eval_steps=1,
        per_device_eval_batch_size=8,
        trainer_kwargs={"eval_dataset": trainer_eval_dataset()},
    )
    trainer.train()
    evals = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    assert evals and "eval_drpo/frac_valid_groups" in evals[0]


def trainer_eval_dataset():
    from trl_reasoning.embedded import arithmetic_dataset

    return arithmetic_dataset(8, seed=1)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"policy_loss": "ppo"}, "Valid values"),
        ({"policy_loss": "topr", "beta": 0.04}, "beta"),
        ({"policy_loss": "drpo", "per_device_train_batch_size": 6, "num_generations": 3}, None),
        (
            {
                "policy_loss": "drpo",
                "per_device_train_batch_size": 2,
                "gradient_accumulation_steps": 2,
                "num_generations": 4,
            },
            "per_device_train_batch_size",
        ),
        ({"policy_loss": "drpo", "advantage_estimator": "w_reinforce"}, "advantage_estimator"),
        ({"policy_loss": "topr", "topr_baseline": 1.5}, "topr_baseline"),
        ({"policy_loss": "topr", "topr_target_positive_fraction": 1.0}, "topr_target_positive_fraction"),
        ({"policy_loss": "topr", "topr_ratio_level": "tokens"}, "topr_ratio_level"),
        ({"policy_loss": "topr", "topr_target_positive_fraction": 0.2, "topr_baseline": 0.1}, "only one"),
        ({"policy_loss": "drpo", "length_lambda": 0.0}, "length_lambda"),
        ({"policy_loss": "drpo", "drpo_kl_beta": -1.0}, "drpo_kl_beta"),
        ({"policy_loss": "drpo", "entropy_coef": 0.01}, "entropy_coef"),
    ],
)
def test_config_validation_names_the_field(tmp_path, settings, message):
    args = dict(output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=8)
    args.update(settings)
    if message is None:
        ReasoningGRPOConfig(**args)
        return
    with pytest.raises(ValueError, match=message):
        ReasoningGRPOConfig(**args)


def test_policy_loss_kwargs_accept_json_and_reach_the_loss(tmp_path):
    config = ReasoningGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        policy_loss="drpo",
        per_device_train_batch_size=8,
        policy_loss_kwargs='{"negative_pooling": "sum", "tau": 5.0}',
    )
    kwargs = config.policy_loss_kwargs_from_config()
    assert kwargs["negative_pooling"] == "sum" and kwargs["tau"] == 5.0 and kwargs["length_lambda"] == 0.1


def test_policy_loss_trainer_accepts_coin_reward_only_as_correctness(tmp_path):
    # TOPR's signed correctness comes from the selected correctness reward, here the second function.
    def always_one(completions, **kwargs):
        return [1.0] * len(completions)

    trainer = make_trainer(
        tmp_path, policy_loss="topr", reward_funcs=(always_one, coin_reward), correctness_reward="coin_reward"
    )
    logs = train_logs(trainer)
    assert any(entry["topr/positive_fraction"] < 1.0 for entry in logs)


def half_reward(completions, **kwargs):
    """A second 0/1 reward (even-length completions), for BNPO's decomposition."""
    return [float(len(str(c)) % 2 == 0) for c in completions]


@pytest.mark.parametrize(
    "settings, metrics",
    [
        ({"advantage_estimator": "beta_norm"}, ("beta_norm/alpha", "beta_norm/beta")),
        (
            {
                "advantage_estimator": "beta_norm",
                "beta_norm_decompose": True,
                "reward_funcs": (coin_reward, half_reward),
            },
            ("beta_norm/coin_reward/alpha", "beta_norm/half_reward/beta"),
        ),
        ({"advantage_estimator": "drpo_length"}, ("drpo/length_correct", "drpo/length_incorrect")),
    ],
    ids=["beta_norm", "beta_norm_decompose", "drpo_length"],
)
def test_estimator_metrics_are_logged_every_step(tmp_path, settings, metrics):
    logs = train_logs(make_trainer(tmp_path, **settings))
    for metric in metrics:
        values = [entry.get(metric) for entry in logs]
        assert all(value is not None for value in values), (metric, values)
    if "beta_norm/alpha" in metrics:
        assert all(entry["beta_norm/alpha"] >= 1.0 and entry["beta_norm/beta"] >= 1.0 for entry in logs)

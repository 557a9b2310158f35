"""ReasoningGRPOTrainer end to end on the tiny model (CPU)."""

import pytest
import torch
from support import make_trainer, parameters
from trl import GRPOConfig

from trl_reasoning import ReasoningGRPOConfig, advantage_estimator_names
from trl_reasoning.embedded import completion_text
from trl_reasoning.testing import coin_reward, length_reward, scripted_rollout


pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"scale_rewards": "batch"},
        {"scale_rewards": "none", "loss_type": "grpo"},
        {"multi_objective_aggregation": "normalize_then_sum", "reward_weights": [1.0, 0.5]},
    ],
    ids=["default", "scale_batch", "scale_none_grpo_loss", "normalize_then_sum"],
)
@pytest.mark.parametrize("config", ["ours", "trl"], ids=["ReasoningGRPOConfig", "trl.GRPOConfig"])
def test_grpo_estimator_trains_bit_for_bit_like_trl(tmp_path, settings, config):
    rewards = (coin_reward, length_reward)
    stock = make_trainer(tmp_path / "stock", reasoning=False, reward_funcs=rewards, **settings)
    stock.train()
    if config == "trl":  # a user who changed only the trainer's import keeps their trl.GRPOConfig
        ours = make_trainer(tmp_path / "ours", config_cls=GRPOConfig, reward_funcs=rewards, **settings)
        assert type(ours.args) is ReasoningGRPOConfig and ours.args.advantage_estimator == "grpo"
    else:
        ours = make_trainer(tmp_path / "ours", advantage_estimator="grpo", reward_funcs=rewards, **settings)
    ours.train()
    stock_params, our_params = parameters(stock), parameters(ours)
    initial = parameters(make_trainer(tmp_path / "init", reward_funcs=rewards))
    assert any(not torch.equal(initial[k], our_params[k]) for k in our_params), "training did not move the model"
    for name in stock_params:
        assert torch.equal(stock_params[name], our_params[name]), name
    assert list(stock._logs["advantages"]) == list(ours._logs["advantages"])


@pytest.mark.parametrize("estimator", advantage_estimator_names())
def test_every_estimator_trains_logs_and_names_itself(tmp_path, estimator):
    trainer = make_trainer(tmp_path, advantage_estimator=estimator)
    before = parameters(trainer)
    trainer.train()
    after = parameters(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3 and all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logs)
    for metric in ("advantage/frac_correct", "advantage/frac_dropped", "advantage/mean_abs"):
        assert metric in logs[0], metric
    trainer.create_model_card()
    card = (tmp_path / "README.md").read_text()
    display = trainer.advantage_estimator.display_name
    assert display in card and trainer.advantage_estimator.paper["id"] in card
    assert "trl-reasoning" in card


def score_by_length(completions, **kwargs):
    # Completions are (L - 1) digits + EOS: correct iff the completion is 10 or 40 tokens long.
    return [1.0 if len(completion_text(c)) + 1 in (10, 40) else 0.0 for c in completions]


@pytest.mark.parametrize(
    ("estimator", "expected_advantages", "expected_tokens", "expected_loss", "expected_grad"),
    [
        ("psr", [1.0, 0.0, 0.0, 1.0], 50, -1.0, [-0.02, 0.0, 0.0, -0.02]),
        ("nsr", [0.0, -1.0, -1.0, 0.0], 50, 1.0, [0.0, 0.02, 0.02, 0.0]),
        ("w_reinforce", [0.1, -1.0, -1.0, 0.1], 100, 0.45, [-0.001, 0.01, 0.01, -0.001]),
    ],
)
@pytest.mark.parametrize("loss_type", ["dapo", "bnpo"])
def test_worked_example_through_the_trainer(
    tmp_path, estimator, expected_advantages, expected_tokens, expected_loss, expected_grad, loss_type
):
    """docs/methods/negative-reinforcement.md's Worked example through TRL's own loss: rewards [1,0,0,1], lengths [10,20,30,40], on-policy."""
    lengths = [10, 20, 30, 40]
    trainer = make_trainer(
        tmp_path,
        advantage_estimator=estimator,
        loss_type=loss_type,
        per_device_train_batch_size=4,
        max_completion_length=64,
        reward_funcs=(score_by_length,),
        trainer_kwargs={"rollout_func": scripted_rollout(lengths)},
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train() in a real run
    batch = [trainer.train_dataset[0]] * 4
    inputs = trainer._generate_and_score_completions(batch)
    torch.testing.assert_close(inputs["advantages"], torch.tensor(expected_advantages))
    kept_tokens = inputs["completion_mask"].sum(dim=1).tolist()
    assert kept_tokens == [n * (a != 0) for n, a in zip(lengths, expected_advantages, strict=True)]  # dropped: 0
    assert int(inputs["num_items_in_batch"]) == expected_tokens

    # Replace the model's log-probs by a leaf tensor to read d(loss)/d(log pi) per token.
    width = inputs["completion_ids"].size(1)
    logps = torch.zeros(4, width, requires_grad=True)
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros(4, width), None)
    loss = trainer._compute_loss(trainer.model, inputs)
    assert loss.item() == pytest.approx(expected_loss, abs=1e-6)
    (grad,) = torch.autograd.grad(loss, logps)
    for row, (length, g) in enumerate(zip(lengths, expected_grad, strict=True)):
        torch.testing.assert_close(grad[row, :length], torch.full((length,), g), rtol=0, atol=1e-7)
        assert (grad[row, length:] == 0).all()


def test_correctness_reward_that_names_nothing_fails_at_construction(tmp_path):
    with pytest.raises(ValueError, match=r"correctness_reward='accuracy' names no reward function.*\['coin_reward'\]"):
        make_trainer(tmp_path, correctness_reward="accuracy")
    with pytest.raises(ValueError, match=r"correctness_reward=3 names no reward function"):
        make_trainer(tmp_path, correctness_reward=3)


def always_correct(completions, **kwargs):
    return [1.0] * len(completions)


@pytest.mark.parametrize("selector", ["always_correct", 1])
def test_correctness_comes_from_the_selected_reward(tmp_path, selector):
    trainer = make_trainer(
        tmp_path, advantage_estimator="nsr", reward_funcs=(coin_reward, always_correct), correctness_reward=selector
    )
    trainer.model.train()
    inputs = trainer._generate_and_score_completions([trainer.train_dataset[i] for i in (0, 0, 0, 0, 1, 1, 1, 1)])
    # NSR with every sample correct: nothing is trained on.
    assert (inputs["advantages"] == 0).all() and inputs["completion_mask"].sum() == 0
    assert trainer._metrics["train"]["advantage/frac_dropped"][-1] == 1.0


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    settings = dict(advantage_estimator="w_reinforce", max_steps=4, save_strategy="steps", save_steps=2)
    full = make_trainer(tmp_path / "full", **settings)
    full.train()
    # A differently initialised model: only a real restore of weights, optimizer and RNG can end equal.
    resumed = make_trainer(tmp_path / "resumed", model_seed=1, **settings)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    full_params, resumed_params = parameters(full), parameters(resumed)
    for name in full_params:
        assert torch.equal(full_params[name], resumed_params[name]), name


def test_peft_lora_trains_only_the_adapter(tmp_path):
    from peft import LoraConfig

    trainer = make_trainer(
        tmp_path,
        advantage_estimator="w_reinforce",
        max_steps=2,
        trainer_kwargs={"peft_config": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])},
    )
    before = parameters(trainer)
    trainer.train()
    after = parameters(trainer)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all("lora_" in name for name in changed)


def test_evaluation_uses_the_estimator_and_logs_eval_metrics(tmp_path):
    from trl_reasoning.embedded import arithmetic_dataset

    trainer = make_trainer(
        tmp_path,
        advantage_estimator="nsr",
        num_generations_eval=2,
        per_device_eval_batch_size=4,
        trainer_kwargs={"eval_dataset": arithmetic_dataset(4, seed=9)},
    )
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_advantage/frac_correct"] <= 1.0
    assert metrics["eval_advantage/frac_dropped"] == pytest.approx(metrics["eval_advantage/frac_correct"])

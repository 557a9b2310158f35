"""OfflineTOPRTrainer on the tiny model (CPU): dataset handling, behaviour log-probs, loss, baseline, accumulation.

Expected numbers come from direct computations in this file (the model's logits, log_softmax, gather, sum over the
completion tokens; the TOPR formula written out), not from the trainer's own code paths.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from trl_reasoning import OfflineTOPRConfig, OfflineTOPRTrainer
from trl_reasoning.embedded import arithmetic_problems, build_tiny_model, build_tokenizer


BASE_ARGS = dict(
    use_cpu=True,
    bf16=False,
    report_to="none",
    save_strategy="no",
    disable_tqdm=True,
    logging_steps=1,
    max_length=32,
    seed=0,
    per_device_train_batch_size=8,
    max_steps=1,
    lr_scheduler_type="constant",
)


def offline_rows(n_prompts, *, seed=0, conversational=False, wrong_offset=7):
    """Two rows per arithmetic prompt: the correct answer (reward +1) and a wrong one (reward -1)."""
    rows = []
    for problem in arithmetic_problems(n_prompts, seed=seed):
        for answer, reward in ((problem["answer"], 1.0), (str(int(problem["answer"]) + wrong_offset), -1.0)):
            prompt, completion = f"{problem['question']}=", answer
            if conversational:
                prompt = [{"role": "user", "content": prompt}]
                completion = [{"role": "assistant", "content": completion}]
            rows.append({"prompt": prompt, "completion": completion, "reward": reward})
    return rows


def make_trainer(tmp_path, rows, model=None, tokenizer=None, **args):
    tokenizer = tokenizer or build_tokenizer()
    config = OfflineTOPRConfig(output_dir=str(tmp_path), **{**BASE_ARGS, **args})
    dataset = rows if isinstance(rows, Dataset) else Dataset.from_list(rows)
    return OfflineTOPRTrainer(
        model=model if model is not None else build_tiny_model(tokenizer),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )


def token_ids(tokenizer, prompt, completion):
    """Prompt and completion token ids as SFT builds them (plain text: EOS appended; chat: template)."""
    if isinstance(prompt, list):
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
        full_ids = tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)
        prompt_ids, full_ids = prompt_ids["input_ids"], full_ids["input_ids"]
        assert full_ids[: len(prompt_ids)] == prompt_ids
        return prompt_ids, full_ids[len(prompt_ids) :]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    return prompt_ids, completion_ids


@torch.no_grad()
def direct_logps(model, tokenizer, prompt, completion):
    """Per-token log-probs of the completion under ``model``: one unpadded forward, log_softmax, gather."""
    prompt_ids, completion_ids = token_ids(tokenizer, prompt, completion)
    ids = torch.tensor([prompt_ids + completion_ids])
    was_training = model.training
    model.eval()
    logits = model(input_ids=ids).logits[0].double()
    model.train(was_training)
    positions = torch.arange(len(prompt_ids) - 1, ids.size(1) - 1)
    return logits.log_softmax(-1)[positions, ids[0, len(prompt_ids) :]]


def parameters(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def train_logs(trainer):
    return [entry for entry in trainer.state.log_history if "loss" in entry]


# ----------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"packing": True}, "packing"),
        ({"padding_free": True}, "padding_free"),
        ({"completion_only_loss": False}, "completion_only_loss"),
        ({"topr_ratio_level": "tokens"}, "topr_ratio_level"),
        ({"topr_taper_by": "sign"}, "topr_taper_by"),
        ({"topr_target_positive_fraction": 1.5}, "topr_target_positive_fraction"),
        ({"topr_target_positive_fraction": 0.0}, "topr_target_positive_fraction"),
        ({"topr_target_positive_fraction": 0.2, "topr_baseline": 0.3}, "topr_target_positive_fraction"),
        ({"topr_baseline": float("nan")}, "topr_baseline"),
        ({"reward_column": ""}, "reward_column"),
        ({"reward_column": "score", "behavior_logps_column": "score"}, "different"),
        ({"dataset_kwargs": {"skip_prepare_dataset": True}}, "skip_prepare_dataset"),
    ],
)
def test_config_rejects_invalid_settings(tmp_path, settings, match):
    with pytest.raises(ValueError, match=match):
        OfflineTOPRConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, **settings)


def test_config_defaults_and_help():
    config = OfflineTOPRConfig(output_dir="unused", use_cpu=True, bf16=False)
    assert config.completion_only_loss is True
    assert config.learning_rate == 1e-6
    assert (config.topr_ratio_level, config.topr_taper_by, config.topr_baseline) == ("sequence", "reward", 0.0)
    fields = OfflineTOPRConfig.__dataclass_fields__
    for name, valid in (("topr_ratio_level", "'token'"), ("topr_taper_by", "'coefficient'")):
        assert valid in fields[name].metadata["help"]
    for name in ("reward_column", "behavior_logps_column", "topr_baseline", "topr_target_positive_fraction"):
        assert fields[name].metadata["help"]


def test_missing_reward_column_names_it(tmp_path):
    rows = [{k: v for k, v in row.items() if k != "reward"} | {"score": row["reward"]} for row in offline_rows(2)]
    with pytest.raises(ValueError, match="'reward'"):
        make_trainer(tmp_path, rows)
    trainer = make_trainer(tmp_path, rows, reward_column="score")
    assert trainer.train_dataset["score"] == [1.0, -1.0, 1.0, -1.0]


# ----------------------------------------------------------------------------------------------- behaviour log-probs


@pytest.mark.parametrize("conversational", [False, True], ids=["text", "conversational"])
def test_behavior_logps_computed_with_the_initial_model(tmp_path, conversational):
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=1)
    rows = offline_rows(4, conversational=conversational)
    trainer = make_trainer(tmp_path, rows, model, tokenizer)
    dataset = trainer.train_dataset
    assert len(dataset) == 8 and dataset["prompt"] == [row["prompt"] for row in rows]  # same order
    for row in (0, 5):
        expected = direct_logps(model, tokenizer, rows[row]["prompt"], rows[row]["completion"])
        computed = torch.tensor(dataset[row]["behavior_logps"], dtype=torch.float64)
        assert computed.shape == expected.shape
        torch.testing.assert_close(computed, expected, rtol=0, atol=2e-5)
        torch.testing.assert_close(computed.sum(), expected.sum(), rtol=0, atol=1e-4)
    assert trainer.model.training  # put back in training mode after the no-grad pass
    trainer.train()
    assert math.isfinite(train_logs(trainer)[0]["loss"])


def test_first_step_loss_and_eval_loss_match_hand_computation(tmp_path):
    """μ = initial model, so α = 1 at the first step: loss = mean over valid rows of −(R − c)·Σ logπ."""
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=2)
    rows = offline_rows(4)
    rows[3]["reward"] = None  # unscorable: left out of the loss and of its denominator
    c = 0.25
    sums = [direct_logps(model, tokenizer, r["prompt"], r["completion"]).sum().item() for r in rows]
    valid = [(r["reward"], s) for r, s in zip(rows, sums, strict=True) if r["reward"] is not None]
    expected = sum(-(reward - c) * s for reward, s in valid) / len(valid)

    config = OfflineTOPRConfig(output_dir=str(tmp_path), topr_baseline=c, per_device_eval_batch_size=16, **BASE_ARGS)
    dataset = Dataset.from_list(rows)
    trainer = OfflineTOPRTrainer(
        model, config, train_dataset=dataset, eval_dataset=dataset, processing_class=tokenizer
    )
    assert trainer.evaluate()["eval_loss"] == pytest.approx(expected, rel=1e-5)
    trainer.train()
    log = train_logs(trainer)[0]
    assert log["loss"] == pytest.approx(expected, rel=1e-5)
    assert log["topr/alpha_negative_mean"] == pytest.approx(1.0, abs=1e-5)
    assert log["topr/baseline"] == pytest.approx(c)
    assert log["topr/positive_fraction"] == pytest.approx(4 / 7)


def test_behavior_that_favours_negatives_tapers_them(tmp_path):
    """Per-sequence μ log-probs: negatives get Σ logπ₀ + 2 (α = e⁻²) or Σ logπ₀ − 1 (ratio e > 1, cut to α = 1)."""
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=3)
    rows = offline_rows(4)  # rewards alternate +1, -1
    totals = [direct_logps(model, tokenizer, r["prompt"], r["completion"]).sum().item() for r in rows]
    alphas = [1.0, math.exp(-2.0), 1.0, 1.0, 1.0, math.exp(-2.0), 1.0, 1.0]
    shifts = [-5.0, 2.0, -5.0, -1.0, -5.0, 2.0, -5.0, -1.0]  # positives are never tapered, whatever μ says
    for row, total, shift in zip(rows, totals, shifts, strict=True):
        row["behavior_logps"] = total + shift
    expected_loss = sum(
        -alpha * row["reward"] * total for row, total, alpha in zip(rows, totals, alphas, strict=True)
    ) / len(rows)

    trainer = make_trainer(tmp_path, rows, model, tokenizer)
    assert isinstance(trainer.train_dataset[0]["behavior_logps"], float)
    trainer.train()
    log = train_logs(trainer)[0]
    assert log["topr/alpha_negative_mean"] == pytest.approx((math.exp(-2.0) + 1.0) / 2, rel=1e-4)
    assert log["topr/alpha_negative_mean"] < 1
    assert log["topr/frac_truncated"] == pytest.approx(0.5)
    assert log["loss"] == pytest.approx(expected_loss, rel=1e-4)


def test_token_ratio_level_uses_per_token_behavior(tmp_path):
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=4)
    rows = offline_rows(2)
    for row in rows:
        per_token = direct_logps(model, tokenizer, row["prompt"], row["completion"])
        row["behavior_logps"] = (per_token + (0.5 if row["reward"] < 0 else 0.0)).tolist()
    trainer = make_trainer(tmp_path, rows, model, tokenizer, topr_ratio_level="token")
    trainer.train()
    # Every token of a negative is tapered by its own ratio exp(−0.5).
    assert train_logs(trainer)[0]["topr/alpha_negative_mean"] == pytest.approx(math.exp(-0.5), rel=1e-4)

    for row in rows:
        row["behavior_logps"] = sum(row["behavior_logps"])
    with pytest.raises(ValueError, match="per-token behaviour log-probs"):
        make_trainer(tmp_path, rows, topr_ratio_level="token")


def test_behavior_column_validation_and_truncation(tmp_path):
    tokenizer = build_tokenizer()
    rows = offline_rows(2)
    for row in rows:
        row["behavior_logps"] = [-1.0] * 2  # the completions have 3 or more tokens with the EOS
    with pytest.raises(ValueError, match=r"Row 0: `behavior_logps` has 2 per-token values, but the completion has"):
        make_trainer(tmp_path, rows, tokenizer=tokenizer)

    # max_length cuts the completion: per-token values are cut with their tokens, a per-sequence value cannot be.
    for row in rows:
        prompt_ids, completion_ids = token_ids(tokenizer, row["prompt"], row["completion"])
        row["behavior_logps"] = [-float(i + 1) for i in range(len(completion_ids))]
        row["cut"] = len(prompt_ids) + 2  # keep 2 completion tokens
    max_length = rows[0]["cut"]
    trainer = make_trainer(tmp_path, rows[:1], tokenizer=tokenizer, max_length=max_length)
    assert trainer.train_dataset[0]["behavior_logps"] == [-1.0, -2.0]
    assert len(trainer.train_dataset[0]["input_ids"]) == max_length
    for row in rows:
        row["behavior_logps"] = -3.0
    with pytest.raises(ValueError, match="truncates the completion"):
        make_trainer(tmp_path, rows[:1], tokenizer=tokenizer, max_length=max_length)


def test_peft_behavior_is_the_initial_adapter(tmp_path):
    peft = pytest.importorskip("peft")
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=6)
    rows = offline_rows(2)
    expected = [direct_logps(model, tokenizer, r["prompt"], r["completion"]) for r in rows]  # LoRA starts at B = 0
    config = OfflineTOPRConfig(output_dir=str(tmp_path), **{**BASE_ARGS, "max_steps": 2, "learning_rate": 1e-2})
    trainer = OfflineTOPRTrainer(
        model,
        config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]),
    )
    for computed, direct in zip(trainer.train_dataset["behavior_logps"], expected, strict=True):
        torch.testing.assert_close(torch.tensor(computed, dtype=torch.float64), direct, rtol=0, atol=2e-5)
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in frozen.items())
    assert any(not torch.equal(after[n], p) for n, p in trainable.items())


# ----------------------------------------------------------------------------------------------- baseline


def test_target_positive_fraction_sets_the_baseline(tmp_path):
    rows = offline_rows(4)
    for row, reward in zip(rows, [1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0], strict=True):
        row["reward"] = reward  # 2 positives out of 8: p = 0.25
    # c = (p − p̃) / (p̃(1 − 2p) + p) = (0.25 − 0.5) / (0.5·0.5 + 0.25) = −0.5; check: p(1−c)/(1+(1−2p)c) = 0.375/0.75
    trainer = make_trainer(tmp_path, rows, topr_target_positive_fraction=0.5)
    assert trainer.positive_fraction == pytest.approx(0.25)
    assert trainer.topr_baseline == pytest.approx(-0.5)
    trainer.train()
    assert train_logs(trainer)[0]["topr/baseline"] == pytest.approx(-0.5)


def test_zero_one_rewards_solve_the_baseline_from_the_rewards_and_taper_the_wrong_answers(tmp_path):
    """0/1 rewards, p = 0.5, p̃ = 0.15: c = p(1 − p̃)/(p(1 − p̃) + p̃(1 − p)) = 0.425/0.5 = 0.85 (the ±1 formula would
    give 0.7, and the effective share 0.3). μ = initial model, so α = 1 at the first step and the loss is the mean of
    −(R − c)·Σ logπ: the correct answers weigh 0.15, the wrong ones −0.85."""
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=2)
    rows = offline_rows(4)
    for row in rows:
        row["reward"] = max(row["reward"], 0.0)  # +1 / −1 → 1 / 0
    sums = [direct_logps(model, tokenizer, r["prompt"], r["completion"]).sum().item() for r in rows]
    expected = sum(-(row["reward"] - 0.85) * total for row, total in zip(rows, sums, strict=True)) / len(rows)

    trainer = make_trainer(
        tmp_path, rows, model, tokenizer, topr_target_positive_fraction=0.15, topr_taper_by="coefficient"
    )
    assert trainer.topr_baseline == pytest.approx(0.85)
    trainer.train()
    log = train_logs(trainer)[0]
    assert log["topr/baseline"] == pytest.approx(0.85)
    assert log["loss"] == pytest.approx(expected, rel=1e-5)
    assert log["topr/positive_fraction"] == pytest.approx(0.5)  # the wrong answers are the tapered ones
    assert log["topr/alpha_negative_mean"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("rewards", "settings"),
    [
        ([1.0, 0.0], {"topr_target_positive_fraction": 0.15}),  # c = 0.85: the 0s would be pushed down untapered
        ([1.0, 0.0], {"topr_baseline": 0.5}),
        ([1.0, -1.0], {"topr_baseline": 1.5}),  # ±1, c outside (−1, 1): the +1s get R − c = −0.5
    ],
)
def test_reward_sign_taper_is_refused_when_a_reward_in_0_c_would_go_untapered(tmp_path, rewards, settings):
    rows = offline_rows(2)
    for row, reward in zip(rows, rewards * 2, strict=True):
        row["reward"] = reward
    with pytest.raises(ValueError, match="topr_taper_by='coefficient'") as error:
        make_trainer(tmp_path, rows, **settings)
    assert "naive off-policy REINFORCE" in str(error.value) and "[0, c)" in str(error.value)
    make_trainer(tmp_path, rows, topr_taper_by="coefficient", **settings)  # the fix the message names


# ----------------------------------------------------------------------------------------------- training


def test_training_moves_correct_up_and_wrong_down(tmp_path):
    """32 rows (16 prompts × a correct and a wrong answer), 24 steps at a high learning rate (checked on 4 seeds)."""
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=0)
    rows = offline_rows(16)
    before_params = parameters(model)
    before = torch.tensor([direct_logps(model, tokenizer, r["prompt"], r["completion"]).sum() for r in rows])
    trainer = make_trainer(tmp_path, rows, model, tokenizer, max_steps=24, learning_rate=1e-2)
    trainer.train()
    after = torch.tensor([direct_logps(model, tokenizer, r["prompt"], r["completion"]).sum() for r in rows])
    after_params = parameters(trainer.model)
    assert any(not torch.equal(before_params[k], after_params[k]) for k in before_params)

    logs = train_logs(trainer)
    assert len(logs) == 24 and all(math.isfinite(entry["loss"]) for entry in logs)
    for metric in ("topr/alpha_negative_mean", "topr/frac_truncated", "topr/positive_fraction", "topr/baseline"):
        assert all(metric in entry for entry in logs), metric
    assert min(entry["topr/alpha_negative_mean"] for entry in logs) < 1  # some negatives got tapered
    correct = torch.tensor([r["reward"] > 0 for r in rows])
    delta = after - before
    assert delta[correct].mean() > 2.0  # correct answers more likely
    assert delta[~correct].mean() < 0.0  # wrong answers less likely
    gap_before = (before[correct] - before[~correct]).mean()
    gap_after = (after[correct] - after[~correct]).mean()
    assert gap_after > gap_before + 5.0

    trainer.create_model_card()
    card = (tmp_path / "README.md").read_text()
    assert "TOPR" in card and "2503.14286" in card and "trl-reasoning" in card and "topr" in card


def test_gradient_accumulation_matches_a_full_batch(tmp_path):
    tokenizer = build_tokenizer()
    rows = offline_rows(4)
    results = []
    for batch_size, accumulation in ((4, 1), (2, 2)):
        model = build_tiny_model(tokenizer, seed=5).to(torch.float64)
        trainer = make_trainer(
            tmp_path / f"{batch_size}x{accumulation}",
            rows,
            model,
            tokenizer,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            optim="sgd",  # an SGD step is proportional to the gradient, so a mis-scaled loss would show
            learning_rate=0.1,
        )
        initial = parameters(trainer.model)
        trainer.train()
        results.append((initial, parameters(trainer.model), train_logs(trainer)[0]["loss"]))
    (initial, full, full_loss), (_, accumulated, accumulated_loss) = results
    assert any(not torch.equal(initial[k], full[k]) for k in full)
    for name in full:
        # float64 model, but TRL's fused LM head accumulates log-probs in float32: ~1e-9 differences remain.
        torch.testing.assert_close(accumulated[name], full[name], rtol=1e-6, atol=1e-8, msg=name)
    assert accumulated_loss == pytest.approx(full_loss, rel=1e-7)


# ----------------------------------------------------------------------------------------------- two processes


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_match_one(tmp_path):
    script = Path(__file__).parents[1] / "distributed" / "topr_offline_equivalence.py"
    results = {}
    for nproc in (1, 2):
        out = tmp_path / f"topr-{nproc}.pt"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone"]
        result = subprocess.run(
            [*cmd, str(script), str(out)],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        results[nproc] = torch.load(out)
    single, double = results[1], results[2]
    assert (single["world_size"], double["world_size"]) == (1, 2)
    assert len(single["behavior_logps"]) == 16
    for a, b in zip(single["behavior_logps"], double["behavior_logps"], strict=True):
        torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=0, atol=1e-5)  # float32 fused LM head
    torch.testing.assert_close(torch.tensor(double["losses"]), torch.tensor(single["losses"]), rtol=1e-6, atol=0)
    for name, value in single["params"].items():
        torch.testing.assert_close(double["params"][name], value, rtol=1e-6, atol=1e-8, msg=name)

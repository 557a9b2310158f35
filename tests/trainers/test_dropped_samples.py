"""`dropped_samples`: PSR/NSR's dropped samples masked (every optimizer step taken) or removed (the official code).

The model here ignores its input: every embedding is all ones, attention and MLP outputs are zero (o_proj and
down_proj zeroed) and the final norm of a ones vector is ones, so every position's logits are ``z_v = Σ_j W_vj``
for the untied LM head ``W`` (the only trainable tensor, zero at the start). With SGD at learning rate ``η`` a token
gradient ``∂loss/∂z`` moves every entry of row ``v`` by ``-η ∂loss/∂z_v``, so ``z_v`` moves by ``-η H ∂loss/∂z_v``
(``H`` the hidden size). That makes the updates computable by hand, step by step, below.

The scripted batch: 4 prompts × 4 completions = 16, one process, ``per_device_train_batch_size=2``,
``gradient_accumulation_steps=2``, ``steps_per_generation=8``: 4 optimizer steps of M = 4 completions per
generation. Correct completions are the token "1" + EOS (2 loss tokens), incorrect ones "22" + EOS (3 tokens).
NSR with 4 incorrect (kept share 1/4): "remove" takes ceil(4/4) = 1 optimizer step, "mask" takes 4.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
from trl_reasoning.embedded import arithmetic_dataset, build_tokenizer, completion_text
from trl_reasoning.trainers.dropped_samples import real_optimizer_steps


HIDDEN = 8
CORRECT, INCORRECT = "1", "22"


def input_blind_model(tokenizer):
    """A Qwen2 causal LM whose logits at every position are the row sums of its (zero) LM head."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        rms_norm_eps=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config).to(torch.float64)
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name == "lm_head.weight")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def rollout_with(incorrect_rows):
    """Row ``j`` of the global generation batch answers "22" (wrong) if ``j`` is in ``incorrect_rows``, else "1"."""

    def rollout(prompts, trainer):
        tokenizer = trainer.processing_class
        start = trainer.accelerator.process_index * len(prompts)
        prompt_ids = [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
        completion_ids = []
        for i in range(len(prompts)):
            text = INCORRECT if start + i in incorrect_rows else CORRECT
            completion_ids.append(tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    return rollout


def starts_with_one(completions, **kwargs):
    return [1.0 if completion_text(c).startswith(CORRECT) else 0.0 for c in completions]


class StepCounter:
    """Counts the steps the torch optimizer really takes."""

    def __init__(self, optimizer):
        self.steps = 0
        optimizer.register_step_post_hook(lambda *args: setattr(self, "steps", self.steps + 1))


def make(tmp_path, dropped_samples, incorrect_rows, optimizer="sgd", lr=1e-3, estimator="nsr", world_size=1, **args):
    tokenizer = build_tokenizer()
    model = input_blind_model(tokenizer)
    params = [model.lm_head.weight]
    torch_optimizer = torch.optim.SGD(params, lr=lr) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr)
    settings = dict(
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        steps_per_generation=8,
        num_generations=4,
        max_completion_length=4,
        max_steps=4,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        bf16=False,  # float64 model: compare updates, not bf16 rounding
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
    )
    settings.update(args)
    config = ReasoningGRPOConfig(
        output_dir=str(tmp_path), advantage_estimator=estimator, dropped_samples=dropped_samples, **settings
    )
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=starts_with_one,
        args=config,
        train_dataset=arithmetic_dataset(16, conversational=False),
        processing_class=tokenizer,
        rollout_func=rollout_with(set(incorrect_rows)),
        optimizers=(torch_optimizer, None),
    )
    return trainer, StepCounter(torch_optimizer), tokenizer


def logits_of(trainer):
    """``z_v = Σ_j W_vj``: the logits of every position."""
    return trainer.model.lm_head.weight.detach().sum(dim=1)


def nsr_sgd_steps(vocab, token_ids, samples_per_step, denominator, lr, clip=0.2):
    """Hand-computed NSR under SGD on the input-blind model, from zero logits.

    Each optimizer step ``k`` holds ``samples_per_step[k]`` copies of the wrong completion ``token_ids`` (A = −1).
    TRL's token loss is ``−A·max(ρ, clip(ρ))`` per token with ``ρ = π(y)/π_old(y)`` (π_old: uniform, the policy
    that sampled), summed and divided by ``denominator``; its gradient in the logits of a token is
    ``ρ (e_y − π)`` (zero where ``ρ < 1 − ε`` clips it). The logits then move by ``−η H ∂loss/∂z``.
    """
    z = torch.zeros(vocab, dtype=torch.float64)
    old = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
    for count in samples_per_step:
        p = torch.softmax(z, dim=0)
        grad = torch.zeros(vocab, dtype=torch.float64)
        for token in token_ids:
            ratio = p[token] / old[token]
            if ratio >= 1 - clip:
                one_hot = torch.zeros(vocab, dtype=torch.float64)
                one_hot[token] = 1.0
                grad += count * ratio * (one_hot - p)
        z = z - lr * HIDDEN * grad / denominator
    return z


# --------------------------------------------------------------------------------------------------- step counting


@pytest.mark.parametrize(
    "kept, per_step, steps, expected",
    [(4, 4, 4, 1), (6, 4, 4, 2), (16, 4, 4, 4), (0, 4, 4, 0), (2048, 2048, 4, 1), (2049, 2048, 4, 2)],
)
def test_real_optimizer_steps_is_ceil_of_kept_over_step_size(kept, per_step, steps, expected):
    # The official code: 8192 samples at 75 % accuracy, NSR keeps 2048 = one 256-prompt mini-batch: 1 step, not 4.
    assert real_optimizer_steps(kept, per_step, steps) == expected


def test_config_validates_dropped_samples():
    with pytest.raises(ValueError, match="dropped_samples='drop' is invalid"):
        ReasoningGRPOConfig(output_dir="x", dropped_samples="drop", report_to="none", use_cpu=True)
    with pytest.raises(ValueError, match="multiple of gradient_accumulation_steps"):
        ReasoningGRPOConfig(
            output_dir="x",
            dropped_samples="remove",
            gradient_accumulation_steps=2,
            steps_per_generation=3,
            report_to="none",
            use_cpu=True,
        )
    assert ReasoningGRPOConfig(output_dir="x", report_to="none", use_cpu=True).dropped_samples == "mask"


# ------------------------------------------------------------------------------------------ SGD, by hand, 1/4 kept


def test_remove_takes_one_step_and_mask_four_at_a_quarter_kept(tmp_path):
    incorrect = [0, 4, 8, 12]  # one wrong answer per prompt: NSR keeps 4 of 16
    lr = 1e-4
    results = {}
    for mode in ("remove", "mask"):
        trainer, counter, tokenizer = make(tmp_path / mode, mode, incorrect, lr=lr)
        trainer.train()
        results[mode] = (logits_of(trainer), counter.steps, trainer)
    vocab = len(tokenizer)
    wrong = tokenizer(INCORRECT, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    # remove: the 4 kept samples (12 tokens) fill the first optimizer step; the loss divides by (mean kept length 3)
    # × (4 samples per step) = 12: a token mean. Three empty steps are skipped.
    z, steps, trainer = results["remove"]
    assert steps == 1
    assert trainer.state.global_step == 4  # the schedule and global_step still count the empty steps
    torch.testing.assert_close(z, nsr_sgd_steps(vocab, wrong, [4], 12.0, lr), rtol=1e-6, atol=1e-12)
    # From zero logits (uniform π = 1/V), one step: z_v = −η H (n_v − 3/V) / 3 over the kept tokens (n_v of token v).
    expected = torch.full((vocab,), -lr * HIDDEN * (0 - 3 / vocab) / 3, dtype=torch.float64)
    expected[wrong[0]] = -lr * HIDDEN * (2 - 3 / vocab) / 3
    expected[wrong[2]] = -lr * HIDDEN * (1 - 3 / vocab) / 3
    torch.testing.assert_close(z, expected, rtol=1e-6, atol=1e-12)
    metrics = trainer.state.log_history[0]
    assert metrics["dropped_samples/optimizer_steps"] == 1.0
    assert metrics["dropped_samples/skipped_steps"] == 3.0

    # mask: all 4 steps are taken. TRL divides each step by the generation's kept tokens per step, 12 × 2 / 8 = 3,
    # so the 4 steps together move the logits by about 4 times the single step of "remove" (first order in η; the
    # order of the kept samples across the steps only enters at second order).
    z_mask, steps, trainer = results["mask"]
    assert steps == 4
    assert trainer.state.log_history[0]["dropped_samples/optimizer_steps"] == 4.0
    torch.testing.assert_close(z_mask, 4 * z, rtol=1e-3, atol=0)
    assert not torch.allclose(z_mask, z)


def test_remove_scales_the_last_partial_step(tmp_path):
    # 6 kept of 16 with 4 per step: steps 1 and 2 hold 4 and 2 kept samples; both divide by 3 × 4 = 12, so the
    # second is half of a full step (2 of 4 samples), as the official code's len(micro) / ppo_mini_batch_size.
    incorrect = [0, 1, 4, 5, 8, 12]
    lr = 1e-2
    trainer, counter, tokenizer = make(tmp_path, "remove", incorrect, lr=lr)
    trainer.train()
    vocab = len(tokenizer)
    wrong = tokenizer(INCORRECT, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert counter.steps == 2
    assert trainer.state.log_history[0]["dropped_samples/skipped_steps"] == 2.0
    torch.testing.assert_close(
        logits_of(trainer), nsr_sgd_steps(vocab, wrong, [4, 2], 12.0, lr), rtol=1e-6, atol=1e-12
    )


# --------------------------------------------------------------------------------------- Adam moments, empty steps


def test_empty_steps_leave_adam_untouched(tmp_path):
    incorrect = [0, 4, 8, 12]
    lr = 1e-3
    trainer, counter, tokenizer = make(tmp_path, "remove", incorrect, optimizer="adam", lr=lr)
    trainer.train()
    vocab = len(tokenizer)
    wrong = tokenizer(INCORRECT, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert counter.steps == 1
    state = trainer.optimizer.optimizer.state[trainer.model.lm_head.weight]
    assert float(state["step"]) == 1.0
    # The one gradient, by hand: ∂loss/∂W_vj = (n_v − 3/V) / 3 for every column j (12 kept tokens, token mean).
    grad_rows = torch.full((vocab,), (0 - 3 / vocab) / 3, dtype=torch.float64)
    grad_rows[wrong[0]] = (2 - 3 / vocab) / 3
    grad_rows[wrong[2]] = (1 - 3 / vocab) / 3
    grad = grad_rows.unsqueeze(1).expand(vocab, HIDDEN)
    beta1, beta2 = 0.9, 0.999
    torch.testing.assert_close(state["exp_avg"], (1 - beta1) * grad, rtol=1e-6, atol=1e-15)
    torch.testing.assert_close(state["exp_avg_sq"], (1 - beta2) * grad**2, rtol=1e-6, atol=1e-15)
    # One Adam step from zero: −η ĝ/(|ĝ| + ε) with bias-corrected moments = −η g/(|g| + ε).
    expected = -lr * grad / (grad.abs() + 1e-8)
    torch.testing.assert_close(trainer.model.lm_head.weight.detach(), expected, rtol=1e-6, atol=1e-12)

    trainer, counter, _ = make(tmp_path / "mask", "mask", incorrect, optimizer="adam", lr=lr)
    trainer.train()
    assert counter.steps == 4
    assert float(trainer.optimizer.optimizer.state[trainer.model.lm_head.weight]["step"]) == 4.0


def test_remove_repeats_the_plan_on_every_pass(tmp_path):
    # num_iterations=2 passes over the generation batch: 1 real step of 4 in each, as verl's ppo_epochs loop.
    trainer, counter, _ = make(tmp_path, "remove", [0, 4, 8, 12], num_iterations=2, max_steps=8)
    trainer.train()
    assert counter.steps == 2
    first = trainer.state.log_history[0]
    assert (first["dropped_samples/optimizer_steps"], first["dropped_samples/skipped_steps"]) == (2.0, 6.0)


def test_remove_is_a_no_op_when_nothing_is_dropped(tmp_path):
    # W-REINFORCE keeps every scorable sample: "remove" and "mask" train identically, every step taken.
    incorrect = [0, 4, 8, 12]
    runs = {}
    for mode in ("remove", "mask"):
        trainer, counter, _ = make(tmp_path / mode, mode, incorrect, estimator="w_reinforce", lr=1e-2)
        trainer.train()
        runs[mode] = (logits_of(trainer), counter.steps)
    assert runs["remove"][1] == runs["mask"][1] == 4
    torch.testing.assert_close(runs["remove"][0], runs["mask"][0], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ two processes

SCRIPT = Path(__file__).parents[1] / "distributed" / "dropped_samples_equivalence.py"


@pytest.mark.distributed
@pytest.mark.slow
def test_two_processes_remove_like_one(tmp_path):
    outputs = {}
    for nproc in (1, 2):
        out = tmp_path / f"remove-{nproc}.pt"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run([*cmd, str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
        outputs[nproc] = torch.load(out)
    single, double = outputs[1], outputs[2]
    assert (single["world_size"], double["world_size"]) == (1, 2)
    # 6 kept of 16 (all on the first process's half): 2 steps of 4, whatever the number of processes.
    assert single["steps"] == double["steps"] == 2
    torch.testing.assert_close(double["logits"], single["logits"], rtol=1e-6, atol=1e-12)
    assert not math.isclose(float(single["logits"].abs().sum()), 0.0)


# ------------------------------------------------------------------------------------------------ refused combos


def test_remove_refuses_deepspeed(no_global_deepspeed_config):
    deepspeed = {
        "zero_optimization": {"stage": 2},
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
    }
    with pytest.raises(ValueError, match="cannot skip an optimizer step under DeepSpeed"):
        ReasoningGRPOConfig(
            output_dir="x", dropped_samples="remove", deepspeed=deepspeed, report_to="none", use_cpu=True
        )


def test_remove_refuses_a_loss_that_needs_whole_groups(tmp_path):
    with pytest.raises(ValueError, match="needs whole groups"):
        make(tmp_path, "remove", [0], estimator="grpo", policy_loss="drpo")

"""ReasoningGRPOTrainer with TRL's ``vllm_mode="colocate"`` on the real vLLM CPU engine (in-process).

Generation, vLLM's sampling log-probs, TRL's trainer and ours are real; only TRL's colocate weight sync goes through
vLLM's layer-wise reload (tests/support/vllm_cpu_shim.py says why). Each test checks numbers worked out outside the
code under test: stock ``trl.GRPOTrainer`` on the same vLLM samples, the rewards recomputed from the completions,
vLLM's own reported log-probs, entropies from a separate forward pass, and the engine's effective weights.
"""

import gc
import math

import pytest
import torch
from support import vllm_cpu_shim as shim
from support.vllm_runs import (
    NUM_GENERATIONS,
    TEMPERATURE,
    CoinReward,
    SnapshotParameters,
    coin,
    config_kwargs,
    ids_of,
    logged,
    record_batches,
    record_vllm_generations,
)
from trl import GRPOConfig, GRPOTrainer

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
from trl_reasoning.embedded import arithmetic_dataset, build_tokenizer


def train(trainer_cls, config, model_dir, *, record_extra=None):
    reward = CoinReward()
    snapshots = SnapshotParameters()
    trainer = trainer_cls(
        model=model_dir,
        reward_funcs=reward,
        args=config,
        train_dataset=arithmetic_dataset(32, seed=1),
        processing_class=build_tokenizer(),
        callbacks=[snapshots],
    )
    batches = record_batches(trainer, record_extra)
    trainer.train()
    return trainer, batches, snapshots.snapshots, reward


def release(trainer):
    """Free a trainer's in-process engine before the next one starts."""
    del trainer.vllm_generation.llm
    gc.collect()


def vllm_logprobs_by_completion(generations) -> dict[tuple, list[float]]:
    table = {}
    for record in generations:
        for ids, logprobs, sampled in zip(
            record["completion_ids"], record["logprobs"], record["logprob_token_ids"], strict=True
        ):
            assert sampled == ids  # each log-prob is the sampled token's
            table[tuple(ids)] = logprobs
    return table


def assert_engine_holds(trainer, expected: dict[str, torch.Tensor], initial: dict[str, torch.Tensor]):
    """The engine's effective weights equal ``expected`` (trainer parameters) and differ from ``initial``."""
    from transformers import AutoModelForCausalLM

    engine = shim.engine_weights(shim.colocate_model_runner(trainer).get_model())
    reference = AutoModelForCausalLM.from_pretrained(trainer.model.name_or_path)
    reference.load_state_dict(expected, strict=False)
    want = shim.hf_weights_in_vllm_layout(reference)
    reference.load_state_dict(initial, strict=False)
    before = shim.hf_weights_in_vllm_layout(reference)
    assert sorted(engine) == sorted(want)
    moved = 0.0
    for name, value in want.items():
        got = engine[name][: value.shape[0]]  # vLLM pads the vocabulary rows of the embedding and the LM head
        # vLLM CPU runs an fp32 checkpoint in bfloat16 (dtype="auto"): the engine holds the trainer's weights rounded
        torch.testing.assert_close(got, value.to(got.dtype), atol=0, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
        moved = max(moved, (value.to(got.dtype) - before[name].to(got.dtype)).abs().max().item())
    assert moved > 1e-3, "the step did not change the weights, so the check could not fail"


def test_grpo_matches_stock_trl_on_the_same_vllm_samples(tiny_model_dir, tmp_path, monkeypatch):
    """Our `grpo` estimator (policy_loss="trl") and stock trl.GRPOTrainer, each with its own vLLM engine seeded
    alike: the same samples, so the same advantages, loss and updated weights."""
    shim.patch_colocate_sync(monkeypatch)
    stock, stock_batches, stock_snapshots, stock_reward = train(
        GRPOTrainer, GRPOConfig(**config_kwargs(tmp_path / "trl")), tiny_model_dir
    )
    stock_loss = logged(stock, "loss")
    release(stock)
    ours, our_batches, our_snapshots, our_reward = train(
        ReasoningGRPOTrainer, ReasoningGRPOConfig(**config_kwargs(tmp_path / "ours")), tiny_model_dir
    )
    (theirs,), (mine,) = stock_batches, our_batches
    assert torch.equal(theirs["completion_ids"], mine["completion_ids"]), "vLLM sampled differently"
    rewards = torch.tensor(stock_reward.calls[0]["rewards"])
    assert 0 < rewards.sum() < len(rewards)  # mixed rewards: the advantages are not all zero
    torch.testing.assert_close(mine["advantages"], theirs["advantages"], atol=0, rtol=0)
    # and they are GRPO's, from the rewards: (r - group mean) / (group std + 1e-4)
    groups = rewards.view(-1, NUM_GENERATIONS)
    expected = (groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-4)
    torch.testing.assert_close(mine["advantages"], expected.flatten(), atol=1e-6, rtol=1e-6)
    assert logged(ours, "loss") == pytest.approx(stock_loss, rel=1e-6, abs=1e-7)
    for name, value in stock_snapshots[-1].items():
        torch.testing.assert_close(our_snapshots[-1][name], value, atol=1e-6, rtol=1e-6)
    release(ours)


def _entropies(trainer, batch):
    """Entropies of the rollout policy at the completion tokens, from a forward pass of our own."""
    with torch.no_grad():
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        logits = trainer.model(input_ids=ids, attention_mask=mask).logits
        logits = logits[:, batch["prompt_ids"].size(1) - 1 : -1] / TEMPERATURE
        logp = logits.log_softmax(-1)
        return {"our_entropies": -(logp.exp() * logp).sum(-1)}


def test_w_reinforce_with_token_weighting_trains_and_syncs_weights(tiny_model_dir, tmp_path, monkeypatch):
    """W-REINFORCE with entropy_token_scale, 2 steps: advantages +0.1 / -1 from the rewards, scaled per token by
    exp(-H~)/mean; the weights after step 1 are the ones the engine generated step 2 with."""
    syncs = shim.patch_colocate_sync(monkeypatch)
    generations = record_vllm_generations(monkeypatch)
    config = ReasoningGRPOConfig(
        **config_kwargs(tmp_path, max_steps=2),
        advantage_estimator="w_reinforce",
        token_weighting="entropy_token_scale",
    )
    trainer, batches, snapshots, reward = train(ReasoningGRPOTrainer, config, tiny_model_dir, record_extra=_entropies)
    assert len(batches) == 2 and len(syncs) == 2  # a sync before each generation
    for batch in batches:
        mask = batch["completion_mask"].bool()
        sample = torch.tensor([0.1 if coin(ids_of(batch, i)) == 1.0 else -1.0 for i in range(len(mask))])
        entropies = batch["our_entropies"]
        valid = entropies[mask]
        scale = torch.exp(-(entropies - valid.min()) / (valid.max() - valid.min() + 1e-8))
        scale = scale / scale[mask].mean()
        expected = torch.where(mask, sample.unsqueeze(1) * scale, 0.0)
        assert batch["advantages"].shape == mask.shape
        torch.testing.assert_close(batch["advantages"] * mask, expected, atol=1e-4, rtol=1e-4)
    assert logged(trainer, "advantage/mean_incorrect") == [-1.0, -1.0]
    assert all(math.isfinite(v) and v > 0 for v in logged(trainer, "token_weight/entropy_mean"))
    # Step 2 was sampled by the engine after the first sync of trained weights: its sampling log-probs agree with
    # the trainer's to the engine's numerical noise (a stale LM head gives differences of ~0.2).
    assert max(logged(trainer, "sampling/sampling_logp_difference/mean")) < 5e-3
    # The engine computes with the parameters after step 1 (synced before generating step 2), not the initial ones.
    assert_engine_holds(trainer, snapshots[1], snapshots[0])
    assert len(generations) == 2
    release(trainer)


def test_drpo_trains_and_logs_its_metrics(tiny_model_dir, tmp_path, monkeypatch):
    shim.patch_colocate_sync(monkeypatch)
    config = ReasoningGRPOConfig(**config_kwargs(tmp_path), policy_loss="drpo")
    trainer, (batch,), snapshots, reward = train(ReasoningGRPOTrainer, config, tiny_model_dir)
    correct = torch.tensor(reward.calls[0]["rewards"]) == 1.0
    lengths = batch["completion_mask"].sum(1).float()
    # DRPO's length metrics are the mean lengths of the correct and incorrect completions vLLM returned
    assert logged(trainer, "drpo/length_correct")[0] == pytest.approx(lengths[correct].mean().item(), rel=1e-5)
    assert logged(trainer, "drpo/length_incorrect")[0] == pytest.approx(lengths[~correct].mean().item(), rel=1e-5)
    mixed = correct.view(-1, NUM_GENERATIONS).float().mean(1)
    mixed = ((mixed > 0) & (mixed < 1)).float().mean().item()
    assert logged(trainer, "drpo/frac_valid_groups")[0] == pytest.approx(mixed)
    assert math.isfinite(logged(trainer, "loss")[0])
    assert any((snapshots[1][n] - snapshots[0][n]).abs().max() > 0 for n in snapshots[0])
    release(trainer)


def test_topr_reads_vllm_logprobs_and_tapers_a_stale_policy(tiny_model_dir, tmp_path, monkeypatch):
    """TOPR's μ is vLLM's reported log-prob of each sampled token; with num_iterations=2 the second pass trains a
    policy one step away from the sampler, and the negatives' taper α = min(π/μ, 1) falls below 1."""
    import trl_reasoning.losses.topr as topr

    shim.patch_colocate_sync(monkeypatch)
    generations = record_vllm_generations(monkeypatch)
    calls = []
    original = topr.topr_loss

    def recording_topr_loss(per_token_logps, behavior_per_token_logps, mask, rewards, **kwargs):
        output = original(per_token_logps, behavior_per_token_logps, mask, rewards, **kwargs)
        calls.append(
            {
                "pi": per_token_logps.detach().clone(),
                "mu": behavior_per_token_logps.detach().clone(),
                "mask": mask.clone(),
                "rewards": rewards.clone(),
                "alpha": output.metrics["topr/alpha_negative_mean"].item(),
            }
        )
        return output

    monkeypatch.setattr(topr, "topr_loss", recording_topr_loss)
    config = ReasoningGRPOConfig(
        **config_kwargs(tmp_path, max_steps=2, num_iterations=2, learning_rate=5e-2), policy_loss="topr"
    )
    loss_inputs = []
    trainer = ReasoningGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=CoinReward(),
        args=config,
        train_dataset=arithmetic_dataset(32, seed=1),
        processing_class=build_tokenizer(),
    )
    compute_loss = trainer._compute_loss

    def recording_compute_loss(model, inputs):
        loss_inputs.append({"completion_ids": inputs["completion_ids"].clone()})
        return compute_loss(model, inputs)

    trainer._compute_loss = recording_compute_loss
    trainer.train()
    assert len(generations) == 1 and len(calls) == 2 == len(loss_inputs)  # one generation, trained on twice
    reported = vllm_logprobs_by_completion(generations)
    assert len(reported) == len(generations[0]["completion_ids"])  # distinct completions
    for call, inputs in zip(calls, loss_inputs, strict=True):
        for row in range(len(call["mu"])):
            mask = call["mask"][row].bool()
            ids = tuple(inputs["completion_ids"][row][mask].tolist())
            # the μ the loss reads is exactly the log-prob vLLM reported for each sampled token
            torch.testing.assert_close(call["mu"][row][mask], torch.tensor(reported[ids]), atol=0, rtol=0)
        negative = call["rewards"] < 0
        assert negative.any()
        log_ratio = ((call["pi"] - call["mu"]) * call["mask"]).sum(1)
        alpha = torch.exp(log_ratio.clamp(max=0))[negative].mean().item()
        assert call["alpha"] == pytest.approx(alpha, rel=1e-5)
    # pass 1: the policy that sampled (up to engine noise); pass 2: one step later, negatives pushed down
    assert calls[0]["alpha"] > 0.97
    assert calls[1]["alpha"] < 0.9
    assert logged(trainer, "topr/alpha_negative_mean") == pytest.approx([c["alpha"] for c in calls], rel=1e-5)
    release(trainer)

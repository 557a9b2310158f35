"""Token-weighted GRPO advantages: EMPG's entropy scale alone (``token_weighting="entropy_token_scale"``) and
critical-token weights, against independent numbers. Full EMPG (``"empg"``) is tested in test_empg.py."""

import threading

import pytest
import torch
from support import FakeGather, adapter_logits, make_trainer

from trl_reasoning import ReasoningGRPOConfig
from trl_reasoning.testing import coin_reward, scripted_rollout
from trl_reasoning.token_weights import entropy_modulation


# docs/methods/token-weighting.md, Worked example, with each step a token: trajectory A's entropies [0.2, 1.0, 0.5], B's [1.5, 0.1].
EMPG_ENTROPIES = [[0.2, 1.0, 0.5], [1.5, 0.1, 0.0]]
EMPG_MASK = [[1, 1, 1], [1, 1, 0]]
EMPG_SCALE = [[1.301746, 0.735120, 1.050662], [0.514343, 1.398129, 0.0]]


def test_entropy_modulation_matches_empg_worked_example():
    scale = entropy_modulation(torch.tensor(EMPG_ENTROPIES, dtype=torch.float64), torch.tensor(EMPG_MASK))
    torch.testing.assert_close(scale, torch.tensor(EMPG_SCALE, dtype=torch.float64), atol=1e-6, rtol=0)
    assert scale[torch.tensor(EMPG_MASK).bool()].mean().item() == pytest.approx(1.0)


def test_entropy_modulation_k_and_degenerate_batches():
    entropies, mask = torch.tensor(EMPG_ENTROPIES, dtype=torch.float64), torch.tensor(EMPG_MASK)
    # k = 2 by hand: normalised entropies [1/14, 9/14, 4/14 | 1, 0]
    normalized = torch.tensor([1 / 14, 9 / 14, 4 / 14, 1.0, 0.0], dtype=torch.float64)
    expected = torch.exp(-2 * normalized) / torch.exp(-2 * normalized).mean()
    scale = entropy_modulation(entropies, mask, k=2.0)
    torch.testing.assert_close(scale[mask.bool()], expected, atol=1e-7, rtol=0)
    # every token equally uncertain: all weights 1; no valid token: all 0
    assert (entropy_modulation(torch.full((2, 3), 0.7), torch.ones(2, 3)) == 1).all()
    assert (entropy_modulation(torch.rand(2, 3), torch.zeros(2, 3)) == 0).all()
    with pytest.raises(ValueError, match="k=0"):
        entropy_modulation(entropies, mask, k=0)
    with pytest.raises(ValueError, match="same shape"):
        entropy_modulation(entropies, mask[:, :2])


def test_entropy_modulation_over_processes_equals_the_global_batch():
    torch.manual_seed(0)
    entropies, mask = torch.rand(6, 5, dtype=torch.float64) * 3, (torch.rand(6, 5) > 0.3).long()
    whole = entropy_modulation(entropies, mask, k=1.0)
    gather, parts = FakeGather(2), [None, None]

    def run(rank):
        rows = slice(3 * rank, 3 * rank + 3)
        parts[rank] = entropy_modulation(entropies[rows], mask[rows], gather=gather.for_rank(rank))

    threads = [threading.Thread(target=run, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=1e-12)


def test_entropy_weighting_in_the_trainer_scales_each_token(tmp_path):
    trainer = make_trainer(tmp_path, token_weighting="entropy_token_scale", model_dtype=torch.float64, bf16=False)
    trainer.model.train()
    batch = [trainer.train_dataset[i] for i in (0, 0, 0, 0, 1, 1, 1, 1)]
    inputs = trainer._generate_and_score_completions(batch)
    sequence = torch.tensor(list(trainer._logs["advantages"])[-8:], dtype=torch.float64)
    mask = inputs["completion_mask"].bool()
    assert inputs["advantages"].shape == mask.shape

    # Independent entropies: the model's full softmax at every completion position.
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():
        logits = trainer.model(input_ids=ids, attention_mask=attention).logits.double()
    logits = logits[:, inputs["prompt_ids"].size(1) - 1 : -1] / trainer.temperature
    entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
    low, high = entropy[mask].min(), entropy[mask].max()
    scale = torch.exp(-(entropy - low) / (high - low + 1e-8))
    scale = scale / scale[mask].mean()
    expected = sequence.unsqueeze(1) * scale
    # TRL's fused LM head computes entropies in float32; the random model's entropies span a narrow range, which the
    # min-max normalisation stretches to [0, 1], so float32 rounding shows at ~1e-4.
    torch.testing.assert_close(inputs["advantages"][mask].double(), expected[mask], rtol=5e-4, atol=1e-6)
    assert sequence.abs().sum() > 0 and scale[mask].max() - scale[mask].min() > 0.5
    metrics = trainer._metrics["train"]
    assert metrics["token_weight/scale_max"][-1] == pytest.approx(scale[mask].max().item(), rel=5e-4)
    assert metrics["token_weight/entropy_mean"][-1] == pytest.approx(entropy[mask].mean().item(), rel=1e-5)


def test_critical_token_weighting_in_the_trainer(tmp_path, random_adapters):
    positive, negative = random_adapters
    trainer = make_trainer(
        tmp_path,
        token_weighting="critical_tokens",
        critical_positive_adapter=positive,
        critical_negative_adapter=negative,
        advantage_estimator="w_reinforce",
        trainer_kwargs={"rollout_func": scripted_rollout()},
    )
    trainer.model.train()
    batch = [trainer.train_dataset[i] for i in (0, 0, 0, 0, 1, 1, 1, 1)]
    inputs = trainer._generate_and_score_completions(batch)
    sequence = torch.tensor(list(trainer._logs["advantages"])[-8:])
    mask = inputs["completion_mask"].bool()
    completions = trainer.processing_class.batch_decode(inputs["completion_ids"], skip_special_tokens=True)
    correct = torch.tensor(coin_reward(completions)) == 1.0
    assert correct.any() and (~correct).any()

    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    start = inputs["prompt_ids"].size(1)
    combined = 2 * adapter_logits(positive, ids, attention) - adapter_logits(negative, ids, attention)
    scores = combined[:, start - 1 : -1].softmax(-1).gather(-1, inputs["completion_ids"].unsqueeze(-1)).squeeze(-1)
    weights = torch.where(correct.unsqueeze(1), torch.ones_like(scores), 1 - scores)
    expected = sequence.unsqueeze(1).double() * weights
    torch.testing.assert_close(inputs["advantages"][mask].double(), expected[mask], rtol=1e-4, atol=1e-6)
    incorrect_weights = (1 - scores)[~correct][mask[~correct]]
    metrics = trainer._metrics["train"]
    assert metrics["critical/weight_mean"][-1] == pytest.approx(incorrect_weights.mean().item(), rel=1e-4)
    assert metrics["critical/frac_below_0.5"][-1] == pytest.approx((incorrect_weights < 0.5).double().mean().item())

    # TRL's loss accepts the (B, T) advantages: finite, with gradients reaching the parameters.
    trainer.current_gradient_accumulation_steps = 1
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    assert torch.isfinite(loss) and any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters()
    )


@pytest.mark.slow
def test_token_weighted_training_runs_and_logs(tmp_path, random_adapters):
    positive, negative = random_adapters
    trainer = make_trainer(
        tmp_path,
        token_weighting="critical_tokens",
        critical_positive_adapter=positive,
        critical_negative_adapter=negative,
        max_steps=2,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"critical/weight_mean", "critical/frac_below_0.5"} <= logged
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())


def test_config_checks_token_weighting(tmp_path):
    def config(**kwargs):
        return ReasoningGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)

    assert config(token_weighting="none").token_weighting is None
    with pytest.raises(ValueError, match="token_weighting='other' is invalid"):
        config(token_weighting="other")
    with pytest.raises(ValueError, match="critical_positive_adapter and critical_negative_adapter"):
        config(token_weighting="critical_tokens")
    with pytest.raises(ValueError, match="policy_loss='trl'"):
        config(token_weighting="entropy_token_scale", policy_loss="topr")
    with pytest.raises(ValueError, match="entropy_modulation_k"):
        config(token_weighting="entropy_token_scale", entropy_modulation_k=0.0)

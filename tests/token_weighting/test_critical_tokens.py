"""Critical-token weighting (``token_weighting="critical_tokens"``) in ReasoningGRPOTrainer, against adapter scores
computed independently; a training run logs ``critical/*``. The scores' math is in test_token_weights.py."""

import pytest
import torch
from support import adapter_logits, make_trainer

from trl_reasoning.testing import coin_reward, scripted_rollout


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

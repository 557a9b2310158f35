"""The built-in input providers (read by ``ReasoningGRPOTrainer``) (see :mod:`trl_reasoning.inputs`).

Each runs only when a configured method declares its input, once per generation batch. Sample-scope providers
return one value per sample of the global batch, in TRL's process order.
"""

from __future__ import annotations

import torch

from .inputs import InputContext, register_input_provider
from .token_weighting.critical_tokens import CriticalTokenParams


def _correctness(context: InputContext) -> torch.Tensor:
    return context.get("rewards_per_func")[:, context.trainer._correctness_index]


@register_input_provider(
    "correct", scope="sample", description="bool (N,): the correctness reward is >= correct_threshold"
)
def correct(context: InputContext) -> torch.Tensor:
    return _correctness(context) >= context.trainer.args.correct_threshold


@register_input_provider(
    "scorable", scope="sample", description="bool (N,): the correctness reward is not None (False: never trained on)"
)
def scorable(context: InputContext) -> torch.Tensor:
    return ~torch.isnan(_correctness(context))


def _token_counts(context: InputContext) -> None:
    batch = context.batch
    completion_mask = batch["completion_mask"]
    loss_mask = completion_mask if "tool_mask" not in batch else completion_mask * batch["tool_mask"]
    local_counts = torch.stack([completion_mask.sum(dim=1), loss_mask.sum(dim=1)], dim=1)
    lengths, loss_tokens = context.trainer.accelerator.gather(local_counts).unbind(dim=1)
    context.values["lengths"], context.values["loss_tokens"] = lengths, loss_tokens


@register_input_provider("lengths", scope="sample", description="int (N,): completion length in tokens")
def lengths(context: InputContext) -> torch.Tensor:
    _token_counts(context)
    return context.values["lengths"]


@register_input_provider(
    "loss_tokens", scope="sample", description="int (N,): tokens of each completion in the loss (not tool output)"
)
def loss_tokens(context: InputContext) -> torch.Tensor:
    _token_counts(context)
    return context.values["loss_tokens"]


@register_input_provider(
    "positive_fraction",
    scope="sample",
    description="float (N,): share of correct samples among the scorable ones of the global batch (broadcast)",
)
def positive_fraction(context: InputContext) -> torch.Tensor:
    correct, scorable = context.get("correct"), context.get("scorable")
    share = (correct & scorable).sum() / scorable.sum().clamp(min=1)
    return share.expand_as(correct)


@register_input_provider(
    "group_accuracy",
    scope="sample",
    description="float (N,): share of correct samples among the scorable ones of the sample's group (NaN if none)",
)
def group_accuracy(context: InputContext) -> torch.Tensor:
    correct, scorable = context.get("correct"), context.get("scorable")
    group_size = context.get("group_size")
    hits = (correct & scorable).view(-1, group_size).sum(dim=1).to(torch.float32)
    counts = scorable.view(-1, group_size).sum(dim=1).to(torch.float32)
    share = torch.where(counts > 0, hits / counts.clamp(min=1), float("nan"))
    return share.repeat_interleave(group_size)


@register_input_provider(
    "entropies",
    scope="token",
    description="float (B, T): per-token entropies of the policy that sampled the batch (one no-grad forward)",
)
def entropies(context: InputContext) -> torch.Tensor:
    return context.trainer._rollout_entropies(context.batch, context.mode)


def _contrastive_scorer(model, params: CriticalTokenParams, args):
    from .critical_tokens.scoring import ContrastiveScorer

    params.validate_selected()
    return ContrastiveScorer.from_policy(
        model,
        params.positive_adapter,
        params.negative_adapter,
        beta=params.beta,
        model_init_kwargs=args.model_init_kwargs,
    )


@register_input_provider(
    "critical_token_weights",
    scope="token",
    description="float (B, T): 1 − s_t on incorrect completions' tokens (contrastive estimation, cDPO), 1 elsewhere",
    params=CriticalTokenParams,
    setup=_contrastive_scorer,
)
@torch.no_grad()
def critical_token_weights(context: InputContext) -> torch.Tensor:
    batch = context.batch
    prompt_ids, completion_ids, completion_mask = (
        batch["prompt_ids"],
        batch["completion_ids"],
        batch["completion_mask"],
    )
    incorrect = context.local_value("scorable") & ~context.local_value("correct")
    scored = completion_mask.bool() & incorrect.unsqueeze(1)
    weights = torch.ones_like(completion_mask, dtype=torch.float32)
    if scored.any():  # correct completions keep weight 1: score only when a wrong one is here
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], completion_mask], dim=1)
        scoring_mask = torch.cat([torch.zeros_like(prompt_ids), scored.long()], dim=1)
        critical = context.state("critical_token_weights").weights(input_ids, attention_mask, scoring_mask)
        weights = torch.where(scored, critical[:, prompt_ids.size(1) :].to(weights.device), weights)
    return weights

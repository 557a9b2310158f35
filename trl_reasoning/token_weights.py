r"""Critical-token scores for cDPO ("Critical Tokens Matter", Lin et al. 2024, arXiv 2411.19943).

cDPO trains a positive model ``P_p`` (fine-tuned on correct trajectories) and a negative model ``P_n`` (fine-tuned on
wrong ones) and scores every token ``y_t`` of a rejected response by contrastive estimation::

    s_t = softmax_v((1 + β)·z_p[t] − β·z_n[t])[y_t]  =  P_p(y_t)^(1+β) · P_n(y_t)^(−β) / Σ_v P_p(v)^(1+β) · P_n(v)^(−β)

where ``z_p[t]``, ``z_n[t]`` are the two models' logits (or log-probs: the per-position normaliser cancels) at the
position that predicts ``y_t``. ``s_t ∈ (0, 1)``; a low score means the correct-pattern model finds the token unlikely
while the wrong-pattern model likes it, a *critical token*. The rejected side of the cDPO loss weights each token's
log-ratio by ``1 − s_t`` (the paper's Eq. 4-5); ``β = 1`` in the paper and the official code, ``β = 0`` gives
``P_p(y_t)``.

Implementation details:

1. Memory: the sequence dimension is processed in chunks, and only one ``(B, chunk, V)`` slice of the combined logits
   exists at a time (built and normalised in place: no softmax tensor, only the token's entry is gathered).
   :func:`critical_token_scores_from_hidden` also projects the hidden states through the LM head chunk by chunk, so
   the full ``(B, T, V)`` logits of either model never exist. ``chunk_size=None`` picks the largest chunk whose
   slice is at most 64 MiB of float32 (at least one position).
2. The LM head is linear, so the combined logits are ``scale·(((1 + β)·h_p − β·h_n)·Wᵀ + b)``: one matmul per chunk
   instead of two. This needs the two models to share the LM head (LoRA adapters on the body, as in the paper) and
   logits that are ``logit_scale·(h·Wᵀ + b)``; final-logit soft-capping (Gemma 2) is not linear and not supported.
3. Numerics: computed in float32 (float64 when an input is float64); bf16/fp16 logits are upcast chunk by chunk
   (the second model's in blocks of ≤ 2^20 elements), a bf16/fp16 LM head once (one ``V×H`` float32 copy). ``log s_t = (z_y − m) − log1p(Σ_{v≠argmax} exp(z_v − m))``
   with ``m`` the row max, so logits of 1e4 lose nothing to rounding, and the weight is ``−expm1(log s_t)``, so it
   stays accurate when ``s_t`` is close to 1 (``1 − s_t`` would round to 0). Scores and weights are clamped to
   ``[0, 1]`` against rounding. Inputs are expected to be finite.
4. Everything runs under ``torch.no_grad()``: the scores are constants that weight the loss, not part of the graph.
5. Positions where ``mask`` is 0 get exactly 0 (score and weight); their token ids are never used, so padding values
   such as ``-100`` are fine. Chunks with no valid position are skipped.

Shapes: logits ``(B, T, V)`` aligned so that ``logits[:, t]`` predicts ``token_ids[:, t]`` (the caller shifts),
``token_ids`` and ``mask`` ``(B, T)``, hidden states ``(B, T, H)`` (the input of the LM head, after the final norm),
``lm_head_weight`` ``(V, H)``, ``lm_head_bias`` ``(V,)``. The output is ``(B, T)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


__all__ = [
    "critical_token_scores",
    "critical_token_scores_from_hidden",
    "critical_token_weights",
    "entropy_modulation",
]

# ``chunk_size=None``: the largest chunk whose (B, chunk, V) slice of combined logits fits in this many bytes.
_AUTO_CHUNK_BYTES = 64 * 2**20
# bf16/fp16 logits are upcast to float32 in blocks of at most this many elements (at least one row of V).
_UPCAST_BLOCK_ELEMENTS = 2**20


def critical_token_scores(
    positive_logits: torch.Tensor,
    negative_logits: torch.Tensor,
    token_ids: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    beta: float = 1.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Contrastive-estimation scores ``s_t = softmax_v((1 + β)·z_p[t] − β·z_n[t])[y_t]``, under ``torch.no_grad()``.

    Args:
        positive_logits: (B, T, V) positive-model logits (or log-probs); ``[:, t]`` predicts ``token_ids[:, t]``.
        negative_logits: (B, T, V) negative-model logits (or log-probs), aligned the same way.
        token_ids: (B, T) integer token ids ``y_t``; values at masked positions are ignored.
        mask: (B, T) bool or 0/1, True/1 for the positions to score; None scores every position.
        beta: the contrast strength ``β ≥ 0`` (1 in the paper).
        chunk_size: positions per chunk; None picks one so that a ``(B, chunk, V)`` float32 slice is ≤ 64 MiB.

    Returns:
        (B, T) scores in [0, 1], exactly 0 at masked positions; float32, or float64 for float64 inputs.
    """
    log_scores, valid = _log_scores_from_logits(positive_logits, negative_logits, token_ids, mask, beta, chunk_size)
    return torch.where(valid, log_scores.exp().clamp(max=1.0), 0.0)


def critical_token_weights(
    positive_logits: torch.Tensor,
    negative_logits: torch.Tensor,
    token_ids: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    beta: float = 1.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """cDPO token weights ``1 − s_t`` for the rejected response (see :func:`critical_token_scores` for the arguments).

    Returns:
        (B, T) weights in [0, 1] (1 = most critical), exactly 0 at masked positions; float32, or float64 for float64
        inputs. Computed as ``−expm1(log s_t)`` under ``torch.no_grad()``.
    """
    log_scores, valid = _log_scores_from_logits(positive_logits, negative_logits, token_ids, mask, beta, chunk_size)
    return torch.where(valid, (-torch.expm1(log_scores)).clamp(min=0.0), 0.0)


@torch.no_grad()
def critical_token_scores_from_hidden(
    positive_hidden: torch.Tensor,
    negative_hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    token_ids: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    beta: float = 1.0,
    lm_head_bias: torch.Tensor | None = None,
    logit_scale: float = 1.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Scores ``s_t`` from the two models' last hidden states and their shared LM head, under ``torch.no_grad()``.

    Logits are ``logit_scale·(h·Wᵀ + b)``; each chunk of positions is projected on its own, as the single
    ``scale·(((1 + β)·h_p − β·h_n)·Wᵀ + b)`` (the head is linear), so no ``(B, T, V)`` tensor is ever built.

    Args:
        positive_hidden: (B, T, H) hidden states of the positive model at the LM head's input (after the final norm);
            position ``t`` predicts ``token_ids[:, t]``.
        negative_hidden: (B, T, H) hidden states of the negative model, aligned the same way.
        lm_head_weight: (V, H) weight of the LM head both models share.
        token_ids: (B, T) integer token ids ``y_t``; values at masked positions are ignored.
        mask: (B, T) bool or 0/1, True/1 for the positions to score; None scores every position.
        beta: the contrast strength ``β ≥ 0`` (1 in the paper).
        lm_head_bias: optional (V,) bias of the LM head.
        logit_scale: factor the model multiplies its logits by (1 for most models).
        chunk_size: positions per chunk; None picks one so that a ``(B, chunk, V)`` float32 slice is ≤ 64 MiB.

    Returns:
        (B, T) scores in [0, 1] (weights are ``1 − scores``), exactly 0 at masked positions; float32, or float64 for
        float64 inputs.
    """
    _check_3d("positive_hidden", positive_hidden, "hidden states (B, T, H)")
    _check_same_shape("negative_hidden", negative_hidden, "positive_hidden", positive_hidden)
    if not isinstance(lm_head_weight, torch.Tensor) or lm_head_weight.dim() != 2:
        raise ValueError(
            f"`lm_head_weight` must be the (V, H) weight of the LM head, got "
            f"{_describe(lm_head_weight)}; pass `model.get_output_embeddings().weight`."
        )
    if not lm_head_weight.is_floating_point():
        raise ValueError(f"`lm_head_weight` must be a floating-point tensor, got dtype {lm_head_weight.dtype}.")
    batch, length, hidden_size = positive_hidden.shape
    vocab = lm_head_weight.size(0)
    if lm_head_weight.size(1) != hidden_size:
        raise ValueError(
            f"`lm_head_weight` has width {lm_head_weight.size(1)} but the hidden states have size {hidden_size}: pass "
            f"the (V, H) weight of the LM head the hidden states feed (not its transpose, not another model's)."
        )
    if lm_head_bias is not None and (not isinstance(lm_head_bias, torch.Tensor) or lm_head_bias.shape != (vocab,)):
        raise ValueError(
            f"`lm_head_bias` must have shape ({vocab},) to match `lm_head_weight`, got {_describe(lm_head_bias)}."
        )
    logit_scale = float(logit_scale)
    if not math.isfinite(logit_scale):
        raise ValueError(f"`logit_scale` must be a finite number, got {logit_scale}.")
    beta = _check_beta(beta)
    dtype = _compute_dtype(positive_hidden, negative_hidden, lm_head_weight)
    weight = lm_head_weight.to(dtype)  # no copy unless the head is bf16/fp16
    bias = None if lm_head_bias is None else lm_head_bias.to(dtype)

    def chunk_logits(start: int, end: int) -> torch.Tensor:
        hidden = positive_hidden[:, start:end].to(dtype, copy=True)
        if beta != 0.0:
            hidden.mul_(1.0 + beta).sub_(negative_hidden[:, start:end], alpha=beta)
        logits = torch.nn.functional.linear(hidden, weight, bias)
        return logits.mul_(logit_scale) if logit_scale != 1.0 else logits

    log_scores, valid = _chunked_log_scores(
        chunk_logits, token_ids, mask, chunk_size, (batch, length), vocab, dtype, positive_hidden.device
    )
    return torch.where(valid, log_scores.exp().clamp(max=1.0), 0.0)


@torch.no_grad()
def _log_scores_from_logits(
    positive_logits: torch.Tensor,
    negative_logits: torch.Tensor,
    token_ids: torch.Tensor,
    mask: torch.Tensor | None,
    beta: float,
    chunk_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log s_t, valid)`` from the two models' logits; ``log s_t`` is 0 where ``valid`` is False."""
    _check_3d("positive_logits", positive_logits, "logits (B, T, V)")
    _check_same_shape("negative_logits", negative_logits, "positive_logits", positive_logits)
    batch, length, vocab = positive_logits.shape
    beta = _check_beta(beta)
    dtype = _compute_dtype(positive_logits, negative_logits)

    fused = positive_logits.dtype == negative_logits.dtype == dtype

    def chunk_logits(start: int, end: int) -> torch.Tensor:
        positive, negative = positive_logits[:, start:end], negative_logits[:, start:end]
        if beta == 0.0:
            return positive.to(dtype, copy=True)
        if fused:  # one pass: lerp(n, p, 1 + β) = n + (1 + β)·(p − n) = (1 + β)·p − β·n
            return torch.lerp(negative, positive, 1.0 + beta)
        # Upcast, then subtract in place. A mixed-dtype op makes an upcast copy of its other operand, so the negative
        # logits go in blocks of whole rows (at most _UPCAST_BLOCK_ELEMENTS elements, or one row) to bound that copy.
        combined = positive.to(dtype, copy=True).mul_(1.0 + beta)
        rows = max(1, _UPCAST_BLOCK_ELEMENTS // vocab)
        for b in range(batch):
            for row in range(0, end - start, rows):
                combined[b, row : row + rows].sub_(negative[b, row : row + rows], alpha=beta)
        return combined

    return _chunked_log_scores(
        chunk_logits, token_ids, mask, chunk_size, (batch, length), vocab, dtype, positive_logits.device
    )


def _chunked_log_scores(
    chunk_logits: Callable[[int, int], torch.Tensor],
    token_ids: torch.Tensor,
    mask: torch.Tensor | None,
    chunk_size: int | None,
    shape: tuple[int, int],
    vocab: int,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs ``chunk_logits(start, end)`` (a fresh (B, end − start, V) tensor of combined logits, modified in place
    here) over the sequence and returns ``log s_t`` at ``token_ids`` (0 where masked) and the (B, T) valid mask."""
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"`chunk_size` must be an int >= 1 or None (automatic), got {chunk_size!r}.")
    if not isinstance(token_ids, torch.Tensor) or tuple(token_ids.shape) != shape:
        raise ValueError(
            f"`token_ids` must have shape {shape} (batch, length of the logits), got {_describe(token_ids)}."
        )
    if token_ids.is_floating_point() or token_ids.is_complex() or token_ids.dtype == torch.bool:
        raise ValueError(
            f"`token_ids` must be an integer tensor, got dtype {token_ids.dtype}; convert with `.long()`."
        )
    if mask is None:
        valid = torch.ones(shape, dtype=torch.bool, device=device)
    elif not isinstance(mask, torch.Tensor) or tuple(mask.shape) != shape:
        raise ValueError(f"`mask` must have shape {shape} like `token_ids`, or be None, got {_describe(mask)}.")
    else:
        valid = mask.to(device=device) != 0
    token_ids = token_ids.to(device=device, dtype=torch.long)
    out_of_range = valid & ((token_ids < 0) | (token_ids >= vocab))
    if out_of_range.any():
        bad = token_ids[out_of_range]
        raise ValueError(
            f"`token_ids` must be in [0, {vocab}) (the vocabulary of the logits) at every unmasked position, got "
            f"{bad.min().item()}..{bad.max().item()}; set `mask` to 0 at padding/ignored positions."
        )
    safe_ids = token_ids.masked_fill(~valid, 0).unsqueeze(-1)

    batch, length = shape
    if chunk_size is None:
        chunk_size = max(1, _AUTO_CHUNK_BYTES // max(1, 4 * batch * vocab))  # 4 bytes: float32
    log_scores = torch.zeros(shape, dtype=dtype, device=device)
    for start in range(0, length, chunk_size):
        end = min(start + chunk_size, length)
        if not valid[:, start:end].any():
            continue
        logits = chunk_logits(start, end)  # (B, c, V), owned: normalised in place
        picked = logits.gather(-1, safe_ids[:, start:end]).squeeze(-1)
        shift, top = logits.max(dim=-1, keepdim=True)
        shift = torch.where(torch.isinf(shift), 0.0, shift)
        # log s = (z_y − m) − log(1 + Σ_{v ≠ top} exp(z_v − m)), m = max_v z_v: subtracting m first keeps large
        # logits exact, and log1p of the rest keeps 1 − s accurate when s is close to 1.
        rest = logits.sub_(shift).exp_().scatter_(-1, top, 0.0).sum(dim=-1)
        log_scores[:, start:end] = (picked - shift.squeeze(-1)) - rest.log1p_()
        del logits  # freed before the next chunk is built: one slice alive at a time
    return log_scores.masked_fill_(~valid, 0.0), valid


def _check_beta(beta: float) -> float:
    try:
        value = float(beta)
    except (TypeError, ValueError):
        value = math.nan
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(
            f"`beta` must be a finite number >= 0 (1 in the paper, 0 = positive model alone), got {beta!r}."
        )
    return value


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(tensor.dtype == torch.float64 for tensor in tensors) else torch.float32


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__}"


def _check_3d(name: str, tensor: torch.Tensor, what: str) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
        raise ValueError(f"`{name}` must be {what}, got {_describe(tensor)}; add a batch dimension for one sequence.")
    if not tensor.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor, got dtype {tensor.dtype}.")


def _check_same_shape(name: str, tensor: torch.Tensor, reference_name: str, reference: torch.Tensor) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.shape != reference.shape:
        raise ValueError(
            f"`{name}` must have the same shape as `{reference_name}` {tuple(reference.shape)} (both models scored on "
            f"the same tokens, aligned the same way), got {_describe(tensor)}."
        )
    if not tensor.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor, got dtype {tensor.dtype}.")


def entropy_modulation(
    entropies: torch.Tensor,
    mask: torch.Tensor,
    *,
    k: float = 1.0,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""EMPG's self-calibrating scale per token: ``g_t = exp(−k·H̃_t) / mean_{valid} exp(−k·H̃)`` (B, T).

    Entropy-Modulated Policy Gradients (Wang et al. 2025, arXiv 2509.09265) scale the advantage of each step by
    ``g(H)``: confident steps (low entropy) get ``g > 1``, uncertain ones ``g < 1``, and the mean over the batch is 1.
    ``H̃ = (H − min H) / (max H − min H + 1e-8)`` is min–max normalised over every valid token of the batch. This is
    ``token_weighting="entropy_token_scale"``: each token is a step and only the scale is applied, without EMPG's
    future-clarity bonus and final re-centring (the weights multiply group advantages, so a zero-advantage group stays
    at zero). EMPG as the paper defines it (steps, bonus, re-centring) is :func:`trl_reasoning.empg.empg_advantages`.

    Args:
        entropies: (B, T) per-token entropies of the policy (detached).
        mask: (B, T) 1 on completion tokens; masked positions get weight 0.
        k: EMPG's ``k > 0`` (the paper fixes 1).
        gather: for multi-process batches, a function that concatenates a 1-D tensor across processes (e.g.
            ``accelerator.gather``), so min, max and mean are taken over the global batch.
    """
    if entropies.shape != mask.shape:
        raise ValueError(f"entropies {tuple(entropies.shape)} and mask {tuple(mask.shape)} must have the same shape.")
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"k={k} must be a finite number > 0 (EMPG uses 1).")
    gather = gather or (lambda tensor: tensor)
    valid = mask.bool()
    values = entropies.detach().to(torch.float64 if entropies.dtype == torch.float64 else torch.float32)
    inf = torch.tensor(float("inf"), dtype=values.dtype, device=values.device)
    local_range = torch.stack([torch.where(valid, values, inf).min(), -torch.where(valid, values, -inf).max()])
    low, neg_high = gather(local_range).view(-1, 2).min(dim=0).values
    if not torch.isfinite(low):  # no valid token anywhere
        return torch.zeros_like(values)
    normalized = (torch.where(valid, values, low) - low) / (-neg_high - low + 1e-8)  # padding may hold NaN
    scale = torch.where(valid, torch.exp(-k * normalized), torch.zeros_like(normalized))
    total, count = gather(torch.stack([scale.sum(), valid.sum().to(values.dtype)])).view(-1, 2).sum(dim=0)
    return scale / (total / count)

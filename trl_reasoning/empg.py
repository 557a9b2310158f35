r"""EMPG: Entropy-Modulated Policy Gradients (Wang et al. 2025, arXiv 2509.09265) as an advantage transformation.

EMPG keeps the base method's trajectory advantage ``A(τ_i)`` (GRPO's or DAPO's group-normalised outcome) and
reshapes it per *step* of the trajectory with the rollout policy's uncertainty. A step is one agent turn (multi-turn
completions) or one reasoning step (single-turn completions split at a delimiter); its entropy ``H_{i,t}`` is the mean
full-vocabulary entropy of its tokens under the rollout policy, detached. Over every step of the batch::

    H̃_{i,t}      = (H_{i,t} − min H) / (max H − min H + 1e-8)                min, max over all steps of the batch
    g(H_{i,t})   = exp(−k·H̃_{i,t}) / mean_{all steps} exp(−k·H̃)             self-calibrating scale, batch mean 1
    f(H_{i,t+1}) = exp(−k_f·H̃_{i,t+1})                                       future clarity of the next step
    A_mod(i,t)   = g(H_{i,t})·A(τ_i) + ζ·f(H_{i,t+1})                         no bonus on a trajectory's last step
    A_final(i,t) = A_mod(i,t) − mean_{all steps} A_mod                        zero mean over the batch's steps

and every token of step ``t`` gets ``A_final(i,t)``. Confident steps of a successful trajectory are amplified
(``g > 1``, ``A > 0``), confident steps of a failed one are penalised harder, uncertain steps are damped, and a step
that leads to a confident next step gets a bonus. The paper fixes ``k = k_f = 1``; the authors' pseudocode on the
project page (empgseed-seed.github.io, ``compute_empg_advantage``) uses ``ζ = 0.1``.

Implementation details:

1. Steps are given per token as ``step_ids`` (B, T): the step's index inside its completion, ``-1`` for tokens that
   belong to no step (tool output, padding, dropped samples). Indices need not be contiguous: the "next step" of a
   step is the next step of the same completion that has a token. Steps with no token are skipped everywhere.
2. The batch is the global generation batch: min, max and both means are taken over the steps of every process,
   through a ``gather`` callable (``accelerator.gather``), so 1 and N processes give the same advantages.
3. Means are over steps (each step counts once, whatever its length), as in the authors' pseudocode; ``g`` is divided
   by the exact mean (the pseudocode adds 1e-8 to it, a difference below 1e-8 relative).
4. A group whose trajectory advantages are all 0 (all correct or all wrong) gets only the bonus minus the batch mean,
   so EMPG can train on groups GRPO ignores; the paper's formulas do this and so do we.
5. Vectorised: per-step sums are one ``scatter_add`` into a (B, S) table, S the largest step index plus one;
   the next step is found with a reversed cumulative minimum. No Python loop over samples or steps.

:func:`step_ids_from_delimiter` and :func:`step_ids_from_turns` build ``step_ids`` from completion token ids (with
a tokenizer) or from TRL's ``tool_mask``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch


__all__ = [
    "EMPGOutput",
    "empg_advantages",
    "step_ids_from_delimiter",
    "step_ids_from_turns",
    "token_pieces",
]

_EPS = 1e-8  # the paper's ε in the min-max normalisation
_REPLACEMENT = "\ufffd"  # what a decoder shows for an incomplete UTF-8 character


class EMPGOutput(NamedTuple):
    """What :func:`empg_advantages` returns.

    Attributes:
        advantages: (B, T) ``A_final`` of each token's step; 0 on tokens outside every step.
        step_entropies: (B, S) mean token entropy ``H`` of each step (0 where the step has no token).
        step_advantages: (B, S) ``A_final`` per step (0 where the step has no token).
        steps: (B, S) bool, True where the step has at least one token.
        stats: global statistics as 0-d tensors: ``steps`` (number of steps in the batch), ``completions`` (number of
            completions with a step), ``entropy_mean``, ``entropy_min``, ``entropy_max`` (over steps), ``scale_min``,
            ``scale_max`` (range of ``g``), ``bonus_mean`` (mean ``ζ·f`` over steps that have a next step; 0 if none),
            ``shift`` (the mean of ``A_mod`` subtracted by the re-centring).
    """

    advantages: torch.Tensor
    step_entropies: torch.Tensor
    step_advantages: torch.Tensor
    steps: torch.Tensor
    stats: dict[str, torch.Tensor]


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {bound}, got {value!r}.")
    return number


@torch.no_grad()
def empg_advantages(
    entropies: torch.Tensor,
    step_ids: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    k: float = 1.0,
    future_k: float = 1.0,
    zeta: float = 0.1,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EMPGOutput:
    r"""EMPG's per-token advantages ``A_final = g(H_t)·A(τ) + ζ·f(H_{t+1}) − mean`` (Wang et al. 2025, arXiv 2509.09265).

    See the module docstring for the formula. Statistics (min/max of the step entropies, mean of ``exp(−k·H̃)``, mean
    of ``A_mod``) are over every step of the batch, all processes included when ``gather`` is given.

    Args:
        entropies: (B, T) per-token entropies of the rollout policy (detached; NaN is fine outside steps).
        step_ids: (B, T) integer step index of each token inside its completion, ``-1`` for tokens in no step.
        advantages: (B,) trajectory advantages ``A(τ_i)`` of the base method.
        mask: optional (B, T) bool or 0/1; tokens where it is 0 belong to no step (padding, tool output, dropped
            samples).
        k: ``k > 0`` of the self-calibrating scale ``exp(−k·H̃)`` (paper: 1).
        future_k: ``k_f > 0`` of the future-clarity term ``exp(−k_f·H̃)`` (paper: 1).
        zeta: ``ζ ≥ 0``, weight of the future-clarity bonus (authors' pseudocode: 0.1; 0 turns the bonus off).
        gather: for multi-process batches, a function that concatenates a 1-D tensor across processes (e.g.
            ``accelerator.gather``); None for one process.

    Returns:
        :class:`EMPGOutput`; ``advantages`` is (B, T), float64 for float64 entropies, else float32.
    """
    k = _check_positive("k", k)
    future_k = _check_positive("future_k", future_k)
    zeta = _check_positive("zeta", zeta, allow_zero=True)
    if not isinstance(entropies, torch.Tensor) or entropies.dim() != 2:
        raise ValueError(f"`entropies` must be a (B, T) tensor, got {_describe(entropies)}.")
    if not isinstance(step_ids, torch.Tensor) or step_ids.shape != entropies.shape:
        raise ValueError(
            f"`step_ids` must have the shape of `entropies` {tuple(entropies.shape)}, got {_describe(step_ids)}."
        )
    if step_ids.is_floating_point() or step_ids.dtype == torch.bool:
        raise ValueError(f"`step_ids` must be an integer tensor (-1 = no step), got dtype {step_ids.dtype}.")
    batch, _ = entropies.shape
    if not isinstance(advantages, torch.Tensor) or advantages.shape != (batch,):
        raise ValueError(
            f"`advantages` must be the ({batch},) trajectory advantages (one per completion), got "
            f"{_describe(advantages)}."
        )
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.shape != entropies.shape):
        raise ValueError(f"`mask` must have the shape of `entropies` {tuple(entropies.shape)}, got {_describe(mask)}.")
    gather = gather or _identity

    dtype = torch.float64 if entropies.dtype == torch.float64 else torch.float32
    device = entropies.device
    step_ids = step_ids.to(device=device, dtype=torch.long)
    valid = step_ids >= 0
    if mask is not None:
        valid &= mask.to(device) != 0
    num_slots = int(step_ids[valid].max().item()) + 1 if valid.any() else 1
    index = torch.where(valid, step_ids, 0)
    values = torch.where(valid, entropies.detach().to(dtype), 0.0)  # NaN/inf outside steps never reach a sum
    sums = torch.zeros(batch, num_slots, dtype=dtype, device=device).scatter_add_(1, index, values)
    counts = torch.zeros(batch, num_slots, dtype=dtype, device=device).scatter_add_(1, index, valid.to(dtype))
    steps = counts > 0
    step_entropies = torch.where(steps, sums / counts.clamp(min=1.0), 0.0)

    # 1. Min-max normalisation over every step of the global batch.
    inf = torch.tensor(math.inf, dtype=dtype, device=device)
    local_range = torch.stack(
        [torch.where(steps, step_entropies, inf).min(), -torch.where(steps, step_entropies, -inf).max()]
    )
    low, neg_high = gather(local_range).view(-1, 2).min(dim=0).values
    if not torch.isfinite(low):  # no step anywhere in the batch
        zeros = torch.zeros(entropies.shape, dtype=dtype, device=device)
        empty = torch.zeros(batch, num_slots, dtype=dtype, device=device)
        nothing = torch.zeros((), dtype=dtype, device=device)
        stats = {name: nothing for name in _STAT_NAMES}
        return EMPGOutput(zeros, empty, empty, steps, stats)
    high = -neg_high
    width = high - low + _EPS
    normalized = torch.where(steps, (step_entropies - low) / width, 0.0)

    # 2. Self-calibrating scale g, divided by its mean over the batch's steps.
    raw_scale = torch.where(steps, torch.exp(-k * normalized), 0.0)
    raw_total, num_steps, num_completions = (
        gather(torch.stack([raw_scale.sum(), steps.sum().to(dtype), steps.any(dim=1).sum().to(dtype)]))
        .view(-1, 3)
        .sum(dim=0)
    )
    raw_mean = raw_total / num_steps
    scale = raw_scale / raw_mean

    # 3. Future clarity of the next step that has a token (none for a completion's last step).
    clarity = torch.where(steps, torch.exp(-future_k * normalized), 0.0)
    slots = torch.arange(num_slots, device=device).expand(batch, num_slots)
    own = torch.where(steps, slots, num_slots)  # num_slots = "no step here"
    after = torch.cat([own[:, 1:], torch.full((batch, 1), num_slots, device=device, dtype=own.dtype)], dim=1)
    next_slot = after.flip(1).cummin(dim=1).values.flip(1)  # smallest existing slot strictly after each slot
    has_next = steps & (next_slot < num_slots)
    bonus = torch.where(has_next, zeta * clarity.gather(1, next_slot.clamp(max=num_slots - 1)), 0.0)

    # 4. Modulated advantage, then 5. zero mean over the batch's steps.
    modulated = torch.where(steps, scale * advantages.to(device=device, dtype=dtype).unsqueeze(1) + bonus, 0.0)
    modulated_total, bonus_total, bonus_count = (
        gather(torch.stack([modulated.sum(), bonus.sum(), has_next.sum().to(dtype)])).view(-1, 3).sum(dim=0)
    )
    shift = modulated_total / num_steps
    step_advantages = torch.where(steps, modulated - shift, 0.0)
    token_advantages = torch.where(valid, step_advantages.gather(1, index), 0.0)

    entropy_total = gather(torch.where(steps, step_entropies, 0.0).sum().reshape(1)).sum()
    stats = {
        "steps": num_steps,
        "completions": num_completions,
        "entropy_mean": entropy_total / num_steps,
        "entropy_min": low,
        "entropy_max": high,
        "scale_min": torch.exp(-k * (high - low) / width) / raw_mean,  # g is decreasing in H: its range is known
        "scale_max": 1.0 / raw_mean,
        "bonus_mean": bonus_total / bonus_count.clamp(min=1.0),
        "shift": shift,
    }
    return EMPGOutput(token_advantages, step_entropies, step_advantages, steps, stats)


_STAT_NAMES = (
    "steps",
    "completions",
    "entropy_mean",
    "entropy_min",
    "entropy_max",
    "scale_min",
    "scale_max",
    "bonus_mean",
    "shift",
)


def step_ids_from_turns(mask: torch.Tensor, tool_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Step index per token for multi-turn completions: one step per assistant turn.

    TRL's tool loop (and a ``rollout_func``'s ``env_mask``) marks model tokens with ``tool_mask = 1`` and the tool or
    environment output appended between turns with 0, so a turn is a maximal run of model tokens. Without a
    ``tool_mask`` the whole completion is one turn.

    Args:
        mask: (B, T) completion mask (1 on completion tokens).
        tool_mask: optional (B, T) 1 on model tokens, 0 on tool/environment output.

    Returns:
        (B, T) long tensor: the turn's index (counting from 0 at the completion's first turn), -1 outside turns.
    """
    valid = mask != 0
    if tool_mask is None:
        return torch.where(valid, 0, -1).long()
    if tool_mask.shape != mask.shape:
        raise ValueError(f"`tool_mask` {tuple(tool_mask.shape)} must have the shape of `mask` {tuple(mask.shape)}.")
    model = tool_mask.to(mask.device) != 0
    valid &= model
    turn_start = model.clone()
    turn_start[:, 1:] &= ~model[:, :-1]  # a model token right after a tool token (or first) starts a turn
    return torch.where(valid, turn_start.long().cumsum(dim=1) - 1, -1)


def token_pieces(tokenizer: Any, sequences: Sequence[Sequence[int]]) -> list[list[str]]:
    """The text each token adds to its sequence's decoded text, with special tokens skipped (they add "").

    A token decoded alone can lose context (SentencePiece drops a leading space, byte-level BPE splits a character
    over tokens), so the pieces come from incremental decoding, as inference servers stream text: keep an anchor at
    the last token where the decoded text ended on a whole character, decode from the anchor with and without the new
    token and take the difference; while the text ends in U+FFFD (a character still incomplete) the token adds "" and
    the character becomes the piece of the token that completes it. The pieces concatenate to the decoded text. All
    sequences advance together, one ``decode_batch`` call per position (the fast tokenizer's Rust decoder, without
    clean-up of spaces; ``batch_decode`` for other tokenizers).
    """
    sequences = [list(ids) for ids in sequences]
    decode = _batch_decoder(tokenizer)
    pieces: list[list[str]] = [[] for _ in sequences]
    anchor = [0] * len(sequences)  # decoding restarts here: the text up to `read` ended on a whole character
    read = [0] * len(sequences)
    for j in range(max((len(ids) for ids in sequences), default=0)):
        active = [b for b, ids in enumerate(sequences) if j < len(ids)]
        windows = []
        for b in active:
            windows.append(sequences[b][anchor[b] : read[b]])
            windows.append(sequences[b][anchor[b] : j + 1])
        texts = decode(windows)
        for position, b in enumerate(active):
            before, after = texts[2 * position], texts[2 * position + 1]
            if len(after) > len(before) and not after.endswith(_REPLACEMENT):
                pieces[b].append(after[len(before) :])
                anchor[b], read[b] = read[b], j + 1
            else:
                pieces[b].append("")
    return pieces


def _batch_decoder(tokenizer: Any) -> Callable[[list[list[int]]], list[str]]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return lambda windows: backend.decode_batch(windows, skip_special_tokens=True)
    return lambda windows: tokenizer.batch_decode(
        windows, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )


def step_ids_from_delimiter(
    completion_ids: torch.Tensor,
    mask: torch.Tensor,
    tokenizer: Any,
    delimiter: str = "\n\n",
    tool_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Step index per token for single-turn reasoning: steps end at each run of ``delimiter`` in the decoded text.

    The completion's masked tokens are decoded piece by piece (:func:`token_pieces`) and the text is searched for runs
    of the delimiter (``"\n\n\n\n"`` is one boundary for ``"\n\n"``). The token that holds the run's last character
    closes its step, so a delimiter merged with the text before it (``".\n\n"``, one token in byte-level BPE
    tokenizers) stays with that step, and a token that merges the delimiter with the text after it goes to the earlier
    step. A run only splits when non-whitespace text lies both before it and after the closing token, so leading or
    trailing delimiters (``"...\n\n<|im_end|>"``) never make a step of their own. With a ``tool_mask``, a new step
    also starts at every assistant turn and tool output tokens belong to no step. Special tokens decode to no text,
    so a delimiter that is a special token is never found.

    Args:
        completion_ids: (B, T) completion token ids.
        mask: (B, T) 1 on completion tokens (padding 0); only these are decoded.
        tokenizer: the trainer's tokenizer (a processor's ``.tokenizer``).
        delimiter: the non-empty step separator (default a blank line).
        tool_mask: optional (B, T) 1 on model tokens, 0 on tool output.

    Returns:
        (B, T) long tensor: step index from 0 (indices may skip numbers), -1 outside steps.
    """
    if not isinstance(delimiter, str) or not delimiter:
        raise ValueError(f"`delimiter` must be a non-empty string (e.g. '\\n\\n'), got {delimiter!r}.")
    if completion_ids.shape != mask.shape:
        raise ValueError(
            f"`completion_ids` {tuple(completion_ids.shape)} and `mask` {tuple(mask.shape)} must have the same shape."
        )
    valid = mask != 0
    ids_cpu, valid_cpu = completion_ids.cpu(), valid.cpu()  # one device-to-host copy, not one per row
    rows = [ids_cpu[b][valid_cpu[b]].tolist() for b in range(completion_ids.size(0))]
    pattern = re.compile(f"(?:{re.escape(delimiter)})+")
    closes = torch.zeros(completion_ids.shape, dtype=torch.bool)
    for b, pieces in enumerate(token_pieces(tokenizer, rows)):
        text = "".join(pieces)
        content_start, content_end = len(text) - len(text.lstrip()), len(text.rstrip())
        ends, total = [], 0
        for piece in pieces:
            total += len(piece)
            ends.append(total)
        positions = valid_cpu[b].nonzero().flatten().tolist()
        for match in pattern.finditer(text):
            if match.start() <= content_start:
                continue
            token = _token_at(ends, match.end() - 1)
            if ends[token] < content_end:
                closes[b, positions[token]] = True
    closes = closes.to(mask.device)
    starts = torch.zeros_like(closes)
    starts[:, 1:] = closes[:, :-1]
    if tool_mask is not None:
        if tool_mask.shape != mask.shape:
            raise ValueError(
                f"`tool_mask` {tuple(tool_mask.shape)} must have the shape of `mask` {tuple(mask.shape)}."
            )
        model = tool_mask.to(mask.device) != 0
        starts[:, 1:] |= model[:, 1:] & ~model[:, :-1]
        valid &= model
    return torch.where(valid, starts.long().cumsum(dim=1), -1)


def _token_at(ends: list[int], char: int) -> int:
    """Index of the token whose text holds character ``char`` (``ends`` are the cumulative end offsets)."""
    low, high = 0, len(ends) - 1
    while low < high:  # first token with end > char
        middle = (low + high) // 2
        if ends[middle] > char:
            high = middle
        else:
            low = middle + 1
    return low


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__

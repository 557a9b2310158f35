"""``dropped_samples="remove"``: train on the kept samples only, in fewer optimizer steps, as the official PSR/NSR code.

The official code of PSR/NSR (Zhu et al. 2025, arXiv 2506.01347; TianHongZXY/RLVR-Decomposed, a verl fork) takes
the dropped samples out of the rollout batch before the actor update, so the kept ones are cut into
``ppo_mini_batch_size`` mini-batches and the number of optimizer steps per rollout shrinks with the kept share; a
last partial mini-batch is scaled by its share of a full one. In TRL terms a generation batch is split into
``steps_per_generation`` micro-batches, ``gradient_accumulation_steps`` of them per optimizer step. This module packs
the kept samples, in TRL's shuffled order and across all processes, into the front of those micro-batches, so that
the first ``ceil(K / M)`` optimizer steps (``K`` kept samples in the global generation batch, ``M`` samples per
optimizer step over all processes) hold every kept sample and the others hold none (the trainer skips them).
"""

from __future__ import annotations

import math
from typing import Any

import torch


# Keys whose second dimension is the prompt, left-padded by TRL; every other (B, T) key is completion-aligned and
# right-padded.
_LEFT_PADDED = ("prompt_ids", "prompt_mask")
# Keys that mark which tokens are trained on: zeroed on the filler rows that pad a process's share.
_LOSS_MASKS = ("completion_mask", "tool_mask")


def real_optimizer_steps(kept: int, samples_per_step: int, steps_per_pass: int) -> int:
    """Optimizer steps of one pass over a generation batch that hold at least one kept sample: ``ceil(K / M)``."""
    return min(steps_per_pass, math.ceil(kept / samples_per_step))


def _pad_to(value: torch.Tensor, width: int, pad_value, left: bool) -> torch.Tensor:
    missing = width - value.size(1)
    if missing == 0:
        return value
    pad = value.new_full((value.size(0), missing, *value.shape[2:]), pad_value)
    return torch.cat([pad, value] if left else [value, pad], dim=1)


def _all_gather_rows(value: torch.Tensor, counts: list[int], pad_value, left: bool) -> torch.Tensor:
    """All processes' rows of ``value`` (``counts[p]`` rows on process ``p``), concatenated in process order."""
    world = len(counts)
    widths = None
    if value.dim() >= 2:
        width = torch.tensor([value.size(1)], device=value.device)
        gathered = [torch.empty_like(width) for _ in range(world)]
        torch.distributed.all_gather(gathered, width)
        widths = max(int(w) for w in gathered)
        value = _pad_to(value, widths, pad_value, left)
    dtype = value.dtype
    if dtype == torch.bool:  # gloo cannot all-gather booleans
        value = value.to(torch.uint8)
    rows = max(counts)
    padded = value.new_zeros((rows, *value.shape[1:]))
    padded[: value.size(0)] = value
    gathered = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(gathered, padded)
    out = torch.cat([part[:count] for part, count in zip(gathered, counts, strict=True)])
    return out.to(dtype)


def pack_kept_samples(
    batch: dict[str, Any],
    keep: torch.Tensor,
    kept_per_process: list[int],
    process_index: int,
    samples_per_process_step: int,
    pad_token_id: int,
) -> dict[str, Any]:
    """Reorder (and, with several processes, exchange) the rows of a local generation batch so the kept ones come first.

    ``batch`` is this process's generation batch after TRL's shuffle, ``keep`` its rows' keep mask, and
    ``kept_per_process`` the kept count of every process. The kept samples of all processes, in process order and
    each process's shuffled order, are numbered ``g = 0 .. K-1``; sample ``g`` goes to optimizer step ``g // M`` and,
    within it, to process ``(g % M) % P`` (``M`` = ``samples_per_process_step`` × ``P``), so every optimizer step
    holds the same samples whatever the number of processes and each process holds at most one more than another.
    Each process's rows are then its received kept samples followed by filler rows (its own, with the loss masks
    and advantages zeroed) up to its batch size. Scalars (``num_items_in_batch``) are returned unchanged.
    """
    world = len(kept_per_process)
    size = len(keep)
    local_kept = keep.nonzero().flatten()
    if world == 1:
        order = torch.cat([local_kept, (~keep).nonzero().flatten()])
        return {key: _take(value, order) for key, value in batch.items()}

    total = sum(kept_per_process)
    per_step = samples_per_process_step * world
    # Global indices of the kept samples this process receives, in order: steps in turn, dealt round-robin.
    mine = [g for g in range(total) if (g % per_step) % world == process_index]
    received_count = len(mine)
    mine = torch.tensor(mine, dtype=torch.long)
    # Filler rows: this process's own rows (dropped ones first), masked out of the loss.
    filler = torch.cat([(~keep).nonzero().flatten(), local_kept])[: size - received_count].cpu()
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if value is None or (isinstance(value, torch.Tensor) and value.dim() == 0):
            out[key] = value
            continue
        if isinstance(value, torch.Tensor):
            left = key in _LEFT_PADDED
            pad_value = pad_token_id if key in ("prompt_ids", "completion_ids") else 0
            gathered = _all_gather_rows(value[local_kept], kept_per_process, pad_value, left)
            fill = value[filler.to(value.device)]
            if key in _LOSS_MASKS or key == "advantages":
                fill = torch.zeros_like(fill)
            if gathered.dim() >= 2:
                width = max(gathered.size(1), fill.size(1))
                gathered = _pad_to(gathered, width, pad_value, left)
                fill = _pad_to(fill, width, pad_value, left)
            out[key] = torch.cat([gathered[mine.to(gathered.device)], fill])
        else:  # per-sample Python objects (e.g. images split by TRL): exchanged by pickling
            gathered_lists: list[list] = [None] * world  # type: ignore[list-item]
            torch.distributed.all_gather_object(gathered_lists, [value[i] for i in local_kept.tolist()])
            flat = [item for part in gathered_lists for item in part]
            out[key] = [flat[g] for g in mine.tolist()] + [value[i] for i in filler.tolist()]
    return out


def _take(value, order: torch.Tensor):
    if value is None or (isinstance(value, torch.Tensor) and value.dim() == 0):
        return value
    if isinstance(value, torch.Tensor):
        return value[order.to(value.device)]
    return [value[i] for i in order.tolist()]

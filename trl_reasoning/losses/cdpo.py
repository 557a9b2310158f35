r"""cDPO: DPO with token weights on the rejected response (Lin et al. 2024, "Critical Tokens Matter", arXiv 2411.19943).

With per-token log-ratios ``Δ_t = log π_θ(y_t|·) − log π_ref(y_t|·)``, chosen response ``y⁺`` and rejected response
``y⁻`` whose tokens carry the contrastive-estimation weights ``w_t = 1 − s_t``
(:func:`trl_reasoning.token_weights.critical_token_weights`):

* ``form="sequence"`` — the paper's objective, one sigmoid per pair:

      ℓ = −log σ( γ · [ Σ_t Δ⁺_t − Σ_t w_t · Δ⁻_t ] )

* ``form="per_position"`` — the official code's variant (TRL 0.9.6 ``dpo_loss`` kept per position): the chosen and
  rejected tokens at the same completion index are paired and each position gets its own sigmoid,

      ℓ_t = −log σ( γ · [ Δ⁺_t − w_t · Δ⁻_t ] ),

  averaged over the positions where either response has a token (a missing token contributes ``Δ = 0``). The
  official code also averages in the prompt and padding positions (each a constant ``log 2`` with zero gradient);
  leaving them out only changes the loss by a batch-dependent scale.

With every weight 1 the sequence form is exactly DPO's sigmoid loss. Gradients (sequence form, margin ``z``):
``∂ℓ/∂Δ⁺_t = −γ σ(−z)``, ``∂ℓ/∂Δ⁻_t = γ w_t σ(−z)``: a token with weight 0 is left alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


CDPO_FORMS = ("sequence", "per_position")


def cdpo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    rejected_weights: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    *,
    beta: float = 1.0,
    form: str = "sequence",
) -> torch.Tensor:
    """The mean cDPO loss over a batch of pairs (see the module docstring for both forms).

    Args:
        chosen_logratios: (B, T) per-token ``log π_θ − log π_ref`` of the chosen completions.
        rejected_logratios: (B, T') the same for the rejected completions.
        rejected_weights: (B, T') token weights of the rejected completions (``1 − s_t``; 1 everywhere is DPO).
        chosen_mask: 1 on the chosen completion's tokens, 0 on padding (the shape of ``chosen_logratios``).
        rejected_mask: the same for the rejected completions.
        beta: γ, DPO's temperature (the paper uses 1.0; the official code 0.1).
        form: ``"sequence"`` (paper) or ``"per_position"`` (official code); for the latter ``T == T'``, the two
            completions aligned by token index.
    """
    if form not in CDPO_FORMS:
        raise ValueError(f"form={form!r} is not a cDPO form. Valid values: {list(CDPO_FORMS)}.")
    if chosen_logratios.shape != chosen_mask.shape:
        raise ValueError(
            f"chosen_logratios {tuple(chosen_logratios.shape)} and chosen_mask {tuple(chosen_mask.shape)} must match."
        )
    if not (rejected_logratios.shape == rejected_weights.shape == rejected_mask.shape):
        raise ValueError(
            f"rejected_logratios {tuple(rejected_logratios.shape)}, rejected_weights {tuple(rejected_weights.shape)} "
            f"and rejected_mask {tuple(rejected_mask.shape)} must have the same shape."
        )
    chosen = chosen_logratios * chosen_mask
    rejected = rejected_logratios * rejected_weights * rejected_mask
    if form == "sequence":
        margin = chosen.sum(dim=1) - rejected.sum(dim=1)
        return -F.logsigmoid(beta * margin).mean()
    if chosen.shape != rejected.shape:
        raise ValueError(
            "form='per_position' pairs the chosen and rejected tokens by index: pad both to the same width "
            f"(got {tuple(chosen.shape)} and {tuple(rejected.shape)})."
        )
    positions = (chosen_mask.bool() | rejected_mask.bool()).to(chosen.dtype)
    per_position = -F.logsigmoid(beta * (chosen - rejected))
    return (per_position * positions).sum() / positions.sum().clamp(min=1)

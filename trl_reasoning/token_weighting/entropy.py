r"""Entropy-modulated token weightings (Wang et al. 2025, arXiv 2509.09265): ``"empg"`` and ``"entropy_token_scale"``.

``"empg"`` is EMPG as the paper defines it (:func:`trl_reasoning.empg.empg_advantages`): per step,
``g(H_t)·A_i + ζ·f(H_{t+1})``, re-centred to zero mean over the batch's steps. ``"entropy_token_scale"`` is EMPG's
scale alone with every token a step, ``A_i · g(H_t)`` (:func:`trl_reasoning.token_weights.entropy_modulation`). Both
read the rollout policy's per-token ``entropies`` (one no-grad forward, the ``entropies`` input provider).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..empg import empg_advantages, step_ids_from_delimiter, step_ids_from_turns
from ..papers import EMPG
from ..parameters import MethodParams, at_least, greater_than, param
from ..token_weights import entropy_modulation
from .base import TokenWeightingResult, register_token_weighting


__all__ = ["EMPGParams", "EntropyScaleParams", "empg_weighting", "entropy_token_scale_weighting"]

EMPG_STEPS = ("auto", "turns", "delimiter")
_PAGE = "methods/token-weighting.md"


def _decode_escapes(value: Any) -> Any:
    """``"\\n"`` and ``"\\t"`` typed on a command line become a newline and a tab."""
    if isinstance(value, str) and "\\" in value:
        return value.replace("\\n", "\n").replace("\\t", "\t")
    return value


@dataclass(frozen=True)
class EntropyScaleParams(MethodParams):
    k: float = param(
        1.0,
        config="entropy_modulation_k",
        check=greater_than(0),
        help="EMPG's k > 0 in the scale exp(-k H~), for token_weighting='empg' and 'entropy_token_scale' (the paper "
        "fixes k = 1).",
    )


@dataclass(frozen=True)
class EMPGParams(EntropyScaleParams):
    future_k: float = param(
        1.0,
        config="empg_future_k",
        check=greater_than(0),
        help="token_weighting='empg': k' > 0 in the future-clarity term f = exp(-k' H~) (the paper fixes 1).",
    )
    zeta: float = param(
        0.1,
        config="empg_zeta",
        check=at_least(0),
        help="token_weighting='empg': zeta >= 0, weight of the future-clarity bonus zeta * f(H_{t+1}). 0.1 as in the "
        "authors' pseudocode (empgseed-seed.github.io); 0 turns the bonus off.",
    )
    steps: str = param(
        "auto",
        config="empg_steps",
        choices=EMPG_STEPS,
        help="token_weighting='empg': what a step is. 'turns': one assistant turn (the runs of model tokens between "
        "tool outputs, the paper's agent steps; a single-turn completion is one step). 'delimiter': reasoning steps "
        "ending at each run of empg_step_delimiter (tool outputs also end a step). 'auto' (default): 'turns' when "
        "the batch has tool output (a tool_mask), else 'delimiter'.",
    )
    step_delimiter: str = param(
        "\n\n",
        config="empg_step_delimiter",
        parse=_decode_escapes,
        help="token_weighting='empg': the text that ends a reasoning step (default a blank line). The escapes \\n and "
        "\\t are decoded, so `--empg_step_delimiter '\\n\\n'` on the command line is a blank line.",
    )

    def validate(self) -> None:
        if not (isinstance(self.step_delimiter, str) and self.step_delimiter):
            raise ValueError(
                f"empg_step_delimiter={self.step_delimiter!r} must be a non-empty string, e.g. '\\n\\n' (a blank "
                "line)."
            )


@register_token_weighting(
    "entropy_token_scale",
    display_name="entropy token scale",
    paper=EMPG,
    params=EntropyScaleParams,
    inputs=("advantages", "entropies", "completion_mask", "gather"),
    docs=_PAGE,
    recipe="recipes/configs/entropy_token_scale.yaml",
)
def entropy_token_scale_weighting(
    advantages: torch.Tensor,
    entropies: torch.Tensor,
    completion_mask: torch.Tensor,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    k: float = 1.0,
) -> TokenWeightingResult:
    """``A_{i,t} = A_i · g(H_t)``, ``g = exp(−k·H̃_t) / mean``; logs ``token_weight/entropy_mean``, ``scale_min/max``."""
    gather = gather or (lambda tensor: tensor)
    weights = entropy_modulation(entropies, completion_mask, k=k, gather=gather)
    valid = completion_mask.bool()
    inf = weights.new_tensor(float("inf"))
    stats = torch.stack(
        [
            valid.sum(),
            torch.where(valid, entropies, 0.0).sum(),
            torch.where(valid, weights, inf).min(),
            -torch.where(valid, weights, -inf).max(),
        ]
    ).float()
    gathered = gather(stats).view(-1, 4)
    tokens, entropy_sum = gathered[:, :2].sum(dim=0).tolist()
    low, negative_high = gathered[:, 2:].min(dim=0).values.tolist()
    metrics = {}
    if tokens > 0:
        metrics = {
            "token_weight/entropy_mean": entropy_sum / tokens,
            "token_weight/scale_min": low,
            "token_weight/scale_max": -negative_high,
        }
    return TokenWeightingResult(advantages.unsqueeze(1) * weights, metrics)


@register_token_weighting(
    "empg",
    display_name="EMPG",
    paper=EMPG,
    params=EMPGParams,
    inputs=(
        "advantages",
        "keep",
        "entropies",
        "completion_ids",
        "completion_mask",
        "tool_mask",
        "tokenizer",
        "gather",
    ),
    docs=_PAGE,
    recipe="recipes/configs/empg.yaml",
)
def empg_weighting(
    advantages: torch.Tensor,
    keep: torch.Tensor,
    entropies: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    tool_mask: torch.Tensor | None = None,
    tokenizer: Any = None,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    k: float = 1.0,
    future_k: float = 1.0,
    zeta: float = 0.1,
    steps: str = "auto",
    step_delimiter: str = "\n\n",
) -> TokenWeightingResult:
    """EMPG's step-level advantages of this process's completions; logs ``empg/*``.

    Steps are assistant turns or delimiter-split reasoning steps (``steps``); statistics run over the steps of the
    global batch, dropped samples (``keep`` False) and tool output left out.
    """
    mask = completion_mask * keep.unsqueeze(1).to(completion_mask.dtype)
    if steps == "auto":
        steps = "turns" if tool_mask is not None else "delimiter"
    if steps == "turns":
        step_ids = step_ids_from_turns(mask, tool_mask)
    else:
        step_ids = step_ids_from_delimiter(completion_ids, mask, tokenizer, step_delimiter, tool_mask=tool_mask)
    result = empg_advantages(entropies, step_ids, advantages, mask, k=k, future_k=future_k, zeta=zeta, gather=gather)
    stats = {name: value.item() for name, value in result.stats.items()}
    metrics = {}
    if stats["steps"] > 0:
        metrics["empg/steps_per_completion"] = stats["steps"] / stats["completions"]
        for name in ("entropy_mean", "scale_min", "scale_max", "bonus_mean", "shift"):
            metrics[f"empg/{name}"] = stats[name]
    return TokenWeightingResult(result.advantages.to(advantages.dtype), metrics)

"""Token weightings: per-token advantages ``A_{i,t}`` from each sample's ``A_i``, looked up by name.

``ReasoningGRPOConfig.token_weighting`` picks one (default None: one advantage per completion). A registered
weighting is called with keyword arguments: the inputs it declares (``advantages`` (B,), ``keep``, ``completion_ids``,
``completion_mask``, ``tool_mask``, ``tokenizer``, ``gather``, the generation inputs and any registered provider such
as ``entropies`` or ``critical_token_weights``; see :mod:`trl_reasoning.inputs`) and its parameters. It returns a
(B, T) tensor or a :class:`TokenWeightingResult` (with metrics). TRL's loss and every registered policy loss that
declares ``token_advantages=True`` train on the result.

Built-ins: ``critical_tokens`` (:mod:`.critical_tokens`), ``empg`` and ``entropy_token_scale`` (:mod:`.entropy`).
"""

from ..registry import import_method_modules
from .base import (
    TokenWeighting,
    TokenWeightingResult,
    get_token_weighting,
    register_token_weighting,
    token_weighting_names,
    token_weightings,
)
from .critical_tokens import CriticalTokenParams, critical_token_weighting
from .entropy import EMPG_STEPS, EMPGParams, EntropyScaleParams, empg_weighting, entropy_token_scale_weighting


__all__ = [
    "EMPG_STEPS",
    "CriticalTokenParams",
    "EMPGParams",
    "EntropyScaleParams",
    "TokenWeighting",
    "TokenWeightingResult",
    "critical_token_weighting",
    "empg_weighting",
    "entropy_token_scale_weighting",
    "get_token_weighting",
    "register_token_weighting",
    "token_weighting_names",
    "token_weightings",
]

import_method_modules(__name__, __path__)  # every method module registers itself, new ones included

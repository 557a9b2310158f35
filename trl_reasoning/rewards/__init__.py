"""Reward functions with TRL's signature ``f(completions, **kwargs) -> list[float | None]``.

* :func:`accuracy_reward` / :func:`get_accuracy_reward`: math-answer correctness (exactly 1.0 or 0.0) with
  final-answer extraction, exact and symbolic equivalence, and a hard per-answer timeout (:mod:`.accuracy`).
* :func:`think_format_reward`, :func:`boxed_format_reward` (:mod:`.format`).
* :func:`get_soft_overlong_punishment` and :func:`get_dapo_soft_overlong_punishment` (DAPO's, the latter in DAPO's
  proportions for any limit) and :func:`get_correct_length_reward`, a correctness-gated brevity reward (:mod:`.length`).

Importing this package costs neither torch nor TRL.
"""

from .accuracy import AccuracyReward, accuracy_reward, default_workers, get_accuracy_reward
from .extraction import EXTRACTION_MODES, completion_text, extract_final_answer, extract_gold_answer
from .format import boxed_format_reward, get_think_format_reward, think_format_reward
from .length import get_correct_length_reward, get_dapo_soft_overlong_punishment, get_soft_overlong_punishment


__all__ = [
    "EXTRACTION_MODES",
    "AccuracyReward",
    "accuracy_reward",
    "boxed_format_reward",
    "completion_text",
    "default_workers",
    "extract_final_answer",
    "extract_gold_answer",
    "get_accuracy_reward",
    "get_correct_length_reward",
    "get_dapo_soft_overlong_punishment",
    "get_soft_overlong_punishment",
    "get_think_format_reward",
    "think_format_reward",
]

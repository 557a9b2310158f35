"""Evaluation of sampled answers: pass@k, maj@k and answer lengths (``metrics``), sampling and scoring a model on a
dataset (``evaluate``), and the same during training (``callback``)."""

from .callback import PassAtKCallback
from .evaluate import EvaluationResult, evaluate
from .metrics import (
    maj_at_k,
    mean_length_by_correctness,
    mean_maj_at_k,
    mean_pass_at_k,
    pass_at_k,
)


__all__ = [
    "EvaluationResult",
    "PassAtKCallback",
    "evaluate",
    "maj_at_k",
    "mean_length_by_correctness",
    "mean_maj_at_k",
    "mean_pass_at_k",
    "pass_at_k",
]

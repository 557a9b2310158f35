"""Evaluation of sampled answers: pass@k (``metrics``)."""

from .metrics import mean_pass_at_k, pass_at_k


__all__ = ["mean_pass_at_k", "pass_at_k"]

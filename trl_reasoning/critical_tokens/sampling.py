"""Sample and label completions for contrastive estimation (cDPO step 1, Lin et al. 2024, arXiv 2411.19943).

The paper samples ``N = 64`` completions per training question from the base model, at a temperature chosen so that
each question has about ten wrong answers, and labels them with the final-answer verifier. The sampling itself is
generic and lives in :mod:`trl_reasoning.generation` (:func:`~trl_reasoning.generation.sample_completions`,
:func:`~trl_reasoning.generation.label_completions`); this module re-exports it under its cDPO name. For large runs,
sample with vLLM or TRL and pass the rows to :func:`~trl_reasoning.critical_tokens.select_contrastive_data` directly.
"""

from ..generation import label_completions, sample_completions


__all__ = ["label_completions", "sample_completions"]

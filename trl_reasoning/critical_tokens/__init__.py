"""cDPO ("Critical Tokens Matter", Lin et al. 2024, arXiv 2411.19943): the contrastive-estimation pipeline.

1. :mod:`.sampling` — sample ``N`` completions per question and label them (:func:`sample_completions`).
2. :mod:`.selection` — pick the positive/negative SFT data and the preference pairs (:func:`select_contrastive_data`;
   pure Python, works without torch).
3. :mod:`.adapters` — train the positive and negative models as two LoRA adapters on one shared base with TRL's
   ``SFTTrainer`` (:func:`train_contrastive_adapters`), reload them (:func:`load_contrastive_adapters`).
4. :mod:`.scoring` — score tokens with both adapters (:class:`ContrastiveScorer`) and write the rejected completions'
   weights ``1 − s_t`` into a preference dataset (:func:`score_preference_dataset`) for ``CriticalTokenDPOTrainer``.

Everything but the selection is imported lazily, so importing this package does not import torch, peft or trl.
"""

from importlib import import_module

from .selection import ContrastiveData, select_contrastive_data


_LAZY_NAMES = {
    "NEGATIVE": ".adapters",
    "POSITIVE": ".adapters",
    "active_adapter": ".adapters",
    "adapter_hidden_states": ".adapters",
    "contrastive_lora_config": ".adapters",
    "contrastive_sft_config": ".adapters",
    "lm_head": ".adapters",
    "load_contrastive_adapters": ".adapters",
    "train_contrastive_adapters": ".adapters",
    "sample_completions": ".sampling",
    "ContrastiveScorer": ".scoring",
    "score_preference_dataset": ".scoring",
    "tokenize_preference": ".scoring",
}

__all__ = ["ContrastiveData", "select_contrastive_data", *sorted(_LAZY_NAMES)]


def __getattr__(name):
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)

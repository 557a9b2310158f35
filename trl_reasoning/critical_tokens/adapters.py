"""cDPO's two contrastive models as LoRA adapters "positive" and "negative" on one shared, frozen base model.

cDPO ("Critical Tokens Matter", Lin et al. 2024, arXiv 2411.19943, §3.2) fine-tunes the base model twice — on
correct trajectories (``P_p``) and on wrong ones (``P_n``) — and scores each rejected token by contrasting the two.
Both are LoRA fine-tunes of the same base, so here they live as two named adapters on ONE ``peft.PeftModel``: the
base weights are held in memory once and only the active adapter trains (TRL ``SFTTrainer``, prompt-completion
data, loss on the completion only as in the official code's completion-only collator).

Defaults follow the official code (``src/configs/train_config.py::get_sft_config``, ``src/train/train_sft.py``):
LoRA r=8, alpha=16, dropout 0.1 on gate/up/down projections; lr 3e-4, 1 epoch, batch 6, 100 warmup steps, cosine
schedule. The paper states 1 epoch, lr 3e-4, LoRA (no rank or modules).

:func:`adapter_hidden_states` and :func:`lm_head` expose what a scorer needs: the last hidden state (post final
norm) under a named adapter and the output embedding, so logits can be formed chunk by chunk.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
from collections.abc import Iterator

import torch


__all__ = [
    "NEGATIVE",
    "POSITIVE",
    "active_adapter",
    "adapter_hidden_states",
    "contrastive_lora_config",
    "contrastive_sft_config",
    "lm_head",
    "load_contrastive_adapters",
    "train_contrastive_adapters",
]

POSITIVE = "positive"
NEGATIVE = "negative"
DEFAULT_TARGET_MODULES = ("gate_proj", "up_proj", "down_proj")


def contrastive_lora_config(
    *,
    r: int = 8,
    lora_alpha: int | None = None,
    lora_dropout: float = 0.1,
    target_modules=DEFAULT_TARGET_MODULES,
    **kwargs,
):
    """The LoRA config of the contrastive models (official code: r=8, alpha=2r, dropout 0.1, gate/up/down)."""
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=2 * r if lora_alpha is None else lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
        **kwargs,
    )


def contrastive_sft_config(
    output_dir: str,
    *,
    learning_rate: float = 3e-4,
    num_train_epochs: float = 1,
    per_device_train_batch_size: int = 6,
    warmup_steps: int = 100,
    lr_scheduler_type: str = "cosine",
    **kwargs,
):
    """A `trl.SFTConfig` with the official code's SFT values (paper: 1 epoch, lr 3e-4).

    Runs on CPU (``use_cpu=True``, fp32) when no GPU is available, bf16 where the GPU supports it; no reporting and
    no checkpoints (the adapters are saved by :func:`train_contrastive_adapters`). ``kwargs`` override anything.
    """
    from trl import SFTConfig

    cuda = torch.cuda.is_available()
    defaults = dict(
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        report_to="none",
        save_strategy="no",
        logging_steps=20,
    )
    return SFTConfig(
        output_dir=output_dir,
        learning_rate=learning_rate,
        num_train_epochs=num_train_epochs,
        per_device_train_batch_size=per_device_train_batch_size,
        warmup_steps=warmup_steps,
        lr_scheduler_type=lr_scheduler_type,
        **{**defaults, **kwargs},
    )


def _is_peft_model(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _check_only_adapter_trainable(peft_model, adapter_name: str) -> None:
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    if not trainable or any(f".{adapter_name}." not in name for name in trainable):
        raise RuntimeError(f"Expected exactly the {adapter_name!r} adapter to be trainable, got {trainable[:5]}...")


def train_contrastive_adapters(
    model,
    tokenizer,
    positive,
    negative,
    *,
    output_dir: str,
    lora_config=None,
    sft_config=None,
    callbacks=None,
):
    """Train the "positive" adapter on `positive`, then the "negative" adapter on `negative`, on one base model.

    Args:
        model: a plain transformers causal LM (not a `PeftModel`); LoRA layers are injected into it in place.
        tokenizer: the processing class for `SFTTrainer`.
        positive: a `datasets.Dataset` in a TRL SFT format, e.g. prompt-completion from
            :func:`~trl_reasoning.critical_tokens.select_contrastive_data`.
        negative: the same for the negative adapter.
        output_dir: the adapters are saved to ``output_dir/positive`` and ``output_dir/negative``.
        lora_config: a `peft.LoraConfig` for both adapters (default :func:`contrastive_lora_config`).
        sft_config: a `trl.SFTConfig` for both runs (default :func:`contrastive_sft_config` at
            ``output_dir/sft``); each run writes to ``<sft_config.output_dir>/<adapter>``.
        callbacks: `transformers.TrainerCallback`s passed to both trainers.

    Returns:
        The `PeftModel` with both adapters, in eval mode, every parameter frozen, "positive" active.
    """
    from peft import get_peft_model
    from trl import SFTTrainer

    if _is_peft_model(model):
        raise ValueError("`model` is already a PeftModel; pass the plain base model.")
    lora_config = lora_config if lora_config is not None else contrastive_lora_config()
    sft_config = sft_config if sft_config is not None else contrastive_sft_config(os.path.join(output_dir, "sft"))

    peft_model = get_peft_model(model, copy.deepcopy(lora_config), adapter_name=POSITIVE)
    peft_model.add_adapter(NEGATIVE, copy.deepcopy(lora_config))
    for adapter_name, dataset in ((POSITIVE, positive), (NEGATIVE, negative)):
        peft_model.set_adapter(adapter_name)  # active and the only trainable adapter; the base stays frozen
        _check_only_adapter_trainable(peft_model, adapter_name)
        args = dataclasses.replace(sft_config, output_dir=os.path.join(sft_config.output_dir, adapter_name))
        trainer = SFTTrainer(
            model=peft_model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        trainer.train()
        del trainer
        peft_model.save_pretrained(output_dir, selected_adapters=[adapter_name])  # -> output_dir/<adapter_name>
    return _ready_for_scoring(peft_model)


def _ready_for_scoring(peft_model):
    peft_model.set_adapter(POSITIVE)
    peft_model.requires_grad_(False)
    return peft_model.eval()


def load_contrastive_adapters(model, positive_path: str, negative_path: str):
    """Load saved "positive" and "negative" adapters onto one base `model`; eval mode, frozen, "positive" active."""
    from peft import PeftModel

    if _is_peft_model(model):
        model.load_adapter(positive_path, adapter_name=POSITIVE)
        peft_model = model
    else:
        peft_model = PeftModel.from_pretrained(model, positive_path, adapter_name=POSITIVE)
    peft_model.load_adapter(negative_path, adapter_name=NEGATIVE)
    return _ready_for_scoring(peft_model)


@contextlib.contextmanager
def active_adapter(peft_model, adapter_name: str | None) -> Iterator:
    """Run the block with `adapter_name` active (``None``: adapters disabled, i.e. the base model) in eval mode.

    Restores the previously active adapter, every parameter's ``requires_grad`` and the train/eval mode afterwards.
    """
    if adapter_name is not None and adapter_name not in peft_model.peft_config:
        raise ValueError(f"Unknown adapter {adapter_name!r}; loaded: {sorted(peft_model.peft_config)}.")
    previous = peft_model.active_adapter
    requires_grad = {name: p.requires_grad for name, p in peft_model.named_parameters()}
    was_training = peft_model.training
    peft_model.eval()
    try:
        if adapter_name is None:
            with peft_model.disable_adapter():
                yield peft_model
        else:
            peft_model.set_adapter(adapter_name)
            yield peft_model
    finally:
        peft_model.set_adapter(previous)
        for name, p in peft_model.named_parameters():
            p.requires_grad_(requires_grad[name])
        peft_model.train(was_training)


def adapter_hidden_states(peft_model, adapter_name: str | None, input_ids, attention_mask=None) -> torch.Tensor:
    """The decoder's last hidden state (B, T, H), post final norm, under `adapter_name` (``None``: base), no grad.

    ``hidden @ weight.T (+ bias)`` with :func:`lm_head` gives the model's logits.
    """
    with active_adapter(peft_model, adapter_name), torch.no_grad():
        decoder = peft_model.get_base_model().get_decoder()
        outputs = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return outputs.last_hidden_state


def lm_head(peft_model) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(weight, bias)`` of the output embedding (shared by all adapters; an adapted LM head is refused)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    head = peft_model.get_output_embeddings()
    if isinstance(head, BaseTunerLayer):
        raise ValueError("The LM head carries an adapter; cDPO's contrastive adapters must leave `lm_head` alone.")
    return head.weight, head.bias

"""The tokenizer and policy a recipe trains: a hub model, or the embedded tiny model warmed up on its task."""

from __future__ import annotations

import json
from pathlib import Path

from ..generation import greedy_accuracy
from .arguments import DatasetArguments


WARMUP_DIR = "warmup"


def load_tokenizer(model_args, chat_template_path: str | None = None):
    """The model's tokenizer (the embedded character tokenizer without a model), with ``pad_token`` set, and the chat
    template replaced by the Jinja file ``chat_template_path`` when given."""
    if model_args.model_name_or_path is None:
        from ..embedded import build_tokenizer

        tokenizer = build_tokenizer()
    else:
        from ..embedded import load_pretrained_tokenizer

        tokenizer = load_pretrained_tokenizer(
            model_args.model_name_or_path,
            revision=model_args.model_revision,
            trust_remote_code=getattr(model_args, "trust_remote_code", False),
        )
    if chat_template_path is not None:
        tokenizer.chat_template = Path(chat_template_path).read_text()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


WARMUP_PROBE_PROMPTS = 64


def embedded_policy(tokenizer, data_args: DatasetArguments, output_dir: str, seed: int):
    """The tiny Qwen2 model after its supervised warm-up, cached in ``<output_dir>/warmup``.

    The warm-up trains on the embedded task's whole training split (never on the held-out problems, and not only on
    the ``num_train_prompts`` a recipe then trains on, which would teach it to memorise them). It stops once greedy accuracy on the first 64 training prompts reaches ``warmup_target_accuracy``
    (checked every 50 steps, at most ``warmup_max_steps``), so training starts from a policy that is right on some
    prompts and wrong on others whatever the seed. The cache is reused only when it was made with the same settings.
    In a multi-process run the main process warms up while the others wait; then every process loads the cache, so
    all start from the same weights.
    """
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM

    from ..embedded import arithmetic_reward, arithmetic_split, build_tiny_model, warm_up

    train, _ = arithmetic_split(
        max_first=data_args.task_max_first_operand,
        max_second=data_args.task_max_second_operand,
        operations=data_args.task_operations,
        num_eval=data_args.num_eval_prompts,
    )
    settings = {
        "warmup_target_accuracy": data_args.warmup_target_accuracy,
        "warmup_max_steps": data_args.warmup_max_steps,
        "task_max_first_operand": data_args.task_max_first_operand,
        "task_max_second_operand": data_args.task_max_second_operand,
        "task_operations": data_args.task_operations,
        "num_eval_prompts": data_args.num_eval_prompts,
        "seed": seed,
    }
    cache = Path(output_dir) / WARMUP_DIR
    fingerprint = cache / "warmup.json"
    state = PartialState()
    if state.is_main_process and not (
        fingerprint.exists() and json.loads(fingerprint.read_text())["settings"] == settings
    ):
        model = build_tiny_model(tokenizer, seed=seed)
        probe = train.select(range(min(WARMUP_PROBE_PROMPTS, len(train))))
        checks = []

        def reached_target(model) -> bool:
            checks.append(greedy_accuracy(model, tokenizer, probe, arithmetic_reward))
            return checks[-1] >= data_args.warmup_target_accuracy

        if data_args.warmup_max_steps > 0:
            warm_up(model, tokenizer, train, steps=data_args.warmup_max_steps, seed=seed, until=reached_target)
        model.save_pretrained(cache)
        fingerprint.write_text(json.dumps({"settings": settings, "probe_accuracy_every_50_steps": checks}, indent=2))
    state.wait_for_everyone()
    # Every process loads the cache the same way, as a hub model would be loaded: under DeepSpeed ZeRO-3 loading is
    # itself collective (the parameters are partitioned as they are created), so no process may load alone.
    return AutoModelForCausalLM.from_pretrained(cache)


def kbit_device_map() -> dict | None:
    """Where a 4/8-bit model is loaded: all of it on this process's GPU (None without a GPU)."""
    import torch
    from accelerate import PartialState

    return {"": PartialState().local_process_index} if torch.cuda.is_available() else None


def load_policy(model_args, training_args, data_args: DatasetArguments, tokenizer):
    """The ``model`` argument for a TRL trainer.

    A hub model is returned as its name, with ``training_args.model_init_kwargs`` set from the model flags (dtype,
    revision, attention implementation, quantization), so the trainer loads it the way TRL's own scripts do. Without
    ``--model_name_or_path`` it is the embedded tiny model (:func:`embedded_policy`).
    """
    if model_args.model_name_or_path is None:
        if not data_args.embedded:
            raise ValueError(
                "--dataset_name needs --model_name_or_path: the embedded tiny model only knows the embedded task."
            )
        return embedded_policy(tokenizer, data_args, training_args.output_dir, training_args.seed)
    from trl import get_quantization_config

    init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": getattr(model_args, "trust_remote_code", False),
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    quantization_config = get_quantization_config(model_args)
    if quantization_config is not None:  # 4/8-bit weights live on this process's GPU
        init_kwargs.update(device_map=kbit_device_map(), quantization_config=quantization_config)
    init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = init_kwargs
    return model_args.model_name_or_path


def load_policy_model(model_args, training_args, data_args: DatasetArguments, tokenizer):
    """Like :func:`load_policy`, but always a model object (for recipes that sample before they train)."""
    model = load_policy(model_args, training_args, data_args, tokenizer)
    if not isinstance(model, str):
        return model
    from transformers import AutoModelForCausalLM

    kwargs = {key: value for key, value in training_args.model_init_kwargs.items() if value is not None}
    if isinstance(kwargs.get("dtype"), str) and kwargs["dtype"] != "auto":
        import torch

        kwargs["dtype"] = getattr(torch, kwargs["dtype"])
    model = AutoModelForCausalLM.from_pretrained(model, **kwargs)
    if getattr(model, "hf_device_map", None) is None:  # quantized models are placed by their device_map
        model = model.to(training_args.device)
    return model

"""Helpers shared by the tests (``import support``: ``tests/`` is on pytest's ``pythonpath``).

This package is also imported by reward worker processes (``support.pool_targets``, ``support.reward_targets``), so it
imports only the standard library at import time: torch, TRL and trl_reasoning are imported inside the helpers.
Submodules: ``docs_pages`` (the docs pages and their code blocks), ``fake_vllm_server`` (a stand-in vLLM server),
``pool_targets`` and ``reward_targets`` (functions run inside reward workers).
"""

import importlib.util
import sys
import threading
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"

BASE_ARGS = dict(
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=8,
    max_steps=3,
    learning_rate=1e-2,
    logging_steps=1,
    report_to="none",
    use_cpu=True,
    seed=0,
    save_strategy="no",
    disable_tqdm=True,
)


def make_trainer(
    tmp_path,
    reasoning=True,
    reward_funcs=None,
    dataset_size=32,
    trainer_kwargs=None,
    model_seed=0,
    model_dtype=None,
    train_dataset=None,
    config_cls=None,
    **args,
):
    """A GRPO trainer on the tiny model: ours (``reasoning``) or TRL's; ``config_cls`` overrides the config class
    (e.g. ours given a plain ``trl.GRPOConfig``, as a user who changed only the import would). ``reward_funcs``
    defaults to ``(coin_reward,)`` and ``model_dtype`` to float32."""
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
    from trl_reasoning.embedded import arithmetic_dataset, build_tiny_model, build_tokenizer
    from trl_reasoning.testing import coin_reward

    if reward_funcs is None:
        reward_funcs = (coin_reward,)
    if model_dtype is None:
        model_dtype = torch.float32
    tokenizer = build_tokenizer()
    config_cls_default, trainer_cls = (
        (ReasoningGRPOConfig, ReasoningGRPOTrainer) if reasoning else (GRPOConfig, GRPOTrainer)
    )
    config_cls = config_cls or config_cls_default
    config = config_cls(output_dir=str(tmp_path), **{**BASE_ARGS, **args})
    return trainer_cls(
        model=build_tiny_model(tokenizer, seed=model_seed).to(model_dtype),
        reward_funcs=list(reward_funcs),
        args=config,
        train_dataset=arithmetic_dataset(dataset_size) if train_dataset is None else train_dataset,
        processing_class=tokenizer,
        **(trainer_kwargs or {}),
    )


def parameters(trainer):
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


def adapter_logits(path, input_ids, attention_mask):
    import torch
    from peft import PeftModel

    from trl_reasoning.embedded import build_tiny_model, build_tokenizer

    model = PeftModel.from_pretrained(build_tiny_model(build_tokenizer()), path).eval()
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask).logits.double()


class FakeGather:
    """``accelerator.gather`` for threads standing in for processes: concatenates in rank order."""

    def __init__(self, world_size: int):
        self.barrier = threading.Barrier(world_size)
        self.slots: list = [None] * world_size

    def for_rank(self, rank: int):
        def gather(tensor):
            import torch

            self.slots[rank] = tensor
            self.barrier.wait()
            result = torch.cat(list(self.slots))
            self.barrier.wait()
            return result

        return gather


# --- recipes -----------------------------------------------------------------------------------------------------
_RECIPE_MODULES = {}


def recipe_module(path: Path):
    """Import a recipe script as a module (its ``if __name__ == "__main__"`` block does not run); cached."""
    if path not in _RECIPE_MODULES:
        assert path.exists(), f"{path.relative_to(ROOT)} does not exist"
        name = f"_recipe_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and HfArgumentParser resolve annotations through sys.modules
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        _RECIPE_MODULES[path] = module
    return _RECIPE_MODULES[path]


def make_parser(recipe: Path):
    """A fresh parser from the recipe's ``make_parser()`` (TrlParser keeps a config's values as its new defaults)."""
    module = recipe_module(recipe)
    assert hasattr(module, "make_parser"), f"{recipe.relative_to(ROOT)} must define make_parser() returning its parser"
    return module.make_parser()


def launch_args(*flags: str):
    """What `accelerate launch FLAGS train.py` resolves (config file and flags), without launching anything."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args([*flags, "train.py"])
    args, defaults, mixed_precision_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as launch_command does before calling the DeepSpeed launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mixed_precision_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    return args, defaults


def estimate(name, rewards, group_size, **kwargs):
    """The estimator ``name`` on a list of rewards, with correctness (reward >= 1), lengths (10) and budget (64)
    defaulted; returns its ``AdvantageResult``."""
    import torch

    from trl_reasoning import get_advantage_estimator

    rewards = torch.tensor(rewards, dtype=torch.float32)
    kwargs.setdefault("correct", rewards >= 1.0)
    kwargs.setdefault("lengths", torch.full_like(rewards, 10, dtype=torch.long))
    kwargs.setdefault("max_length", 64)
    return get_advantage_estimator(name).compute(rewards=rewards, group_size=group_size, **kwargs)


def spread(totals, lengths, width=None, dtype=None):
    """(B, T) per-token values whose masked sum over row i is totals[i] (spread evenly over lengths[i] tokens), and
    the mask; float64 by default."""
    import torch

    dtype = dtype or torch.float64
    width = width or max(lengths)
    values = torch.zeros(len(totals), width, dtype=dtype)
    mask = torch.zeros(len(totals), width, dtype=dtype)
    for i, (total, length) in enumerate(zip(totals, lengths, strict=True)):
        if length:
            values[i, :length] = total / length
            mask[i, :length] = 1
    return values, mask

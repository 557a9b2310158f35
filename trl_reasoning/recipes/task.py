"""Prompts, gold answers and rewards for a recipe: a Hugging Face dataset, or the embedded arithmetic task."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .arguments import DatasetArguments


REWARD_NAMES = ("accuracy", "think_format", "boxed_format", "soft_overlong")


@dataclass
class Task:
    """What a recipe trains and evaluates on.

    ``train`` / ``evaluation`` have a ``prompt`` column plus the gold answer (``answer`` for the embedded task,
    ``solution`` for a dataset, as :func:`trl_reasoning.rewards.accuracy_reward` expects); ``accuracy`` is the 0/1
    correctness reward on those columns and ``answer_extractor`` its final-answer extraction.
    """

    train: object
    evaluation: object
    accuracy: Callable
    answer_extractor: Callable[[str], str | None]
    embedded: bool


def as_chat_prompt(prompt, args: DatasetArguments):
    """A plain-text prompt as one user message (with the system prompt), when the chat template should apply."""
    if isinstance(prompt, str):
        if not args.apply_chat_template:
            return prompt
        prompt = [{"role": "user", "content": prompt}]
    if args.system_prompt is not None and not (prompt and prompt[0].get("role") == "system"):
        prompt = [{"role": "system", "content": args.system_prompt}, *prompt]
    return prompt


def _load_split(args: DatasetArguments, split: str):
    from datasets import load_dataset

    dataset = load_dataset(args.dataset_name, args.dataset_config, split=split)
    missing = [c for c in (args.prompt_column, args.answer_column) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"The dataset {args.dataset_name!r} (split {split!r}) has no column {missing[0]!r}; its columns are "
            f"{dataset.column_names}. Map yours with --prompt_column and --answer_column."
        )
    renames = {
        old: new for old, new in ((args.prompt_column, "prompt"), (args.answer_column, "solution")) if old != new
    }
    clashes = [new for new in renames.values() if new in dataset.column_names]
    dataset = dataset.remove_columns(clashes).rename_columns(renames)
    return dataset.map(lambda row: {"prompt": as_chat_prompt(row["prompt"], args)})


def load_task(args: DatasetArguments, *, seed: int = 0, evaluation_only: bool = False) -> Task:
    """The training and held-out prompts and the correctness reward described by ``args``.

    With ``evaluation_only`` and a ``dataset_test_split``, the training split is not loaded (``train`` is None), so
    a dataset that has only a test split (MATH-500) can be evaluated.
    """
    if args.embedded:
        from ..embedded import arithmetic_reward, arithmetic_split, last_integer

        train, evaluation = arithmetic_split(
            max_first=args.task_max_first_operand,
            max_second=args.task_max_second_operand,
            operations=args.task_operations,
            num_eval=args.num_eval_prompts,
        )
        if args.system_prompt is not None:
            train = train.map(lambda row: {"prompt": as_chat_prompt(row["prompt"], args)})
            evaluation = evaluation.map(lambda row: {"prompt": as_chat_prompt(row["prompt"], args)})
        if args.num_train_prompts is not None:
            train = train.select(range(min(args.num_train_prompts, len(train))))
        return Task(train, evaluation, arithmetic_reward, last_integer, embedded=True)

    from ..rewards import accuracy_reward, extract_final_answer

    if evaluation_only and args.dataset_test_split is not None:
        evaluation = _load_split(args, args.dataset_test_split)
        evaluation = evaluation.select(range(min(args.num_eval_prompts, len(evaluation))))
        return Task(None, evaluation, accuracy_reward, extract_final_answer, embedded=False)
    train = _load_split(args, args.dataset_train_split)
    if args.dataset_test_split is not None:
        evaluation = _load_split(args, args.dataset_test_split)
        evaluation = evaluation.select(range(min(args.num_eval_prompts, len(evaluation))))
    else:
        if args.num_eval_prompts >= len(train):
            raise ValueError(
                f"num_eval_prompts={args.num_eval_prompts} would hold out the whole training split ({len(train)} "
                "rows): lower it, set it to 0, or pass --dataset_test_split."
            )
        keep = len(train) - args.num_eval_prompts
        evaluation, train = train.select(list(range(keep, len(train)))), train.select(range(keep))
    if args.num_train_prompts is not None:
        train = train.select(range(min(args.num_train_prompts, len(train))))
    return Task(train, evaluation, accuracy_reward, extract_final_answer, embedded=False)


def build_rewards(names: list[str], task: Task, *, max_completion_length: int | None = None) -> list[Callable]:
    """Reward functions by name (``REWARD_NAMES``) or import path (``my_module.my_reward``), in order.

    ``accuracy`` is the task's 0/1 correctness reward; ``soft_overlong`` is DAPO's overlong punishment (Yu et al.
    2025, arXiv 2503.14476) in DAPO's proportions: over the last fifth of ``max_completion_length`` (DAPO: 4096 of
    20480) and halved, reaching -0.5 at the limit, since DAPO adds it to a ±1 correctness reward and ``accuracy`` is
    0/1 (so ``accuracy + soft_overlong`` is DAPO's reward mapped to ``(R + 1) / 2``).
    """
    from ..rewards import boxed_format_reward, get_dapo_soft_overlong_punishment, think_format_reward

    rewards = []
    for name in names:
        if name == "accuracy":
            rewards.append(task.accuracy)
        elif name == "think_format":
            rewards.append(think_format_reward)
        elif name == "boxed_format":
            rewards.append(boxed_format_reward)
        elif name == "soft_overlong":
            if not max_completion_length or max_completion_length < 4:
                raise ValueError("reward_funcs 'soft_overlong' needs max_completion_length >= 4.")
            rewards.append(get_dapo_soft_overlong_punishment(max_completion_length, correctness_range=1.0))
        elif "." in name:
            module, attribute = name.rsplit(".", 1)
            try:
                rewards.append(getattr(importlib.import_module(module), attribute))
            except (ImportError, AttributeError) as error:
                raise ValueError(f"reward_funcs: cannot import {name!r} ({error}).") from error
        else:
            raise ValueError(
                f"reward_funcs: unknown reward {name!r}. Valid names: {list(REWARD_NAMES)}, or an import path such "
                "as my_package.my_reward."
            )
    if not rewards:
        raise ValueError("reward_funcs is empty: name at least one reward, e.g. --reward_funcs accuracy.")
    return rewards

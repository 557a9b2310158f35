r"""Fully offline TOPR (Tapered Off-Policy REINFORCE, Le Roux, Bellemare et al. 2025, arXiv 2503.14286).

Completions are sampled once from the starting policy μ (or read from a dataset), labelled +1 correct / −1 wrong,
and ``OfflineTOPRTrainer`` trains on them with no generation during training: positives get an SFT-like step,
negatives a push down tapered by the truncated ratio min(π/μ, 1), which fades once π makes them less likely than μ
did. The baseline c sets the effective share of positives (``--topr_target_positive_fraction``; docs/methods/topr-offline.md):

    ℓ(τ) = −sg(α(τ)) · (R − c) · Σ_t logπ(y_t | x, y_<t),    α(τ) = 1 if R ≥ 0 else min(π(τ)/μ(τ), 1)

Stages, each cached under ``--output_dir`` so a rerun resumes where it stopped:

1. the behaviour data: ``--completions_dataset`` (a hub name, a local data folder, or a ``save_to_disk`` folder such
   as another run's ``samples/``) with a prompt, a completion and a reward per row (``--prompt_column``, falling back
   to ``prompt``; ``--completion_column``; ``--reward_column``) and optionally μ's log-probs
   (``--behavior_logps_column``); or, by default, ``samples/``: ``--num_samples`` completions per training prompt
   sampled from the starting policy at ``--sample_temperature``, scored by the task's accuracy reward and mapped to
   R = +1 / −1 (the paper's rewards). ``samples/`` is reused when it was made with the same settings
   (``samples/sampling.json``), else sampled again;
2. training with ``OfflineTOPRTrainer``. The behaviour log-probs μ of sampled data are computed by the trainer, once,
   with the starting model (the paper's fully offline setting; exact for ``--sample_temperature 1``), then greedy
   accuracy on held-out prompts before and after training.

Sampling uses ``transformers`` generation in one process. A hub model is loaded as an object for it
(``load_policy_model``, with the ``--dtype`` / quantization flags); that is fine for small models, but for a big model
generate the completions elsewhere (e.g. vLLM, keeping its per-token log-probs as ``behavior_logps``) and pass them
with ``--completions_dataset``. A multi-process launch never samples: run the sampling once in a single process with
``--sampling_only``, then launch on the cached ``samples/``. With ``--completions_dataset`` the held-out prompts and
their gold answers come from ``--dataset_name`` (best with ``--dataset_test_split``; completions whose prompt is a
held-out one are dropped), or from the embedded task for the embedded model; a hub model with no ``--dataset_name``
needs ``--num_eval_prompts 0``.

With no ``--model_name_or_path`` / ``--dataset_name`` it runs on the embedded default: a tiny in-process Qwen2 model,
warmed up with a short supervised phase (cached in ``warmup/``), and two-digit + one-digit additions, on a CPU, with
nothing downloaded. Dataset, column, chat-template and LoRA flags are the same as ``recipes/grpo.py``'s.

    # embedded default (CPU, about a minute)
    python recipes/topr_offline.py --config recipes/configs/topr_offline.yaml --output_dir outputs/topr_offline
    # a real model and a completions dataset (prompt, completion, reward = +1/-1), 1..N GPUs, DeepSpeed ZeRO-2
    accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs zero2) recipes/topr_offline.py \
        --model_name_or_path meta-llama/Meta-Llama-3-8B-Instruct --dtype bfloat16 \
        --completions_dataset <your completions> --completion_column completion --reward_column reward \
        --dataset_name openai/gsm8k --dataset_config main --dataset_test_split test \
        --prompt_column question --answer_column answer --num_eval_prompts 200 --eval_max_new_tokens 512 \
        --topr_target_positive_fraction 0.15 --learning_rate 5e-7 --lr_scheduler_type constant --optim adafactor \
        --per_device_train_batch_size 1 --gradient_accumulation_steps 16 --bf16 true --output_dir outputs/topr_offline
    # or sample from the model itself: once in one process, then train on 1..N GPUs on the cached samples/
    python recipes/topr_offline.py --model_name_or_path Qwen/Qwen2.5-Math-1.5B --dtype bfloat16 \
        --dataset_name openai/gsm8k --dataset_config main --dataset_test_split test --prompt_column question \
        --answer_column answer --num_samples 16 --max_new_tokens 512 --output_dir outputs/topr_offline --sampling_only
    accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs zero2) recipes/topr_offline.py \
        <the same flags, without --sampling_only>

The held-out greedy accuracy before and after training, the step count, the number of samples, their share of
positives and the baseline go to ``<output_dir>/summary.json``; ``<output_dir>/reward_curve.png`` plots the mean taper
α of the negatives and the share of negatives whose ratio π/μ was cut to 1, per step, with the two accuracies.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState
from datasets import Dataset, load_dataset, load_from_disk
from trl import ModelConfig, TrlParser, get_peft_config

from trl_reasoning import OfflineTOPRConfig, OfflineTOPRTrainer
from trl_reasoning.generation import sample_completions
from trl_reasoning.recipes import (
    DatasetArguments,
    MetricsTable,
    add_greedy_accuracy,
    end_distributed_run,
    finish_run,
    load_policy,
    load_policy_model,
    load_task,
    load_tokenizer,
    use_table_logging,
)
from trl_reasoning.recipes.task import as_chat_prompt


SAMPLES_DIR = "samples"
SAMPLING_RECORD = "sampling.json"


@dataclass
class TOPROfflineScriptArguments(DatasetArguments):
    completions_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Hub name or local path of a dataset of completions to train on (a `datasets.load_dataset` "
            "source, or a `save_to_disk` folder such as another run's samples/): a prompt, a completion and a "
            "reward per row, optionally the behaviour log-probs. Default: sample them from the starting policy."
        },
    )
    completions_config: str | None = field(
        default=None, metadata={"help": "Configuration name of --completions_dataset, if it has several."}
    )
    completions_split: str = field(default="train", metadata={"help": "Split of --completions_dataset to train on."})
    completion_column: str = field(
        default="completion",
        metadata={
            "help": "Column of --completions_dataset holding the completion (text, or assistant messages). The "
            "prompt is read from --prompt_column (or `prompt`), the reward from --reward_column."
        },
    )
    map_binary_rewards: bool = field(
        default=False,
        metadata={
            "help": "Map the 0/1 rewards of --completions_dataset to -1/+1 (the paper's). TOPR counts R >= 0 as "
            "positive, so a 0 reward never pushes a wrong answer down."
        },
    )
    num_samples: int = field(
        default=16, metadata={"help": "Completions sampled per training prompt (paper: 16 per question)."}
    )
    sample_temperature: float = field(
        default=1.0,
        metadata={
            "help": "Sampling temperature (not given in the paper). At 1.0 the trainer's behaviour log-probs (the "
            "starting model's) are exactly those of the sampling policy."
        },
    )
    max_new_tokens: int = field(
        default=256,
        metadata={"help": "Generation budget of the sampling, and of the evaluation unless --eval_max_new_tokens."},
    )
    sample_batch_size: int = field(default=64, metadata={"help": "Prompts x samples generated per forward batch."})
    sampling_only: bool = field(
        default=False,
        metadata={
            "help": "Stop after writing samples/ (run once in a single process before a multi-process launch, which "
            "cannot sample)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.num_samples < 1 or self.max_new_tokens < 1 or self.sample_batch_size < 1:
            raise ValueError("num_samples, max_new_tokens and sample_batch_size must be >= 1.")
        if self.sample_temperature <= 0:
            raise ValueError(
                f"sample_temperature={self.sample_temperature} must be > 0: greedy samples have no spread to learn from."
            )
        if self.sampling_only and self.completions_dataset is not None:
            raise ValueError(
                "--sampling_only samples from the policy; with --completions_dataset there is nothing to do."
            )


def make_parser() -> TrlParser:
    return TrlParser((TOPROfflineScriptArguments, OfflineTOPRConfig, ModelConfig))


# ----------------------------------------------------------------------------------------------- behaviour data
def sampling_settings(script_args, training_args, model_args) -> dict:
    """What ``samples/`` depends on; the cache is reused only when these match."""
    keys = (
        "num_samples",
        "sample_temperature",
        "max_new_tokens",
        "num_train_prompts",
        "num_eval_prompts",
        "dataset_name",
        "dataset_config",
        "dataset_train_split",
        "dataset_test_split",
        "prompt_column",
        "answer_column",
        "system_prompt",
        "apply_chat_template",
        "task_max_first_operand",
        "task_max_second_operand",
        "task_operations",
        "warmup_target_accuracy",
        "warmup_max_steps",
    )
    return {
        **{key: getattr(script_args, key) for key in keys},
        "model_name_or_path": model_args.model_name_or_path,
        "model_revision": model_args.model_revision,
        "seed": training_args.seed,
    }


def cached_samples(output_dir: Path, settings: dict) -> Dataset | None:
    samples_dir = output_dir / SAMPLES_DIR
    record = samples_dir / SAMPLING_RECORD
    if not (samples_dir / "dataset_info.json").exists() or not record.exists():
        return None
    if json.loads(record.read_text())["settings"] != settings:
        print(f"{samples_dir} was made with other settings: sampling again.")
        return None
    return load_from_disk(str(samples_dir))


def sample_behaviour_data(script_args, training_args, model, tokenizer, task, output_dir: Path, settings) -> Dataset:
    """``num_samples`` completions per training prompt from ``model``, R = +1 correct / −1 wrong, saved to samples/."""
    samples = sample_completions(
        model,
        tokenizer,
        task.train,
        task.accuracy,
        num_samples=script_args.num_samples,
        max_new_tokens=script_args.max_new_tokens,
        temperature=script_args.sample_temperature,
        batch_size=script_args.sample_batch_size,
        answer_extractor=task.answer_extractor,
        seed=training_args.seed,
    )
    unscored = sum(reward is None for reward in samples["reward"])
    if unscored:  # the accuracy reward returns None for an empty gold answer
        print(f"dropped {unscored} samples whose gold answer is empty (no reward).")
        samples = samples.filter(lambda reward: reward is not None, input_columns="reward")
    samples = samples.rename_column("reward", "accuracy").map(
        lambda correct: {"reward": 1.0 if correct else -1.0}, input_columns="correct"
    )
    samples_dir = output_dir / SAMPLES_DIR
    samples.save_to_disk(str(samples_dir))
    record = {"settings": settings, "rows": len(samples), "positive_fraction": _positive_share(samples["reward"])}
    (samples_dir / SAMPLING_RECORD).write_text(json.dumps(record, indent=2))
    return samples


def load_completions(script_args, training_args, task, state: PartialState) -> Dataset:
    """``--completions_dataset`` renamed to prompt / completion, prompts formatted like the task's."""
    source = script_args.completions_dataset
    with state.main_process_first():
        if (Path(source) / "dataset_info.json").exists() or (Path(source) / "state.json").exists():
            completions = load_from_disk(source)
        else:
            completions = load_dataset(source, script_args.completions_config, split=script_args.completions_split)
    columns = completions.column_names
    prompt_column = script_args.prompt_column if script_args.prompt_column in columns else "prompt"
    wanted = {prompt_column: "prompt", script_args.completion_column: "completion"}
    missing = [c for c in (*wanted, training_args.reward_column) if c not in columns]
    if missing:
        raise ValueError(
            f"The completions dataset {source!r} has no column {missing[0]!r}; its columns are {columns}. Map yours "
            "with --prompt_column, --completion_column and --reward_column."
        )
    keep = [*wanted, training_args.reward_column]
    if training_args.behavior_logps_column in columns:
        keep.append(training_args.behavior_logps_column)
    completions = completions.select_columns(keep)
    renames = {old: new for old, new in wanted.items() if old != new}
    if renames:
        completions = completions.rename_columns(renames)

    def format_row(row):
        prompt = as_chat_prompt(row["prompt"], script_args)
        completion = row["completion"]
        if not isinstance(prompt, str) and isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        return {"prompt": prompt, "completion": completion}

    completions = completions.map(format_row)
    rewards = [r for r in completions[training_args.reward_column] if r is not None and not math.isnan(r)]
    if script_args.map_binary_rewards:
        if not set(rewards) <= {0.0, 1.0}:
            raise ValueError(
                f"--map_binary_rewards maps 0/1 rewards to -1/+1, but `{training_args.reward_column}` has other "
                f"values ({sorted(set(rewards))[:5]}...)."
            )
        completions = completions.map(
            lambda r: {training_args.reward_column: None if r is None else 2.0 * r - 1.0},
            input_columns=training_args.reward_column,
        )
    elif rewards and set(rewards) <= {0.0, 1.0} and state.is_main_process:
        print(
            "warning: the completions dataset's rewards are all 0 or 1. TOPR counts R >= 0 as positive, so wrong "
            "answers (R = 0) are not pushed down; pass --map_binary_rewards for the paper's -1/+1."
        )
    if len(task.evaluation):
        held_out = {json.dumps(prompt, sort_keys=True) for prompt in task.evaluation["prompt"]}
        before = len(completions)
        completions = completions.filter(
            lambda p: json.dumps(p, sort_keys=True) not in held_out, input_columns="prompt"
        )
        if len(completions) < before and state.is_main_process:
            print(f"dropped {before - len(completions)} completions whose prompt is a held-out prompt.")
    if len(completions) == 0:
        raise ValueError(f"The completions dataset {source!r} has no row left to train on.")
    return completions


def _positive_share(rewards) -> float:
    valid = [r for r in rewards if r is not None and not math.isnan(r)]
    return sum(r >= 0 for r in valid) / max(len(valid), 1)


# ----------------------------------------------------------------------------------------------- the recipe
def main(script_args: TOPROfflineScriptArguments, training_args: OfflineTOPRConfig, model_args: ModelConfig) -> dict:
    started = time.time()
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    state = PartialState()
    if model_args.model_name_or_path is not None and script_args.embedded:
        # The embedded arithmetic task is for the embedded tiny model; a hub model needs its own prompts.
        if script_args.completions_dataset is None:
            raise ValueError(
                "With --model_name_or_path the samples need training prompts with gold answers: pass --dataset_name "
                "(see --prompt_column / --answer_column), or --completions_dataset with completions made elsewhere."
            )
        if script_args.num_eval_prompts:
            raise ValueError(
                "With --model_name_or_path the held-out accuracy needs prompts with gold answers: pass --dataset_name "
                "(and --dataset_test_split), or --num_eval_prompts 0 to skip it."
            )
    settings = sampling_settings(script_args, training_args, model_args)
    samples = None
    if script_args.completions_dataset is None:
        samples = cached_samples(output_dir, settings)
        if samples is None and state.num_processes > 1:
            raise SystemExit(
                f"No cached samples in {output_dir / SAMPLES_DIR} for these settings, and a multi-process run does not "
                "sample. Run once in a single process first (python recipes/topr_offline.py <the same flags> "
                "--sampling_only), then launch again on the cached samples."
            )
        if samples is not None and state.is_main_process:
            print(f"reusing {len(samples)} samples from {output_dir / SAMPLES_DIR}")
    # SFTConfig's own --chat_template_path (a Jinja file, or a tokenizer to clone the template from): sampling and
    # evaluation use a Jinja file too (SFT applies it again, the same).
    template = training_args.chat_template_path
    if template is not None and not os.path.isfile(template) and script_args.completions_dataset is None:
        raise ValueError(
            f"--chat_template_path {template!r} is not a file: to sample, give a Jinja template file (cloning the "
            "template of another tokenizer is done by the trainer, after sampling)."
        )
    task = load_task(script_args, seed=training_args.seed)
    tokenizer = load_tokenizer(model_args, template if template is not None and os.path.isfile(template) else None)
    if script_args.completions_dataset is None and samples is None:
        model = load_policy_model(model_args, training_args, script_args, tokenizer)
        samples = sample_behaviour_data(script_args, training_args, model, tokenizer, task, output_dir, settings)
        print(
            f"sampled {len(samples)} completions ({script_args.num_samples} per prompt at temperature "
            f"{script_args.sample_temperature}): {_positive_share(samples['reward']):.1%} correct"
        )
    else:
        # The trainer loads a hub model itself (by name, with `model_init_kwargs`), as under DeepSpeed it must.
        model = load_policy(model_args, training_args, script_args, tokenizer)
    if script_args.sampling_only:
        return {"samples": len(samples), "positive_fraction": _positive_share(samples["reward"])}

    if script_args.completions_dataset is not None:
        train = load_completions(script_args, training_args, task, state)
        source = script_args.completions_dataset
    else:
        train = samples.select_columns(["prompt", "completion", "reward"])
        source = "sampled from the starting policy"
        if training_args.reward_column != "reward":
            train = train.rename_column("reward", training_args.reward_column)

    trainer = OfflineTOPRTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    use_table_logging(
        trainer,
        MetricsTable(
            {
                "loss": "loss",
                "alpha-": "topr/alpha_negative_mean",
                "truncated": "topr/frac_truncated",
                "logp+": "topr/completion_logp_positive",
                "logp-": "topr/completion_logp_negative",
            }
        ),
    )
    accuracy = add_greedy_accuracy(
        trainer, task, max_new_tokens=script_args.eval_max_new_tokens or script_args.max_new_tokens
    )
    if state.is_main_process:
        print(
            f"method: offline TOPR | {len(train)} completions ({source}), {trainer.positive_fraction:.1%} "
            f"positive, baseline c = {trainer.topr_baseline:.3f} | processes: {state.num_processes} "
            f"({state.distributed_type.value})"
        )
    trainer.train()
    trainer.save_model(training_args.output_dir)
    extra = {
        "completions": len(train),
        "completions_source": source,
        "positive_fraction": trainer.positive_fraction,
        "baseline": trainer.topr_baseline,
    }
    # the y-axis is [0, 1]: the loss and the log-probs are in summary.json and the table
    curves = {"α of negatives (taper)": "topr/alpha_negative_mean", "negatives with π/μ > 1": "topr/frac_truncated"}
    summary = finish_run(trainer, started=started, accuracy=accuracy, extra=extra, curves=curves, title="offline TOPR")
    return summary


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    main(*make_parser().parse_args_and_config())
    end_distributed_run()

"""GRPO-family training: GRPO, PSR, NSR, W-REINFORCE, DRPO, BNPO, TOPR, ... (one recipe, different flags).

``--advantage_estimator`` picks the advantages (grpo, psr, nsr, w_reinforce, drpo_length, beta_norm) and
``--policy_loss`` the loss (trl = TRL's own, drpo, topr).

With no ``--model_name_or_path`` / ``--dataset_name`` it runs on the embedded default: a tiny in-process Qwen2
model and a procedurally generated arithmetic task, on a CPU, with nothing downloaded.

    # embedded default (CPU, about a minute)
    python recipes/grpo.py --config recipes/configs/demo.yaml --output_dir outputs/demo
    # W-REINFORCE (Zhu et al. 2025) on a real model and dataset, on 1..N GPUs
    accelerate launch recipes/grpo.py --model_name_or_path Qwen/Qwen2.5-Math-1.5B \
        --dataset_name <dataset> --answer_column answer --advantage_estimator w_reinforce --positive_weight 0.1 \
        --output_dir outputs/w-reinforce
    # DRPO (Li et al. 2025): the decoupled length objective; TOPR (Le Roux et al. 2025) with 4 passes per batch
    accelerate launch recipes/grpo.py ... --policy_loss drpo --length_lambda 0.1 --max_completion_length 8192
    accelerate launch recipes/grpo.py ... --policy_loss topr --num_iterations 4 --topr_target_positive_fraction 0.15
    # BNPO (Xiao et al. 2025): Beta-normalised advantages
    accelerate launch recipes/grpo.py ... --advantage_estimator beta_norm

The answer column is scored by the arithmetic reward (last integer equals the gold answer) until the math-answer
verifier lands; every `ReasoningGRPOConfig` / `GRPOConfig` flag works as in TRL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import ModelConfig, TrlParser, get_peft_config

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
from trl_reasoning.testing import arithmetic_dataset, arithmetic_reward, build_tiny_model, build_tokenizer


@dataclass
class GRPOScriptArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Hub name or local path of the dataset. Default: the embedded arithmetic task."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    prompt_column: str = field(default="prompt", metadata={"help": "Column holding the prompt (text or messages)."})
    answer_column: str = field(default="answer", metadata={"help": "Column holding the gold answer."})
    num_train_prompts: int = field(default=256, metadata={"help": "Prompts generated for the embedded task."})


class QuietProgress(ProgressCallback):
    """The progress bar without the raw log dicts (RewardTable prints the numbers that matter)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


class RewardTable(TrainerCallback):
    """Print one row per logging step: step, reward, fraction correct, mean completion length."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "reward" not in logs:
            return
        if state.global_step == args.logging_steps:
            tqdm.write(f"{'step':>6} {'reward':>8} {'correct':>8} {'length':>8}")
        correct = logs.get("advantage/frac_correct", float("nan"))
        length = logs.get("completions/mean_length", float("nan"))
        row = f"{state.global_step:>6} {logs['reward']:>8.3f} {correct:>8.3f} {length:>8.2f}"
        tqdm.write(row)


def main(script_args: GRPOScriptArguments, training_args: ReasoningGRPOConfig, model_args: ModelConfig) -> None:
    if model_args.model_name_or_path is None:
        tokenizer = build_tokenizer()
        model = build_tiny_model(tokenizer, seed=training_args.seed)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
        model = model_args.model_name_or_path
    if script_args.dataset_name is None:
        dataset = arithmetic_dataset(script_args.num_train_prompts, seed=training_args.seed)
    else:
        from datasets import load_dataset

        dataset = load_dataset(
            script_args.dataset_name, script_args.dataset_config, split=script_args.dataset_train_split
        )
        dataset = dataset.rename_columns(
            {
                old: new
                for old, new in ((script_args.prompt_column, "prompt"), (script_args.answer_column, "answer"))
                if old != new
            }
        )
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=arithmetic_reward,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[RewardTable()],
    )
    # Replace the raw log-dict printing with the reward table (keeping a progress bar when one was shown).
    trainer.pop_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress)
    if trainer.accelerator.is_main_process:
        print(f"method: {trainer.method_name}")
    trainer.train()
    trainer.save_model(training_args.output_dir)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    parser = TrlParser((GRPOScriptArguments, ReasoningGRPOConfig, ModelConfig))
    main(*parser.parse_args_and_config())

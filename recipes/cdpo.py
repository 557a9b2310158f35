"""cDPO ("Critical Tokens Matter", Lin et al. 2024, arXiv 2411.19943): the whole critical-token pipeline.

Stages, each cached under ``--output_dir`` so a rerun resumes where it stopped:

1. ``samples/`` — ``--num_samples`` completions per training prompt from the base model, labelled by the reward;
2. selection — one correct trajectory per question (positive set), the most frequent wrong answers covering
   ``--negative_top_p`` of the wrong samples (negative set), one (correct, wrong) pair per question;
3. ``adapters/positive``, ``adapters/negative`` — two LoRA adapters on one base, trained with TRL's SFTTrainer;
4. ``pairs/`` — the pairs with ``rejected_token_weights`` = 1 − s_t, s_t = softmax(2 z_pos − z_neg)[y_t];
5. cDPO training (``CriticalTokenDPOTrainer``), then greedy accuracy on held-out prompts before and after.

With no ``--model_name_or_path`` / ``--dataset_name`` it runs on the embedded default: a tiny in-process Qwen2 model,
warmed up with a short supervised phase (cached in ``warmup/``) so that it answers the arithmetic task sometimes right
and sometimes wrong, on a CPU, with nothing downloaded. Dataset, column, chat-template and LoRA flags are the same as
``recipes/grpo.py``'s.

    # embedded default (CPU, about a minute)
    python recipes/cdpo.py --config recipes/configs/cdpo_demo.yaml --output_dir outputs/cdpo
    # a real model and dataset: run stages 1-4 in one process, then train on 1..N GPUs (stages are cached)
    python recipes/cdpo.py --model_name_or_path deepseek-ai/deepseek-math-7b-instruct --dataset_name <dataset> \
        --answer_column answer --num_samples 64 --sample_temperature 0.3 --output_dir outputs/cdpo --pipeline_only
    accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs zero3) recipes/cdpo.py \
        <the same flags, without --pipeline_only>

cDPO trains with the paper's settings unless told otherwise (``CDPO_DEFAULTS``): γ = ``--beta 1.0``,
``--learning_rate 4e-5``, 3 epochs, a LoRA adapter (r 16, α 32, every linear layer) on the base model, which is also
the reference; ``--use_peft false`` trains all weights (then lower the learning rate). The official code's variant is
``--beta 0.1 --cdpo_form per_position --eos_weight one``.

Real datasets are scored with ``trl_reasoning.rewards.accuracy_reward`` against the answer column. The held-out
greedy accuracy before and after cDPO, the step count and the wall time go to ``<output_dir>/summary.json``.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState
from datasets import Dataset, load_from_disk
from trl import ModelConfig, TrlParser, get_peft_config

from trl_reasoning import CriticalTokenDPOConfig, CriticalTokenDPOTrainer
from trl_reasoning.critical_tokens import (
    ContrastiveScorer,
    contrastive_sft_config,
    sample_completions,
    score_preference_dataset,
    select_contrastive_data,
    train_contrastive_adapters,
)
from trl_reasoning.recipes import (
    DatasetArguments,
    MetricsTable,
    add_greedy_accuracy,
    end_distributed_run,
    finish_run,
    load_policy_model,
    load_task,
    load_tokenizer,
    use_table_logging,
)


@dataclass
class CDPOScriptArguments(DatasetArguments):
    chat_template_path: str | None = field(
        default=None, metadata={"help": "A Jinja chat template file that replaces the tokenizer's own."}
    )
    num_samples: int = field(default=8, metadata={"help": "Completions sampled per prompt (paper: 64)."})
    sample_temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature; the paper picks it so each question has about 10 wrong answers."},
    )
    max_new_tokens: int = field(default=8, metadata={"help": "Generation budget for sampling and evaluation."})
    negative_top_p: float = field(
        default=0.5, metadata={"help": "Share of wrong samples the kept wrong answers must cover (paper: 0.5)."}
    )
    adapter_learning_rate: float = field(default=3e-4, metadata={"help": "LoRA SFT learning rate (paper: 3e-4)."})
    adapter_epochs: float = field(default=1.0, metadata={"help": "LoRA SFT epochs per adapter (paper: 1)."})
    adapter_warmup_steps: int = field(default=100, metadata={"help": "LoRA SFT warm-up steps (official code: 100)."})
    pipeline_only: bool = field(
        default=False, metadata={"help": "Stop after writing the weighted pairs (stages 1-4), before cDPO training."}
    )


# cDPO's training settings (Lin et al. 2024, arXiv 2411.19943, and the official code's configs/train_config.py
# get_cdpo_config; docs/methods/cdpo.md "Paper hyperparameters"): the recipe's defaults, under any --config file and
# flag. The paper's γ = 1.0 goes with its learning rate 4e-5 on a fresh LoRA adapter (TRL's DPOConfig: 1e-6, full
# fine-tuning); the official code uses the same learning rate with γ = 0.1 (--beta 0.1).
CDPO_DEFAULTS = {
    "beta": 1.0,  # γ of the DPO sigmoid (paper; official code 0.1)
    "learning_rate": 4e-5,  # paper and code
    "num_train_epochs": 3,  # paper and code
    "warmup_steps": 0.1,  # a tenth of the steps (code: warmup_ratio=0.1)
    "weight_decay": 0.01,  # code
    "use_peft": True,  # paper: a fresh LoRA on the base model, the base (adapter disabled) as reference
    "lora_r": 16,  # code
    "lora_alpha": 32,  # code
    "lora_dropout": 0.0,  # code
    "lora_target_modules": ["all-linear"],  # code: q/k/v/o/gate/up/down, every linear layer but the LM head
}


def make_parser() -> TrlParser:
    parser = TrlParser((CDPOScriptArguments, CriticalTokenDPOConfig, ModelConfig))
    parser.set_defaults_with_config(**CDPO_DEFAULTS)
    return parser


def run_pipeline(script_args, training_args, model, tokenizer, train, reward, extractor, output_dir: Path) -> Dataset:
    """Stages 1-4; each is skipped when its output is already on disk."""
    pairs_dir = output_dir / "pairs"
    if (pairs_dir / "dataset_info.json").exists():
        return load_from_disk(str(pairs_dir))
    samples_dir = output_dir / "samples"
    if (samples_dir / "dataset_info.json").exists():
        samples = load_from_disk(str(samples_dir))
    else:
        samples = sample_completions(
            model,
            tokenizer,
            train,
            reward,
            num_samples=script_args.num_samples,
            max_new_tokens=script_args.max_new_tokens,
            temperature=script_args.sample_temperature,
            answer_extractor=extractor,
            seed=training_args.seed,
        )
        samples.save_to_disk(str(samples_dir))
    data = select_contrastive_data(samples, negative_top_p=script_args.negative_top_p, seed=training_args.seed)
    print("selection:", json.dumps(data.stats))
    if len(data.pairs) == 0:
        raise SystemExit("No question has both a correct and a wrong sample: raise --num_samples or the temperature.")
    adapters_dir = output_dir / "adapters"
    if not (adapters_dir / "negative" / "adapter_config.json").exists():
        sft_config = contrastive_sft_config(
            str(adapters_dir / "sft"),
            learning_rate=script_args.adapter_learning_rate,
            num_train_epochs=script_args.adapter_epochs,
            warmup_steps=script_args.adapter_warmup_steps,
            seed=training_args.seed,
            # one process runs both trainers, so the adapters' precision must match the cDPO run's
            bf16=training_args.bf16,
            fp16=training_args.fp16,
            use_cpu=training_args.use_cpu,
        )
        train_contrastive_adapters(
            copy.deepcopy(model),
            tokenizer,
            data.positive,
            data.negative,
            output_dir=str(adapters_dir),
            sft_config=sft_config,
        )
    scorer = ContrastiveScorer.from_policy(
        model, str(adapters_dir / "positive"), str(adapters_dir / "negative"), beta=training_args.critical_beta
    )
    pairs = score_preference_dataset(data.pairs, scorer, tokenizer, column=training_args.rejected_weights_column)
    pairs.save_to_disk(str(pairs_dir))
    return pairs


def main(script_args: CDPOScriptArguments, training_args: CriticalTokenDPOConfig, model_args: ModelConfig) -> dict:
    started = time.time()
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    state = PartialState()
    task = load_task(script_args, seed=training_args.seed)
    tokenizer = load_tokenizer(model_args, script_args.chat_template_path)
    model = load_policy_model(model_args, training_args, script_args, tokenizer)
    if state.num_processes > 1 and not (output_dir / "pairs" / "dataset_info.json").exists():
        raise SystemExit(
            "Run the pipeline stages once in a single process first (python recipes/cdpo.py ... --pipeline_only); "
            "the distributed launch then trains cDPO on the cached pairs."
        )
    pairs = run_pipeline(
        script_args, training_args, model, tokenizer, task.train, task.accuracy, task.answer_extractor, output_dir
    )
    if script_args.pipeline_only:
        return {}
    peft_config = get_peft_config(model_args)
    # The reference is the base model: the adapter-disabled policy under PEFT, else a frozen copy (TRL would reload
    # it from the hub by name, which the in-process embedded model does not have).
    needs_reference = peft_config is None and not training_args.precompute_ref_log_probs
    trainer = CriticalTokenDPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model) if needs_reference else None,
        args=training_args,
        train_dataset=pairs,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    use_table_logging(
        trainer,
        MetricsTable(
            {
                "loss": "loss",
                "margin": "rewards/margins",
                "acc": "rewards/accuracies",
                "weight": "critical/weight_mean",
            }
        ),
    )
    accuracy = add_greedy_accuracy(
        trainer, task, max_new_tokens=script_args.eval_max_new_tokens or script_args.max_new_tokens
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)
    weights = [w for row in pairs[training_args.rejected_weights_column] for w in row]
    extra = {"pairs": len(pairs), "rejected_weight_mean": sum(weights) / len(weights)}
    curves = {"preference accuracy": "rewards/accuracies", "loss": "loss"}
    summary = finish_run(trainer, started=started, accuracy=accuracy, extra=extra, curves=curves)
    return summary


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    main(*make_parser().parse_args_and_config())
    end_distributed_run()

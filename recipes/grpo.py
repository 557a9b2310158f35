"""GRPO-family training: GRPO, PSR, NSR, W-REINFORCE, DRPO, BNPO, TOPR, ... (one recipe, different flags).

Three flags pick the method (these lists are written by ``python -m trl_reasoning.manifest --write``):

* ``--advantage_estimator`` picks the advantages (beta_norm, drpo_length, grpo, nsr, psr, rloo, w_reinforce),
* ``--policy_loss`` the loss (trl = TRL's own, drpo, topr),
* ``--token_weighting`` the per-token advantages (critical_tokens, empg, entropy_token_scale),

and ``recipes/configs/<method>.yaml`` holds each paper's hyperparameters; ``--help`` lists every method's parameters.
Every ``ReasoningGRPOConfig`` / ``trl.GRPOConfig`` flag works as in TRL (``--use_vllm``,
``--vllm_mode colocate|server``, ``--report_to``, ``--loss_type``, ...), and so do TRL's model flags (``--dtype``,
``--use_peft --lora_r ...``, ``--load_in_4bit``).

With no ``--model_name_or_path`` / ``--dataset_name`` it runs on the embedded default: a tiny in-process Qwen2 model
and every ``a+b`` with a two-digit ``a`` and a one-digit ``b``, split into training and held-out problems. The model
is first warmed up with a short supervised phase (cached in ``<output_dir>/warmup``) until it answers about a third
of the problems right. It runs on a CPU and downloads nothing.

    # the embedded default: `make demo` (CPU, about two minutes)
    python recipes/grpo.py --config recipes/configs/demo.yaml --output_dir outputs/demo
    # W-REINFORCE (Zhu et al. 2025) on a real model and dataset, 8 GPUs, DeepSpeed ZeRO-3
    accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs zero3) recipes/grpo.py \\
        --config recipes/configs/w_reinforce.yaml --model_name_or_path Qwen/Qwen2.5-Math-1.5B \\
        --dataset_name DigitalLearningGmbH/MATH-lighteval --prompt_column problem --answer_column solution \\
        --output_dir outputs/w-reinforce
    # the same with vLLM generating on the training GPUs, and LoRA
    accelerate launch recipes/grpo.py --config recipes/configs/w_reinforce.yaml ... --use_vllm --vllm_mode colocate \\
        --use_peft --lora_r 16 --lora_alpha 32
    # DRPO (Li et al. 2025), TOPR (Le Roux et al. 2025), BNPO (Xiao et al. 2025): another config
    accelerate launch recipes/grpo.py --config recipes/configs/drpo.yaml ...

``--pass_at_k_samples 16 --pass_at_k_steps 100`` also logs ``eval/pass@k`` and ``eval/maj@k`` on the held-out problems
during training. The held-out greedy accuracy before and after training, the step count and the wall time go to
``<output_dir>/summary.json``, and reward and accuracy per step to ``<output_dir>/reward_curve.png``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser, get_peft_config

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
from trl_reasoning.evaluation import PassAtKCallback
from trl_reasoning.recipes import (
    REWARD_NAMES,
    DatasetArguments,
    MetricsTable,
    add_greedy_accuracy,
    end_distributed_run,
    finish_run,
    load_policy,
    load_task,
    load_tokenizer,
    use_table_logging,
)
from trl_reasoning.recipes.task import build_rewards


@dataclass
class GRPOScriptArguments(DatasetArguments):
    chat_template_path: str | None = field(
        default=None, metadata={"help": "A Jinja chat template file that replaces the tokenizer's own."}
    )
    pass_at_k_samples: int = field(
        default=0,
        metadata={
            "help": "Every --pass_at_k_steps steps, sample this many completions per held-out problem and log "
            "eval/pass@k and eval/maj@k (k = 1, 2, 4, ... up to it). 0 turns it off."
        },
    )
    pass_at_k_steps: int = field(default=100, metadata={"help": "Steps between two pass@k evaluations."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={
            "help": f"Reward functions, in order: names from {list(REWARD_NAMES)} or import paths "
            "(my_package.my_reward). 'accuracy' is the answer check: the math verifier on a dataset, the exact "
            "answer on the embedded task."
        },
    )


def make_parser() -> TrlParser:
    return TrlParser((GRPOScriptArguments, ReasoningGRPOConfig, ModelConfig))


def main(script_args: GRPOScriptArguments, training_args: ReasoningGRPOConfig, model_args: ModelConfig) -> dict:
    started = time.time()
    task = load_task(script_args, seed=training_args.seed)
    tokenizer = load_tokenizer(model_args, script_args.chat_template_path)
    model = load_policy(model_args, training_args, script_args, tokenizer)
    rewards = build_rewards(script_args.reward_funcs, task, max_completion_length=training_args.max_completion_length)
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=training_args,
        train_dataset=task.train,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    use_table_logging(
        trainer,
        MetricsTable({"reward": "reward", "correct": "advantage/frac_correct", "length": "completions/mean_length"}),
    )
    accuracy = add_greedy_accuracy(
        trainer, task, max_new_tokens=script_args.eval_max_new_tokens or training_args.max_completion_length
    )
    if script_args.pass_at_k_samples > 0 and len(task.evaluation):
        trainer.add_callback(
            PassAtKCallback(
                trainer,
                task.evaluation,
                task.accuracy,
                n=script_args.pass_at_k_samples,
                eval_steps=script_args.pass_at_k_steps,
                max_new_tokens=script_args.eval_max_new_tokens or training_args.max_completion_length,
                answer_extractor=task.answer_extractor,
                seed=training_args.seed,
            )
        )
    if trainer.accelerator.is_main_process:
        state = trainer.accelerator.state
        print(f"method: {trainer.method_name} | processes: {state.num_processes} ({state.distributed_type.value})")
    trainer.train()
    trainer.save_model(training_args.output_dir)
    summary = finish_run(trainer, started=started, accuracy=accuracy, extra={"train_prompts": len(task.train)})
    return summary


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    main(*make_parser().parse_args_and_config())
    end_distributed_run()

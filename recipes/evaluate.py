"""Evaluate a model on held-out problems: pass@k, maj@k, accuracy and answer lengths from ``n`` samples per problem.

Generation uses vLLM when it is installed, a GPU is present and the model is given by name (``--backend auto``),
else ``transformers``. Results go to ``<output_dir>/evaluation.json`` (and one row per sample to
``<output_dir>/samples.jsonl``), and a table is printed.

    # the model `make demo` trained, on the embedded task's 200 held-out problems (CPU, seconds)
    python recipes/evaluate.py --model_name_or_path outputs/demo --n 64 --output_dir outputs/demo-eval
    # a real model on MATH-500, 64 samples per problem, vLLM on a GPU
    python recipes/evaluate.py --model_name_or_path Qwen/Qwen2.5-Math-1.5B \\
        --dataset_name HuggingFaceH4/MATH-500 --dataset_test_split test --prompt_column problem \\
        --answer_column answer --num_eval_prompts 500 --n 64 --max_new_tokens 4096 --output_dir outputs/math500-eval

With a dataset, the last ``--num_eval_prompts`` rows of ``--dataset_train_split`` are evaluated (or the first ones
of ``--dataset_test_split`` when given), exactly the problems the training recipes hold out; with no model, the
embedded tiny model after its warm-up (cached in ``<output_dir>/warmup``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig, TrlParser

from trl_reasoning.evaluation import evaluate
from trl_reasoning.recipes import DatasetArguments, load_task, load_tokenizer


@dataclass
class EvaluateArguments(DatasetArguments):
    output_dir: str = field(
        default="outputs/evaluate", metadata={"help": "Where evaluation.json and samples.jsonl are written."}
    )
    n: int = field(default=16, metadata={"help": "Samples per problem."})
    ks: list[int] | None = field(
        default=None, metadata={"help": "The k of pass@k and maj@k (each <= n). Default: 1, 2, 4, ... up to n."}
    )
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "Longest completion, in tokens. Default: 256, or 12 on the embedded task."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (> 0)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling: keep the smallest token set of this mass."})
    batch_size: int = field(default=64, metadata={"help": "Sequences generated at once (transformers backend)."})
    backend: str = field(
        default="auto",
        metadata={"help": "'auto' (vLLM when installed, on a GPU, for a named model), 'transformers' or 'vllm'."},
    )
    gpu_memory_utilization: float = field(
        default=0.9, metadata={"help": "vLLM backend: the share of GPU memory vLLM may take."}
    )
    tensor_parallel_size: int = field(default=1, metadata={"help": "vLLM backend: GPUs the model is split over."})
    seed: int = field(default=0, metadata={"help": "Seeds the sampling and the embedded model's warm-up."})
    save_samples: bool = field(default=True, metadata={"help": "Also write every sample to samples.jsonl."})

    def __post_init__(self):
        super().__post_init__()
        if self.n < 1:
            raise ValueError(f"--n {self.n}: draw at least one sample per problem.")
        if self.temperature <= 0:
            raise ValueError(f"--temperature {self.temperature}: pass@k needs sampling; use a temperature > 0.")
        if self.num_eval_prompts < 1:
            raise ValueError(f"--num_eval_prompts {self.num_eval_prompts}: evaluate at least one problem.")


def make_parser() -> TrlParser:
    return TrlParser((EvaluateArguments, ModelConfig))


def load_model(args: EvaluateArguments, model_args: ModelConfig, tokenizer):
    """The model's name (vLLM and ``transformers`` both load it), or the embedded warmed-up tiny model."""
    if model_args.model_name_or_path is not None:
        return model_args.model_name_or_path
    from trl_reasoning.recipes.model import embedded_policy

    return embedded_policy(tokenizer, args, args.output_dir, args.seed)


def format_table(result) -> str:
    ks = sorted(set(result.pass_at_k) | set(result.maj_at_k))
    lines = [" ".join([f"{'k':>8}", *(f"{k:>7}" for k in ks)])]
    for name, values in (("pass@k", result.pass_at_k), ("maj@k", result.maj_at_k)):
        cells = (f"{values[k]:>7.3f}" if k in values else f"{'':>7}" for k in ks)
        lines.append(" ".join([f"{name:>8}", *cells]))

    def length(value):
        return "n/a" if value is None else f"{value:.2f}"

    lines.append(
        f"accuracy {result.accuracy:.3f} | mean length (tokens): correct {length(result.mean_correct_length)}, "
        f"incorrect {length(result.mean_incorrect_length)} | {result.num_problems} problems x "
        f"{result.samples_per_problem} samples ({result.backend})"
    )
    return "\n".join(lines)


def main(args: EvaluateArguments, model_args: ModelConfig) -> dict:
    if not args.embedded and model_args.model_name_or_path is None:
        raise ValueError("--dataset_name needs --model_name_or_path: the embedded tiny model only knows its own task.")
    task = load_task(args, seed=args.seed, evaluation_only=True)
    tokenizer = load_tokenizer(model_args)
    model = load_model(args, model_args, tokenizer)
    result = evaluate(
        model,
        task.evaluation,
        task.accuracy,
        args.n,
        args.ks,
        tokenizer=tokenizer,
        max_new_tokens=args.max_new_tokens or (12 if task.embedded else 256),
        temperature=args.temperature,
        top_p=args.top_p,
        batch_size=args.batch_size,
        answer_extractor=task.answer_extractor,
        seed=args.seed,
        backend=args.backend,
        vllm_kwargs={
            "gpu_memory_utilization": args.gpu_memory_utilization,
            "tensor_parallel_size": args.tensor_parallel_size,
        },
    )
    print(format_table(result))
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {"model": model_args.model_name_or_path or "embedded", **result.to_dict()}
    (output_dir / "evaluation.json").write_text(json.dumps(summary, indent=2))
    if args.save_samples:
        with open(output_dir / "samples.jsonl", "w") as handle:
            for sample in result.samples:
                handle.write(json.dumps(sample, default=str) + "\n")
    print(f"wrote {output_dir / 'evaluation.json'}")
    return summary


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    main(*make_parser().parse_args_and_config())

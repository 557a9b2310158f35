"""Run the experiments behind the docs' figures and write their results to ``docs/figures/data/<name>.json``.

    python docs/figures/generate.py                        # all three (about 13 minutes on one CPU thread)
    python docs/figures/generate.py --only drpo_tradeoff   # one of them
    python docs/figures/generate.py --smoke --data-dir /tmp/figures   # a few steps each (the CI test)

Everything runs on the embedded tiny model and arithmetic task, single-threaded and seeded. ``make docs`` renders
the images from the JSON (``docs/figures/plot.py``); nothing here downloads anything.

- ``demo_reward_curve``: ``make demo``'s run (``recipes/grpo.py --config recipes/configs/demo.yaml``, GRPO).
- ``pass_at_k_spectrum``: pass@k, k = 1 ... 64, from 64 samples per held-out problem, before and after that run.
- ``drpo_tradeoff``: GRPO, DRPO at three λ and ``drpo_length`` from one policy that answers either tersely
  (``19``) or verbosely (``12+7=19``): held-out accuracy against the mean length of correct answers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("demo_reward_curve", "pass_at_k_spectrum", "drpo_tradeoff")
PASS_AT_K_SAMPLES = 64
DRPO_RUNS = (
    ("GRPO", {"advantage_estimator": "grpo"}),
    ("DRPO λ=0.1", {"policy_loss": "drpo", "length_lambda": 0.1}),
    ("DRPO λ=0.5", {"policy_loss": "drpo", "length_lambda": 0.5}),
    ("DRPO λ=2", {"policy_loss": "drpo", "length_lambda": 2.0}),
    ("drpo_length λ=0.1", {"advantage_estimator": "drpo_length", "length_lambda": 0.1}),
)


def versions() -> dict[str, str]:
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def demo_reward_curve(work: Path, smoke: bool) -> dict:
    """``make demo``'s command, in a subprocess; its summary.json has the log history and the accuracies."""
    output_dir = work / "demo"
    command = [sys.executable, "recipes/grpo.py", "--config", "recipes/configs/demo.yaml", "--output_dir"]
    command += [str(output_dir), "--disable_tqdm", "true"]
    if smoke:
        command += ["--max_steps", "2", "--logging_steps", "1", "--num_eval_prompts", "8"]
        command += ["--warmup_max_steps", "10", "--per_device_train_batch_size", "16"]
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    summary = json.loads((output_dir / "summary.json").read_text())
    rows = [row for row in summary["log_history"] if "reward" in row]
    return {
        "command": " ".join(command[1:4] + ["--output_dir", "<dir>"] + command[6:]),
        "method": summary["method"],
        "steps": [row["step"] for row in rows],
        "reward": [row["reward"] for row in rows],
        "accuracy_before": summary["accuracy_before"],
        "accuracy_after": summary["accuracy_after"],
        "eval_prompts": summary["eval_prompts"],
        "train_seconds": summary["wall_seconds"],
    }


def held_out_problems(num_eval: int):
    from trl_reasoning.recipes import DatasetArguments, load_task

    return load_task(DatasetArguments(num_eval_prompts=num_eval)).evaluation


def sample_correct(model, tokenizer, dataset, *, num_samples: int, max_new_tokens: int, seed: int = 0):
    """(correct counts per problem, token lengths of correct completions) from ``num_samples`` samples each."""
    from trl_reasoning.embedded import arithmetic_reward, last_integer
    from trl_reasoning.generation import sample_completions

    samples = sample_completions(
        model,
        tokenizer,
        dataset,
        arithmetic_reward,
        num_samples=num_samples,
        max_new_tokens=max_new_tokens,
        temperature=1.0,
        batch_size=512,
        answer_extractor=last_integer,
        seed=seed,
    )
    correct = samples["correct"]
    counts = [sum(correct[i : i + num_samples]) for i in range(0, len(correct), num_samples)]
    lengths = [
        len(tokenizer(row["completion"][-1]["content"], add_special_tokens=False)["input_ids"])
        for row in samples
        if row["correct"]
    ]
    return counts, lengths


def pass_at_k_spectrum(work: Path, smoke: bool) -> dict:
    """pass@k of the demo's starting policy (its warm-up cache) and of the policy it trained."""
    from transformers import AutoModelForCausalLM

    from trl_reasoning.embedded import build_tokenizer
    from trl_reasoning.evaluation import mean_pass_at_k

    demo = work / "demo"
    if not (demo / "summary.json").exists():
        demo_reward_curve(work, smoke)
    num_samples = 4 if smoke else PASS_AT_K_SAMPLES
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= num_samples]
    problems = held_out_problems(8 if smoke else 200)
    tokenizer = build_tokenizer()
    curves = {}
    method = json.loads((demo / "summary.json").read_text())["method"]
    for label, path in (("before (warm-up)", demo / "warmup"), (f"after {method}", demo)):
        model = AutoModelForCausalLM.from_pretrained(path)
        counts, _ = sample_correct(model, tokenizer, problems, num_samples=num_samples, max_new_tokens=6)
        curves[label] = {str(k): value for k, value in mean_pass_at_k(counts, num_samples, ks).items()}
    return {
        "policies": "the demo run's warm-up checkpoint and its final model (recipes/configs/demo.yaml)",
        "problems": len(problems),
        "samples_per_problem": num_samples,
        "temperature": 1.0,
        "max_new_tokens": 6,
        "seed": 0,
        "ks": ks,
        "curves": curves,
    }


def drpo_tradeoff(work: Path, smoke: bool) -> dict:
    """GRPO vs DRPO from one policy that sometimes restates the problem before the answer."""
    from transformers import AutoModelForCausalLM

    from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
    from trl_reasoning.embedded import arithmetic_reward, arithmetic_split, build_tokenizer, warm_up_mixed_lengths

    seed, steps, num_samples = 0, (2 if smoke else 600), (2 if smoke else 16)
    train, held_out = arithmetic_split(num_eval=8 if smoke else 200)
    tokenizer = build_tokenizer()
    start = work / "drpo_start"
    # answers either "12+7=19" or "19", warmed up to 30 % greedy accuracy
    model, verbose_share = warm_up_mixed_lengths(tokenizer, train, seed=seed, max_steps=10 if smoke else 3000)
    model.save_pretrained(start)

    def measure(model) -> dict:
        counts, lengths = sample_correct(model, tokenizer, held_out, num_samples=num_samples, max_new_tokens=12)
        return {
            "accuracy": sum(counts) / (len(counts) * num_samples),
            "mean_correct_length": sum(lengths) / len(lengths) if lengths else None,
        }

    runs = [{"label": "start (warm-up)", **measure(model)}]
    for label, method in DRPO_RUNS:
        config = ReasoningGRPOConfig(
            output_dir=str(work / "drpo_runs"),
            max_steps=steps,
            per_device_train_batch_size=16 if smoke else 64,
            num_generations=8,
            max_completion_length=12,
            temperature=1.0,
            learning_rate=1e-3,
            beta=0.0,
            seed=seed,
            logging_steps=max(1, steps // 5),
            use_cpu=True,
            bf16=False,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            **method,
        )
        started = time.time()
        trainer = ReasoningGRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(start),
            processing_class=tokenizer,
            reward_funcs=arithmetic_reward,
            args=config,
            train_dataset=train,
        )
        trainer.train()
        runs.append(
            {"label": label, **method, "train_seconds": round(time.time() - started, 1), **measure(trainer.model)}
        )
        print(runs[-1], flush=True)
    return {
        "steps": steps,
        "completions_per_step": config.per_device_train_batch_size,
        "num_generations": 8,
        "max_completion_length": 12,
        "learning_rate": 1e-3,
        "verbose_share_in_warm_up": round(verbose_share, 3),
        "held_out_problems": len(held_out),
        "samples_per_problem": num_samples,
        "runs": runs,
    }


EXPERIMENTS = {
    "demo_reward_curve": demo_reward_curve,
    "pass_at_k_spectrum": pass_at_k_spectrum,
    "drpo_tradeoff": drpo_tradeoff,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES), help="figures to regenerate")
    parser.add_argument("--smoke", action="store_true", help="a few steps and samples each (for the CI test)")
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).parent / "data", help="where the JSON goes")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "figures", help="models and runs")
    args = parser.parse_args(argv)
    # Smoke runs keep their models apart, so a later full run never evaluates a smoke-trained model.
    work_dir = args.work_dir / ("smoke" if args.smoke else "full")

    import torch

    torch.set_num_threads(1)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        started = time.time()
        result = EXPERIMENTS[name](work_dir, args.smoke)
        result = {"figure": name, "smoke": args.smoke, **result, "versions": versions()}
        result["wall_seconds"] = round(time.time() - started, 1)
        (args.data_dir / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"{name}: {result['wall_seconds']} s -> {args.data_dir / (name + '.json')}", flush=True)


if __name__ == "__main__":
    main()

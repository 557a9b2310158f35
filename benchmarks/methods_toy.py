"""The methods side by side on the embedded task: pass@1 ... pass@64, maj@k, correct-answer length, wall time.

    # 8 methods x 3 seeds, 400 steps each (29 min on 1 CPU thread), written where the docs' table and plots read it
    python benchmarks/methods_toy.py --data-json docs/figures/data/methods_toy.json
    python benchmarks/methods_toy.py --methods GRPO NSR --seeds 0      # -> outputs/methods_toy/methods_toy.json
    python benchmarks/methods_toy.py --smoke --out-dir /tmp/toy        # what CI runs: 2 steps, every method

For each seed, one starting policy: the tiny Qwen2 model warmed up (supervised) until it answers 30 % of its
training problems greedily, on targets that for a random half of the problems restate the problem before the answer
(``12+7=19`` instead of ``19``), so correct answers come in two lengths and length-aware methods have something to
shorten. From that policy every method trains with the same budget: ``--steps`` steps of 64 completions (8 prompts
x 8), up to 12 tokens, temperature 1, learning rate 1e-3, no KL, one optimizer step per generation batch. A method
is its settings in ``recipes/configs/<config>.yaml`` (estimator, loss, λ, loss aggregation; nothing else from the
file). Then 64 samples per held-out problem (200 problems never trained on) at temperature 1 give pass@k
(``trl_reasoning.evaluation``), maj@k and the mean token length of correct answers.

Prints a table (mean ± standard deviation over seeds) and one per seed, and writes every number to ``--data-json``
(``docs/figures/data/methods_toy.json`` for the docs: ``make docs`` turns it into the plots of the "Method
benchmark" page). Single-threaded and seeded: a rerun on the same machine gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "configs"
# label -> the recipe config the method's settings come from
METHODS = {
    "GRPO": "grpo",
    "PSR": "psr",
    "NSR": "nsr",
    "W-REINFORCE": "w_reinforce",
    "DRPO": "drpo",
    "drpo_length": "drpo_length",
    "BNPO": "bnpo",
    "TOPR": "topr",
}
# the config keys that define a method (the budget, optimiser and model settings are shared, below)
METHOD_KEYS = (
    "advantage_estimator",
    "policy_loss",
    "positive_weight",
    "length_lambda",
    "drpo_tau",
    "drpo_kl_delta",
    "drpo_kl_beta",
    "topr_reward_source",
    "topr_ratio_level",
    "topr_taper_by",
    "topr_target_positive_fraction",
    "beta_norm_decompose",
    "loss_type",
    "scale_rewards",
)
SHARED = {
    "per_device_train_batch_size": 64,
    "num_generations": 8,
    "max_completion_length": 12,
    "temperature": 1.0,
    "learning_rate": 1e-3,
    "beta": 0.0,
    "num_iterations": 1,
}
KS = (1, 2, 4, 8, 16, 32, 64)
WARMUP_TARGET = 0.3
VERBOSE_SHARE = 0.5


def method_settings(config: str) -> dict:
    """The method-defining keys of ``recipes/configs/<config>.yaml``."""
    import yaml

    values = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    return {key: values[key] for key in METHOD_KEYS if key in values}


def start_policy(tokenizer, train, seed: int, work: Path, smoke: bool):
    """The seed's warmed-up policy (cached in ``work/start-<seed>``) and the share of verbose warm-up targets."""
    from transformers import AutoModelForCausalLM

    from trl_reasoning.embedded import warm_up_mixed_lengths, with_verbose_answers

    # the share is recomputed (cheap, seeded) so a cached start reports it too
    _, verbose_share = with_verbose_answers(train, share=VERBOSE_SHARE, seed=seed)
    path = work / f"start-{seed}"
    if not (path / "config.json").exists():
        model, _ = warm_up_mixed_lengths(
            tokenizer,
            train,
            seed=seed,
            verbose_share=VERBOSE_SHARE,
            target_accuracy=WARMUP_TARGET,
            max_steps=10 if smoke else 3000,
        )
        model.save_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path), verbose_share


def measure(model, tokenizer, held_out, samples: int) -> dict:
    from trl_reasoning.embedded import arithmetic_reward, last_integer
    from trl_reasoning.evaluation import evaluate

    result = evaluate(
        model,
        held_out,
        arithmetic_reward,
        samples,
        [k for k in KS if k <= samples],
        tokenizer=tokenizer,
        max_new_tokens=SHARED["max_completion_length"],
        batch_size=512,
        answer_extractor=last_integer,
        backend="transformers",
    )
    return {
        "pass@k": {str(k): round(v, 4) for k, v in result.pass_at_k.items()},
        "maj@k": {str(k): round(v, 4) for k, v in result.maj_at_k.items()},
        "mean_correct_length": None if result.mean_correct_length is None else round(result.mean_correct_length, 3),
        "mean_incorrect_length": None
        if result.mean_incorrect_length is None
        else round(result.mean_incorrect_length, 3),
    }


def run_grpo(model_path: Path, tokenizer, train, reward_func, fields: dict, work: Path, **model_kwargs):
    """Train ``ReasoningGRPOTrainer`` from ``model_path`` on the CPU with the config ``fields``; return the trainer and
    the training seconds (the benchmarks' one training loop: methods_toy, dropped_samples_toy, real_model)."""
    from transformers import AutoModelForCausalLM
    from transformers.trainer_callback import PrinterCallback

    from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer

    config = ReasoningGRPOConfig(
        output_dir=str(work / "runs"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        **fields,
    )
    trainer = ReasoningGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path, **model_kwargs),
        processing_class=tokenizer,
        reward_funcs=reward_func,
        args=config,
        train_dataset=train,
    )
    trainer.pop_callback(PrinterCallback)  # the table below says what matters; no log dict per step
    started = time.perf_counter()
    trainer.train()
    return trainer, time.perf_counter() - started


def train_method(start_dir: Path, tokenizer, train, settings: dict, shared: dict, seed: int, steps: int, work: Path):
    from trl_reasoning.embedded import arithmetic_reward

    fields = dict(max_steps=steps, seed=seed, logging_steps=max(1, steps // 30), **shared, **settings)
    trainer, seconds = run_grpo(start_dir, tokenizer, train, arithmetic_reward, fields, work)
    curve = [
        [row["step"], round(row["reward"], 4)]
        for row in trainer.state.log_history
        if "reward" in row and "step" in row
    ]
    return trainer.model, seconds, curve


def report(run: dict) -> None:
    """One line per finished run, as the benchmark goes."""
    largest = list(run["pass@k"])[-1]
    seconds = f" ({run['train_seconds']:.0f} s)" if "train_seconds" in run else ""
    print(
        f"seed {run['seed']} {run['label']:<15} pass@1 {run['pass@k']['1']:.3f} pass@{largest} "
        f"{run['pass@k'][largest]:.3f} correct length {run['mean_correct_length']}{seconds}",
        flush=True,
    )


def summarise(runs: list[dict], labels: list[str]) -> list[dict]:
    """Mean and standard deviation over seeds of each method's numbers."""

    def mean_std(values):
        values = [v for v in values if v is not None]
        if not values:
            return None, None
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    rows = []
    for label in labels:
        mine = [run for run in runs if run["label"] == label]
        row = {"label": label, "seeds": len(mine)}
        for k in mine[0]["pass@k"]:
            row[f"pass@{k}"] = mean_std([run["pass@k"][k] for run in mine])
            row[f"maj@{k}"] = mean_std([run["maj@k"][k] for run in mine])
        row["mean_correct_length"] = mean_std([run["mean_correct_length"] for run in mine])
        row["train_seconds"] = mean_std([run.get("train_seconds") for run in mine])
        rows.append(row)
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def format_table(summary: list[dict], ks: list[str]) -> str:
    def cell(pair, digits=3):
        mean, std = pair
        return "n/a" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"

    maj = "8" if "8" in ks else ks[-1]
    header = ["method", *(f"pass@{k}" for k in ks), f"maj@{maj}", "correct len", "train s"]
    rows = [
        [row["label"], *(cell(row[f"pass@{k}"]) for k in ks), cell(row[f"maj@{maj}"])]
        + [cell(row["mean_correct_length"], 2), cell(row["train_seconds"], 0)]
        for row in summary
    ]
    return markdown_table(header, rows)


def format_per_seed_table(runs: list[dict], labels: list[str], largest_k: str) -> str:
    """pass@1 / pass@<largest k> / mean correct length of every run, one column per seed (paired comparisons)."""
    seeds = sorted({run["seed"] for run in runs})
    by_key = {(run["label"], run["seed"]): run for run in runs}

    def cell(run):
        if run is None:
            return ""
        length = "n/a" if run["mean_correct_length"] is None else f"{run['mean_correct_length']:.2f}"
        return f"{run['pass@k']['1']:.3f} / {run['pass@k'][largest_k]:.3f} / {length}"

    rows = [[label, *(cell(by_key.get((label, seed))) for seed in seeds)] for label in labels]
    return markdown_table(["method", *(f"seed {seed}" for seed in seeds)], rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=400, help="training steps per method and seed")
    parser.add_argument("--learning-rate", type=float, default=SHARED["learning_rate"], help="for every method")
    parser.add_argument("--samples", type=int, default=64, help="samples per held-out problem (the largest k)")
    parser.add_argument("--eval-problems", type=int, default=200, help="held-out problems")
    parser.add_argument("--smoke", action="store_true", help="2 steps, 8 problems x 4 samples, a 10-step warm-up")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "outputs" / "methods_toy", help="models and runs")
    parser.add_argument(
        "--data-json",
        type=Path,
        default=None,
        help="where every number goes (default <out-dir>/methods_toy.json; docs/figures/data/methods_toy.json "
        "for the docs' table and plots)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.samples, args.eval_problems = 2, 4, 8
    if args.samples < 1 or args.steps < 1 or args.eval_problems < 1:
        raise SystemExit("--steps, --samples and --eval-problems must be >= 1.")
    if args.learning_rate <= 0:
        raise SystemExit(f"--learning-rate {args.learning_rate} must be > 0.")
    shared = {**SHARED, "learning_rate": args.learning_rate}
    if args.data_json is None:
        args.data_json = args.out_dir / ("methods_toy_smoke.json" if args.smoke else "methods_toy.json")

    import torch

    from trl_reasoning.embedded import arithmetic_split, build_tokenizer

    torch.set_num_threads(1)
    work = args.out_dir / ("smoke" if args.smoke else "full")
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    train, held_out = arithmetic_split(num_eval=args.eval_problems)
    started = time.perf_counter()
    runs, verbose_shares = [], {}
    for seed in args.seeds:
        model, verbose_shares[seed] = start_policy(tokenizer, train, seed, work, args.smoke)
        runs.append({"label": "start (warm-up)", "seed": seed, **measure(model, tokenizer, held_out, args.samples)})
        report(runs[-1])
        for label in args.methods:
            settings = method_settings(METHODS[label])
            model, seconds, curve = train_method(
                work / f"start-{seed}", tokenizer, train, settings, shared, seed, args.steps, work
            )
            result = measure(model, tokenizer, held_out, args.samples)
            runs.append(
                {
                    "label": label,
                    "seed": seed,
                    "settings": settings,
                    "train_seconds": round(seconds, 1),
                    **result,
                    "reward_curve": curve,
                }
            )
            report(runs[-1])
    labels = ["start (warm-up)", *args.methods]
    summary = summarise(runs, labels)
    ks = list(runs[0]["pass@k"])
    table = format_table(summary, ks)
    per_seed = format_per_seed_table(runs, labels, ks[-1])
    print(table)
    print(f"\nper seed: pass@1 / pass@{ks[-1]} / mean correct length")
    print(per_seed)
    wall = round(time.perf_counter() - started, 1)
    print(f"total wall time: {wall} s")
    import transformers
    import trl

    data = {
        "benchmark": "methods_toy",
        "smoke": args.smoke,
        "command": " ".join(["python benchmarks/methods_toy.py", *(sys.argv[1:] if argv is None else argv)]),
        "seeds": args.seeds,
        "steps": args.steps,
        "shared_settings": shared,
        "warmup_target_accuracy": WARMUP_TARGET,
        "verbose_share_in_warm_up": {str(seed): round(share, 3) for seed, share in verbose_shares.items()},
        "held_out_problems": len(held_out),
        "samples_per_problem": args.samples,
        "ks": [int(k) for k in ks],
        "summary": summary,
        "table": table,
        "per_seed_table": per_seed,
        "runs": runs,
        "wall_seconds": wall,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
    }
    args.data_json.parent.mkdir(parents=True, exist_ok=True)
    args.data_json.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.data_json}")
    return data


if __name__ == "__main__":
    main()

"""PSR and NSR with ``dropped_samples="mask"`` vs ``"remove"`` on the embedded task, from the same start.

    python benchmarks/dropped_samples_toy.py                                 # 2 seeds x PSR, NSR x mask, remove
    python benchmarks/dropped_samples_toy.py --seeds 0 --generations 10      # quicker

Each seed's starting policy is the warmed-up tiny model of ``benchmarks/methods_toy.py`` (same cache layout, same
warm-up). Each generation batch is 64 completions (8 prompts x 8) cut into 4 optimizer steps of 16, as the official
PSR/NSR scripts cut a rollout of 1024 prompts into 4 mini-batches of 256, with Adam at ``--learning-rate`` and the
method's settings from ``recipes/configs/{psr,nsr}.yaml``. After ``--generations`` generation batches it reports the
optimizer updates actually taken per generation (``dropped_samples/optimizer_steps``, mean over generations) and
pass@1 / pass@k on the held-out problems. Prints a markdown table and writes every number to ``--data-json``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import methods_toy  # noqa: E402


STEPS_PER_GENERATION = 4
METHODS = {"PSR": "psr", "NSR": "nsr"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--generations", type=int, default=40, help="generation batches per run")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--samples", type=int, default=16, help="samples per held-out problem (the largest k)")
    parser.add_argument("--eval-problems", type=int, default=200)
    parser.add_argument("--out-dir", type=Path, default=methods_toy.ROOT / "outputs" / "methods_toy")
    parser.add_argument("--data-json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.data_json is None:
        args.data_json = args.out_dir / "dropped_samples_toy.json"

    import torch

    from trl_reasoning.embedded import arithmetic_split, build_tokenizer

    torch.set_num_threads(1)
    work = args.out_dir / "full"
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    train, held_out = arithmetic_split(num_eval=args.eval_problems)
    shared = {
        **methods_toy.SHARED,
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": methods_toy.SHARED["per_device_train_batch_size"] // STEPS_PER_GENERATION,
        "steps_per_generation": STEPS_PER_GENERATION,
    }
    steps = args.generations * STEPS_PER_GENERATION
    started = time.perf_counter()
    runs = []
    for seed in args.seeds:
        model, _ = methods_toy.start_policy(tokenizer, train, seed, work, smoke=False)
        start = methods_toy.measure(model, tokenizer, held_out, args.samples)
        runs.append({"label": "start", "seed": seed, **start})
        print(f"seed {seed} start: pass@1 {start['pass@k']['1']:.3f}", flush=True)
        for label in args.methods:
            for mode in ("mask", "remove"):
                settings = {**methods_toy.method_settings(METHODS[label]), "dropped_samples": mode}
                model, seconds, updates = train_run(work, tokenizer, train, settings, shared, seed, steps)
                result = methods_toy.measure(model, tokenizer, held_out, args.samples)
                runs.append(
                    {
                        "label": f"{label} {mode}",
                        "seed": seed,
                        "updates_per_generation": updates,
                        "train_seconds": round(seconds, 1),
                        **result,
                    }
                )
                print(
                    f"seed {seed} {label} {mode}: {updates:.2f} updates/generation, pass@1 "
                    f"{result['pass@k']['1']:.3f}, pass@{args.samples} {result['pass@k'][str(args.samples)]:.3f} "
                    f"({seconds:.0f} s)",
                    flush=True,
                )
    table = format_table(runs, str(args.samples))
    print(table)
    data = {
        "benchmark": "dropped_samples_toy",
        "command": " ".join(["python benchmarks/dropped_samples_toy.py", *(sys.argv[1:] if argv is None else argv)]),
        "seeds": args.seeds,
        "generations": args.generations,
        "steps_per_generation": STEPS_PER_GENERATION,
        "shared_settings": shared,
        "samples_per_problem": args.samples,
        "held_out_problems": len(held_out),
        "table": table,
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.data_json.parent.mkdir(parents=True, exist_ok=True)
    args.data_json.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.data_json}")
    return data


def train_run(work: Path, tokenizer, train_set, settings: dict, shared: dict, seed: int, steps: int):
    """Train from the seed's start; return the model, the seconds and the mean optimizer updates per generation."""
    from trl_reasoning.embedded import arithmetic_reward

    # one log row per generation batch: its update count is in it
    fields = dict(max_steps=steps, seed=seed, logging_steps=STEPS_PER_GENERATION, **shared, **settings)
    trainer, seconds = methods_toy.run_grpo(
        work / f"start-{seed}", tokenizer, train_set, arithmetic_reward, fields, work
    )
    counts = [
        row["dropped_samples/optimizer_steps"]
        for row in trainer.state.log_history
        if "dropped_samples/optimizer_steps" in row
    ]
    return trainer.model, seconds, statistics.mean(counts)


def format_table(runs: list[dict], largest_k: str) -> str:
    labels = list(dict.fromkeys(run["label"] for run in runs))

    def mean(label, pick):
        values = [pick(run) for run in runs if run["label"] == label]
        return statistics.mean(values), values

    lines = [
        f"| run | updates per generation | pass@1 (mean; per seed) | pass@{largest_k} (mean; per seed) |",
        "|---|---|---|---|",
    ]
    for label in labels:
        updates = "—" if label == "start" else f"{mean(label, lambda r: r['updates_per_generation'])[0]:.2f}"
        cells = []
        for k in ("1", largest_k):
            value, values = mean(label, lambda r, k=k: r["pass@k"][k])
            cells.append(f"{value:.3f} ({', '.join(f'{v:.3f}' for v in values)})")
        lines.append(f"| {label} | {updates} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

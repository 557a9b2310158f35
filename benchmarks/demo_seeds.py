"""`make demo` over seeds and floating-point paths: does held-out greedy accuracy rise on every one of them?

    # the docs' table: 8 seeds x {1 thread, 2 threads, AVX2 kernels, portable kernels}, two 1-thread runs at a time
    python benchmarks/demo_seeds.py --jobs 2 --json docs/figures/data/demo_seeds.json
    # other settings: anything after `--` is passed to recipes/grpo.py after the config
    python benchmarks/demo_seeds.py --seeds 0 1 2 3 --threads 1 --kernels --jobs 2 -- --learning_rate 1e-3

Each run is the demo's own command (``recipes/grpo.py --config recipes/configs/demo.yaml``) with ``--seed`` and
``OMP_NUM_THREADS`` set for its subprocess, in ``<out-dir>/seed<S>-threads<T>[-<kernels>]``. Another CPU takes
another floating-point path, and so another trajectory (warm-up, sampling, updates): a demo that learns for every
seed on every path does not depend on one machine's arithmetic. On one machine the path changes with

- the seed (model initialisation, warm-up batches, sampling);
- ``--kernels``: the vectorised kernels torch picks for the CPU (``ATEN_CPU_CAPABILITY``; ``avx2`` is what a CPU
  without AVX-512 runs, ``default`` the portable ones), each run at 1 thread. This is what differs between two x86
  machines with the same library versions.

``--threads`` runs with the CPU's own kernels; for the tiny model 1 and 2 threads give bit-identical runs (its
tensors are too small for torch to split between threads), which the table shows.

The warm-up is cached per run directory (``<run>/warmup``), so a rerun into the same ``--out-dir`` with other
training flags (and the same warm-up flags) reuses it; ``--reuse`` keeps whole runs that have finished.

Prints a markdown table (seed x path: accuracy before, after, the gain, training seconds), then one row per seed
with the gain on every path, and the min / median / max gain; with ``--json`` writes every number. ``--jobs N``
runs jobs side by side as long as their threads add up to at most N; training seconds of runs that shared the
machine (or ran beside other work) are longer than those of a run alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "recipes" / "configs" / "demo.yaml"
NATIVE = "native"  # the kernels torch picks for this CPU


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="the recipe config (default: the demo's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)), help="seeds (default: 0 to 7)")
    parser.add_argument(
        "--threads", type=int, nargs="*", default=[1, 2], help="torch thread counts, the CPU's own kernels (1 2)"
    )
    parser.add_argument(
        "--kernels",
        nargs="*",
        default=["avx2", "default"],
        help="ATEN_CPU_CAPABILITY values, each run at 1 thread (default: avx2 default; none: skip)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="threads in use at once, over all runs (default: 1)")
    parser.add_argument("--out-dir", default="outputs/demo_seeds", help="one run directory per seed and path")
    parser.add_argument("--json", default=None, help="also write the table's numbers here")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the result of a run directory that has a summary.json (resume)"
    )
    parser.add_argument(
        "recipe_args", nargs="*", help="after `--`: more recipes/grpo.py flags (they win over the config)"
    )
    args = parser.parse_args(argv)
    if min(args.threads, default=1) < 1 or args.jobs < 1:
        parser.error("--threads and --jobs must be >= 1")
    if not args.threads and not args.kernels:
        parser.error("nothing to run: give --threads or --kernels")
    if max(args.threads, default=1) > args.jobs > 1:
        print(f"note: a {max(args.threads)}-thread run needs {max(args.threads)} of --jobs {args.jobs}; it runs alone")
    return args


def paths(args) -> list[tuple[int, str]]:
    """The floating-point paths, as (threads, kernels)."""
    return [(threads, NATIVE) for threads in args.threads] + [(1, kernels.lower()) for kernels in args.kernels]


def path_label(threads: int, kernels: str) -> str:
    label = f"{threads} thread{'s' if threads > 1 else ''}"
    return label if kernels == NATIVE else f"{label}, {kernels} kernels"


def run_command(args, seed: int, run_dir: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "recipes" / "grpo.py"),
        "--config",
        str(args.config),
        "--output_dir",
        str(run_dir),
        *args.recipe_args,
        "--seed",
        str(seed),
        "--disable_tqdm",
        "true",
    ]


def run_env(threads: int, kernels: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        # idle OpenMP threads sleep instead of spinning: the same arithmetic, far faster on a busy machine
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.pop("ATEN_CPU_CAPABILITY", None)
    if kernels != NATIVE:
        env["ATEN_CPU_CAPABILITY"] = kernels
    return env


def read_result(run_dir: Path, seed: int, threads: int, kernels: str, returncode: int) -> dict:
    result = {"seed": seed, "threads": threads, "kernels": kernels, "returncode": returncode}
    summary_path = run_dir / "summary.json"
    if returncode != 0 or not summary_path.exists():
        return {**result, "accuracy_before": None, "accuracy_after": None, "gain": None, "train_seconds": None}
    summary = json.loads(summary_path.read_text())
    runtimes = [row["train_runtime"] for row in summary["log_history"] if "train_runtime" in row]
    before, after = summary["accuracy_before"], summary["accuracy_after"]
    return {
        **result,
        "method": summary["method"],
        "steps": summary["steps"],
        "eval_prompts": summary["eval_prompts"],
        "accuracy_before": before,
        "accuracy_after": after,
        "gain": None if before is None or after is None else round(after - before, 4),
        "train_seconds": runtimes[-1] if runtimes else None,
        "wall_seconds": summary["wall_seconds"],
    }


def run_all(args) -> list[dict]:
    """Every (seed, path) run, started while the threads of the running ones stay within ``--jobs``."""
    out_dir = Path(args.out_dir)
    pending = [(seed, threads, kernels) for threads, kernels in paths(args) for seed in args.seeds]
    running = []
    results = []
    while pending or running:
        busy = sum(entry["threads"] for entry in running)
        while pending and (not running or busy + pending[0][1] <= args.jobs):
            seed, threads, kernels = pending.pop(0)
            name = f"seed{seed}-threads{threads}" + ("" if kernels == NATIVE else f"-{kernels}")
            run = {"seed": seed, "threads": threads, "kernels": kernels, "dir": out_dir / name}
            what = f"seed {seed}, {path_label(threads, kernels)}"
            if args.reuse and (run["dir"] / "summary.json").exists():
                results.append(read_result(run["dir"], seed, threads, kernels, 0))
                print(f"reused {what}: {format_row(results[-1])}", flush=True)
                continue
            run["dir"].mkdir(parents=True, exist_ok=True)
            run["log"] = (run["dir"] / "log.txt").open("w")
            run["process"] = subprocess.Popen(
                run_command(args, seed, run["dir"]),
                stdout=run["log"],
                stderr=subprocess.STDOUT,
                env=run_env(threads, kernels),
                cwd=ROOT,
            )
            running.append(run)
            busy += threads
            print(f"started {what} -> {run['dir']}", flush=True)
        time.sleep(1)
        for run in [run for run in running if run["process"].poll() is not None]:
            run["log"].close()
            running.remove(run)
            result = read_result(run["dir"], run["seed"], run["threads"], run["kernels"], run["process"].returncode)
            results.append(result)
            print(f"done seed {run['seed']}, {path_label(run['threads'], run['kernels'])}: {format_row(result)}")
    order = {path: index for index, path in enumerate(paths(args))}
    return sorted(results, key=lambda r: (r["seed"], order[(r["threads"], r["kernels"])]))


def number(value, digits: int = 3) -> str:
    return "failed" if value is None else f"{value:.{digits}f}"


def format_row(result: dict) -> str:
    return (
        f"{number(result['accuracy_before'])} -> {number(result['accuracy_after'])} "
        f"(gain {number(result['gain'])}, train {number(result['train_seconds'], 0)} s)"
    )


def format_table(results: list[dict]) -> str:
    lines = ["| seed | threads | kernels | before | after | gain | train s |", "|---|---|---|---|---|---|---|"]
    for r in results:
        cells = [str(r["seed"]), str(r["threads"]), r["kernels"]]
        cells += [number(r[key]) for key in ("accuracy_before", "accuracy_after", "gain")]
        lines.append("| " + " | ".join([*cells, number(r["train_seconds"], 0)]) + " |")
    return "\n".join(lines)


def format_per_seed(results: list[dict], args) -> str:
    """One row per seed, one column per path: before → after (gain)."""
    header = ["seed", *(path_label(*path) for path in paths(args))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_key = {(r["seed"], r["threads"], r["kernels"]): r for r in results}
    for seed in args.seeds:
        cells = [str(seed)]
        for threads, kernels in paths(args):
            r = by_key.get((seed, threads, kernels))
            ok = r is not None and r["gain"] is not None
            cells.append(
                f"{r['accuracy_before']:.3f} → {r['accuracy_after']:.3f} (+{r['gain']:.3f})" if ok else "failed"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gain_summary(results: list[dict]) -> dict:
    done = [r for r in results if r["gain"] is not None]
    summary = {"runs": len(results), "failed": len(results) - len(done)}
    if not done:
        return summary
    gains = [r["gain"] for r in done]
    seconds = [r["train_seconds"] for r in done if r["train_seconds"] is not None]
    return {
        **summary,
        "gain_min": min(gains),
        "gain_median": statistics.median(gains),
        "gain_max": max(gains),
        "before_range": [min(r["accuracy_before"] for r in done), max(r["accuracy_before"] for r in done)],
        "after_range": [min(r["accuracy_after"] for r in done), max(r["accuracy_after"] for r in done)],
        "train_seconds_range": [min(seconds), max(seconds)] if seconds else None,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.time()
    results = run_all(args)
    summary = gain_summary(results)
    print()
    print(format_table(results))
    print()
    print(format_per_seed(results, args))
    print()
    if "gain_min" in summary:
        print(
            f"gain over {summary['runs'] - summary['failed']} runs: min {summary['gain_min']:.3f}, median "
            f"{summary['gain_median']:.3f}, max {summary['gain_max']:.3f}; accuracy before "
            f"{summary['before_range'][0]:.3f}-{summary['before_range'][1]:.3f}, after "
            f"{summary['after_range'][0]:.3f}-{summary['after_range'][1]:.3f}"
        )
    if summary["failed"]:
        print(f"{summary['failed']} run(s) failed: see log.txt in their directories under {args.out_dir}")
    config = Path(args.config).resolve()
    record = {
        "command": "python benchmarks/demo_seeds.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": str(config.relative_to(ROOT)) if config.is_relative_to(ROOT) else str(config),
        "recipe_args": args.recipe_args,
        "jobs": args.jobs,
        "wall_seconds": round(time.time() - started, 1),
        "summary": summary,
        "runs": results,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return record


if __name__ == "__main__":
    main()

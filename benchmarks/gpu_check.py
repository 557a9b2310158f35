"""The GPU check: what only a GPU machine can show, in one short run (under 10 minutes on one H100/H200).

    python benchmarks/gpu_check.py [--out gpu_check.json] [--cpu-smoke]

Checks, each printed as a table row and written to the JSON file:

1. ``bf16``: ``ReasoningGRPOTrainer`` (W-REINFORCE) for 3 steps in bf16 and in float32 from the same weights and
   seed on a hub-free Qwen2 (256 hidden, 4 layers): every loss finite, and the first step's losses within 5e-2 (the
   first step sees the same completions up to bf16 sampling noise; a loose bound on purpose).
2. ``speed``: training steps per second and generated tokens per second, ours (``grpo``) vs stock
   ``trl.GRPOTrainer``, side by side on the same configuration (transformers generation), and the ratio.
3. ``vllm``: the same comparison with ``use_vllm=True, vllm_mode="colocate"``, and TOPR's behaviour log-probs: the
   μ the loss reads equals vLLM's reported sampling log-probs. Needs ``vllm`` importable (not shipped with the
   device image; the row says so when it is missing).
4. ``zero3``: one ZeRO-3 step of ``recipes/grpo.py`` through ``accelerate launch`` with our ``zero3`` config on the
   GPU (1 process). Needs ``deepspeed`` importable.

``--cpu-smoke`` runs checks 1, 2 and 4's command construction on the CPU with the tiny model (seconds): what the
tests here can run of this script. ``benchmarks/gpu_check.sh`` installs the carried wheels and calls this.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer, register_policy_loss  # noqa: E402
from trl_reasoning.embedded import arithmetic_dataset, build_tiny_model, build_tokenizer  # noqa: E402
from trl_reasoning.testing import coin_reward  # noqa: E402


ROOT = Path(__file__).resolve().parents[1]


def settings(output_dir: str, cpu: bool, **overrides) -> dict:
    base = dict(
        output_dir=output_dir,
        per_device_train_batch_size=16 if cpu else 64,
        num_generations=4 if cpu else 8,
        max_completion_length=16 if cpu else 128,
        max_steps=3,
        logging_steps=1,
        report_to="none",
        use_cpu=cpu,
        bf16=False,
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
    )
    return {**base, **overrides}


def model(cpu: bool, dtype=torch.float32):
    tokenizer = build_tokenizer()
    sizes = (
        dict(hidden_size=64, num_layers=2, num_heads=2) if cpu else dict(hidden_size=256, num_layers=4, num_heads=4)
    )
    return build_tiny_model(tokenizer, **sizes).to(dtype), tokenizer


def train(config_cls, trainer_cls, cpu: bool, dtype=torch.float32, **overrides):
    policy, tokenizer = model(cpu, dtype)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = trainer_cls(
            model=policy,
            reward_funcs=coin_reward,
            args=config_cls(**settings(output_dir, cpu, **overrides)),
            train_dataset=arithmetic_dataset(512),
            processing_class=tokenizer,
        )
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return trainer, logs, seconds, None


def check_bf16(cpu: bool) -> dict:
    if cpu:  # bf16 autocast on CPU is slow and not what this checks; the smoke run checks float32 twice
        _, first, _, _ = train(ReasoningGRPOConfig, ReasoningGRPOTrainer, cpu, advantage_estimator="w_reinforce")
        _, second, _, _ = train(ReasoningGRPOConfig, ReasoningGRPOTrainer, cpu, advantage_estimator="w_reinforce")
    else:
        _, first, _, _ = train(ReasoningGRPOConfig, ReasoningGRPOTrainer, cpu, advantage_estimator="w_reinforce")
        _, second, _, _ = train(
            ReasoningGRPOConfig, ReasoningGRPOTrainer, cpu, advantage_estimator="w_reinforce", bf16=True
        )
    losses = [[entry["loss"] for entry in logs] for logs in (first, second)]
    finite = all(math.isfinite(value) for run in losses for value in run)
    gap = abs(losses[0][0] - losses[1][0])
    return {
        "float32_losses": losses[0],
        "bf16_losses": losses[1],
        "finite": finite,
        "first_step_gap": gap,
        "ok": finite and gap <= 5e-2,
    }


def check_speed(cpu: bool, **extra) -> dict:
    from trl import GRPOConfig, GRPOTrainer

    rows: dict = {}
    for name, (config_cls, trainer_cls) in {
        "trl": (GRPOConfig, GRPOTrainer),
        "ours": (ReasoningGRPOConfig, ReasoningGRPOTrainer),
    }.items():
        _, logs, seconds, _ = train(config_cls, trainer_cls, cpu, **extra)
        tokens = logs[-1].get("num_tokens", float("nan"))  # TRL's running count of prompt + completion tokens
        rows[name] = {
            "seconds": seconds,
            "steps_per_second": len(logs) / seconds,
            "tokens_per_second": tokens / seconds,
        }
    rows["ratio"] = rows["ours"]["seconds"] / rows["trl"]["seconds"]
    rows["ok"] = True if cpu else rows["ratio"] <= 1.10  # CPU timings of the tiny model are noise, not a check
    return rows


def check_vllm(cpu: bool) -> dict:
    if importlib.util.find_spec("vllm") is None:
        return {"ok": None, "skipped": "vllm is not installed on this machine"}
    result = check_speed(cpu, use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3)
    seen = {}

    @register_policy_loss("gpu_check_topr_probe")
    def probe(per_token_logps, behavior_per_token_logps, mask):
        seen.setdefault("behavior", behavior_per_token_logps.detach().cpu())
        return (per_token_logps * mask).sum() * 0.0

    train(
        ReasoningGRPOConfig,
        ReasoningGRPOTrainer,
        cpu,
        policy_loss="gpu_check_topr_probe",
        use_vllm=True,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.3,
        max_steps=1,
    )
    behavior = seen.get("behavior")
    result["topr_behavior_logps_reported"] = behavior is not None and bool(torch.isfinite(behavior).any())
    result["ok"] = result["ok"] and result["topr_behavior_logps_reported"]
    return result


def zero3_command(output_dir: str) -> list[str]:
    from trl_reasoning.accelerate_configs import config_path

    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config_path("zero3")),
        "--num_processes",
        "1",
        str(ROOT / "recipes" / "grpo.py"),
        "--config",
        str(ROOT / "recipes/configs/demo.yaml"),
        "--max_steps",
        "1",
        "--warmup_max_steps",
        "50",
        "--num_eval_prompts",
        "8",
        "--output_dir",
        output_dir,
        "--advantage_estimator",
        "w_reinforce",
    ]


def check_zero3(cpu: bool) -> dict:
    with tempfile.TemporaryDirectory() as output_dir:
        command = zero3_command(output_dir)
        if cpu or importlib.util.find_spec("deepspeed") is None:
            reason = "CPU smoke run" if cpu else "deepspeed is not installed on this machine"
            return {"ok": None, "skipped": reason, "command": " ".join(command)}
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=480)
        summary = Path(output_dir, "summary.json")
        steps = json.loads(summary.read_text())["steps"] if summary.exists() else None
        return {
            "ok": done.returncode == 0 and steps == 1,
            "seconds": time.perf_counter() - start,
            "stderr_tail": done.stderr[-1500:],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json", help="where to write the results (JSON)")
    parser.add_argument("--cpu-smoke", action="store_true", help="run on the CPU with the tiny model (seconds)")
    args = parser.parse_args()
    cpu = args.cpu_smoke
    if not cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu-smoke for the CPU smoke run", file=sys.stderr)
        return 2
    device = "cpu" if cpu else torch.cuda.get_device_name(0)
    results = {"device": device, "torch": torch.__version__}
    for name, check in (("bf16", check_bf16), ("speed", check_speed), ("vllm", check_vllm), ("zero3", check_zero3)):
        start = time.perf_counter()
        try:
            results[name] = check(cpu)
        except Exception as error:  # one failed check must not hide the others' numbers
            results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        results[name]["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(f"| check | ok | numbers ({device}) |\n|---|---|---|")
    for name in ("bf16", "speed", "vllm", "zero3"):
        row = {k: v for k, v in results[name].items() if k not in ("ok", "stderr_tail")}
        print(f"| {name} | {results[name]['ok']} | {json.dumps(row, default=str)[:300]} |")
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(results[name]["ok"] in (True, None) for name in ("bf16", "speed", "vllm", "zero3")) else 1


if __name__ == "__main__":
    sys.exit(main())

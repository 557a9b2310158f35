"""`accelerate launch recipes/grpo.py` with 2 CPU processes under DDP, DeepSpeed ZeRO-2, ZeRO-3 and FSDP2.

Each run uses the shipped accelerate config (``trl_reasoning/accelerate_configs``) with the command-line overrides a
CPU machine needs, and checks from ``summary.json`` that it really ran as 2 processes under that backend (accelerate
silently falls back to independent single-process runs in some set-ups), trained, logged the method's metrics, and
evaluated the model it prepared: the held-out greedy accuracy before training must equal the accuracy of the same
warmed-up model evaluated here in one process, so ZeRO-3's parameter gathering and FSDP2's sharded forward are
checked too. How the backends run on CPU:

* DDP: ``--use_cpu true`` (gloo);
* DeepSpeed: ``DS_ACCELERATOR=cpu`` and ``--use_cpu false --ddp_backend gloo`` (its C++ ops compile on first use,
  cached in ``~/.cache/torch_extensions``);
* FSDP2: accelerate 1.15 only enables FSDP from a GPU state, so ``tests/distributed/fsdp_cpu_launch.py`` (test-only)
  lets the CPU state honour the FSDP plugin and prints proof that the parameters are DTensors.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")
# A short run on the demo config, starting from a shared warm-up (see the `warmed_up` fixture).
RECIPE_FLAGS = [
    "--config",
    str(ROOT / "recipes" / "configs" / "demo.yaml"),
    "--max_steps",
    "3",
    "--logging_steps",
    "1",
    "--num_eval_prompts",
    "16",
    "--warmup_max_steps",
    "400",
    "--per_device_train_batch_size",
    "16",
]
pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(900)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def warmed_up(tmp_path_factory):
    """The embedded model warmed up once (as the recipe would, same settings), and its held-out greedy accuracy."""
    from trl_reasoning.recipes import DatasetArguments, load_task
    from trl_reasoning.recipes.model import embedded_policy, greedy_accuracy
    from trl_reasoning.testing import build_tokenizer

    args = DatasetArguments(num_eval_prompts=16, warmup_max_steps=400)
    output_dir = tmp_path_factory.mktemp("warmup")
    tokenizer = build_tokenizer()
    model = embedded_policy(tokenizer, args, str(output_dir), seed=0)
    task = load_task(args)
    accuracy = greedy_accuracy(model, tokenizer, task.evaluation, task.accuracy, max_new_tokens=6)
    return output_dir / "warmup", accuracy


def launch(tmp_path, warmed_up, config: str, *flags: str, env=None, wrapper=None) -> dict:
    """Run the recipe with 2 processes under ``config``; return its summary (after checking it exited cleanly)."""
    cache, _ = warmed_up
    shutil.copytree(cache, tmp_path / "warmup")
    from trl_reasoning.accelerate_configs import config_path

    cmd = [
        str(ACCELERATE),
        "launch",
        "--config_file",
        str(config_path(config)),
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        *([str(wrapper)] if wrapper else []),
        str(ROOT / "recipes" / "grpo.py"),
        *RECIPE_FLAGS,
        "--output_dir",
        str(tmp_path),
        *flags,
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=850, env=environment, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["stdout"] = result.stdout
    return summary


def check_run(summary: dict, warmed_up, distributed_type: str, method: str, metrics: tuple[str, ...]) -> None:
    assert summary["num_processes"] == 2 and summary["distributed_type"] == distributed_type
    assert summary["method"] == method and summary["steps"] == 3
    assert f"method: {method} | processes: 2 ({distributed_type})" in summary["stdout"]
    logged = {key for row in summary["log_history"] for key in row}
    missing = [metric for metric in metrics if metric not in logged]
    assert not missing, f"{missing} not logged; logged: {sorted(logged)}"
    _, accuracy = warmed_up
    assert summary["accuracy_before"] == accuracy  # the same model, evaluated through the backend
    assert 0.0 <= summary["accuracy_after"] <= 1.0


def test_ddp(tmp_path, warmed_up):
    summary = launch(tmp_path, warmed_up, "multi_gpu", "--use_cpu", "true", "--advantage_estimator", "nsr")
    check_run(summary, warmed_up, "MULTI_CPU", "GRPO with NSR", ("advantage/mean_incorrect", "advantage/frac_dropped"))
    assert (tmp_path / "model.safetensors").exists()


DEEPSPEED = ("--use_cpu", "false", "--ddp_backend", "gloo")


def test_deepspeed_zero2(tmp_path, warmed_up):
    summary = launch(
        tmp_path,
        warmed_up,
        "zero2",
        *DEEPSPEED,
        "--advantage_estimator",
        "grpo",
        "--policy_loss",
        "drpo",
        "--length_lambda",
        "0.1",
        env={"DS_ACCELERATOR": "cpu"},
    )
    check_run(summary, warmed_up, "DEEPSPEED", "DRPO", ("drpo/kl", "drpo/length_correct", "drpo/weight_entropy"))


def test_deepspeed_zero3(tmp_path, warmed_up):
    summary = launch(
        tmp_path, warmed_up, "zero3", *DEEPSPEED, "--advantage_estimator", "w_reinforce", env={"DS_ACCELERATOR": "cpu"}
    )
    check_run(
        summary,
        warmed_up,
        "DEEPSPEED",
        "GRPO with W-REINFORCE",
        ("advantage/mean_correct", "advantage/mean_incorrect", "advantage/frac_correct"),
    )
    assert (tmp_path / "model.safetensors").exists()  # zero3_save_16bit_model gathers the shards into one model


def test_fsdp2(tmp_path, warmed_up):
    wrapper = ROOT / "tests" / "distributed" / "fsdp_cpu_launch.py"
    summary = launch(
        tmp_path, warmed_up, "fsdp2", "--use_cpu", "true", "--advantage_estimator", "beta_norm", wrapper=wrapper
    )
    check_run(summary, warmed_up, "FSDP", "GRPO with BNPO", ("beta_norm/alpha", "beta_norm/beta"))
    # the model really was sharded: FSDP2 turns the parameters of every wrapped module into DTensors
    proof = [line for line in summary["stdout"].splitlines() if line.startswith("FSDP2 check:")]
    assert proof, summary["stdout"][-2000:]
    words = proof[0].split()
    assert words[2].startswith("FSDP") and int(words[3]) > 0

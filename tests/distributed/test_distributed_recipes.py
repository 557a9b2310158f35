"""`accelerate launch recipes/grpo.py` with 2 CPU processes under DDP, DeepSpeed ZeRO-2, ZeRO-3 (also with CPU
offload) and FSDP2.

Each run uses the shipped accelerate config (``trl_reasoning/accelerate_configs``) with the command-line overrides a
CPU machine needs, and checks from ``summary.json`` that it really ran as 2 processes under that backend (accelerate
silently falls back to independent single-process runs in some set-ups), trained, logged the method's metrics, and
evaluated the model it prepared: the held-out greedy accuracy before training must equal the accuracy of the same
warmed-up model evaluated here in one process, so ZeRO-3's parameter gathering and FSDP2's sharded forward are
checked too. Every rank must exit cleanly (exit code 0, no traceback or gloo teardown abort). How the backends run on
CPU:

* DDP: ``--use_cpu true`` (gloo); without it each rank would silently train alone;
* DeepSpeed: ``DS_ACCELERATOR=cpu`` and ``--use_cpu false --ddp_backend gloo`` (its C++ ops compile on first use,
  cached in ``~/.cache/torch_extensions``: about a minute for the shared-memory communication op, two more for CPU
  Adam, which only ``zero3_offload`` needs);
* FSDP2: accelerate 1.15 only enables FSDP from a GPU state, so ``tests/distributed/fsdp_cpu_launch.py`` (test-only)
  lets the CPU state honour the FSDP plugin and prints proof that every parameter is a DTensor shard.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest


ROOT = Path(__file__).parents[2]
ACCELERATE = Path(sys.executable).with_name("accelerate")
FSDP_CPU_LAUNCH = ROOT / "tests" / "distributed" / "fsdp_cpu_launch.py"
# 400 warm-up steps: the embedded model then answers some problems right (held-out greedy accuracy 2/16), so every
# method sees correct and incorrect completions; after 50 it answers none and the methods' metrics would be empty.
WARMUP_STEPS = 400
EVAL_PROMPTS = 16
# A short run on the demo config: 2 processes x 16 completions = 4 prompts x 8 generations per step.
RECIPE_FLAGS = [
    "--config",
    str(ROOT / "recipes" / "configs" / "demo.yaml"),
    "--max_steps",
    "3",
    "--logging_steps",
    "1",
    "--num_eval_prompts",
    str(EVAL_PROMPTS),
    "--warmup_max_steps",
    str(WARMUP_STEPS),
    "--per_device_train_batch_size",
    "16",
    "--num_generations",
    "8",
]
DEEPSPEED = ("--use_cpu", "false", "--ddp_backend", "gloo")
DEEPSPEED_ENV = {"DS_ACCELERATOR": "cpu"}
# A launch is killed (with its ranks) after LAUNCH_TIMEOUT; pytest-timeout is the last resort above it. A cold
# DeepSpeed op cache costs about 1 min (zero2/zero3) or 3 min (zero3_offload) of compiling on 2 busy cores.
LAUNCH_TIMEOUT = 540
# Signs of a rank dying at exit even when the launcher's exit code is 0.
FSDP2_PROOF = (
    r"^FSDP2 check: (\w+) (\d+) DTensor parameters of (\d+), (\d+) FSDP units, mesh cpu x(\d+), "
    r"(\d+) optimizer DTensors, rank-0 shard (\d+) of (\d+) elements \(distributed_type FSDP\)$"
)
EXIT_FAILURES = ("Traceback (most recent call last)", "terminate called", "Aborted", "core dumped")

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(600)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_tree(pid: int) -> None:
    """SIGKILL the launcher and every process under it. Killing the launcher alone (or its process group) is not
    enough: torchrun starts each rank in a session of its own, and orphaned ranks keep the output pipes open while
    they wait on the launcher's store (10 minutes by default)."""
    launcher = psutil.Process(pid)
    processes = [launcher, *launcher.children(recursive=True)]
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=30)


@pytest.fixture(scope="module")
def warmed_up(tmp_path_factory):
    """The embedded model warmed up once (as the recipe would, same settings), and its held-out greedy accuracy.

    Each launch gets a copy in ``<output_dir>/warmup``, which the recipe reuses since the settings match."""
    from trl_reasoning.embedded import build_tokenizer
    from trl_reasoning.recipes import DatasetArguments, load_task
    from trl_reasoning.recipes.model import embedded_policy, greedy_accuracy

    args = DatasetArguments(num_eval_prompts=EVAL_PROMPTS, warmup_max_steps=WARMUP_STEPS)
    output_dir = tmp_path_factory.mktemp("warmup")
    tokenizer = build_tokenizer()
    model = embedded_policy(tokenizer, args, str(output_dir), seed=0)
    task = load_task(args)
    accuracy = greedy_accuracy(model, tokenizer, task.evaluation, task.accuracy, max_new_tokens=6)
    return output_dir / "warmup", accuracy


def launch(tmp_path, warmed_up, config: str, *flags: str, env=None, wrapper=None) -> dict:
    """Run the recipe with 2 processes under ``config``; return its summary (after checking it exited cleanly)."""
    from trl_reasoning.accelerate_configs import config_path

    cache, _ = warmed_up
    shutil.copytree(cache, tmp_path / "warmup")
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
    # OMP_NUM_THREADS=1: two ranks on two cores, not two ranks of N threads each
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=ROOT
    )
    try:
        stdout, stderr = process.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        stdout, stderr = process.communicate()
        pytest.fail(f"{config} launch still running after {LAUNCH_TIMEOUT} s\n{stdout[-2000:]}\n{stderr[-4000:]}")
    assert process.returncode == 0, f"exit code {process.returncode}\n{stdout[-2000:]}\n{stderr[-4000:]}"
    failures = [sign for sign in EXIT_FAILURES if sign in stderr]
    assert not failures, f"{failures} in stderr although the exit code is 0:\n{stderr[-4000:]}"
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["stdout"] = stdout
    return summary


def check_run(summary: dict, warmed_up, distributed_type: str, method: str, metrics: tuple[str, ...]) -> None:
    assert summary["num_processes"] == 2 and summary["distributed_type"] == distributed_type
    assert summary["method"] == method and summary["steps"] == 3
    assert f"method: {method} | processes: 2 ({distributed_type})" in summary["stdout"]
    logged = {key for row in summary["log_history"] for key in row}
    missing = [metric for metric in metrics if metric not in logged]
    assert not missing, f"{missing} not logged; logged: {sorted(logged)}"
    steps = [row["step"] for row in summary["log_history"] if "advantage/frac_correct" in row]
    assert steps == [1, 2, 3]  # one row per step (logging_steps 1)
    _, accuracy = warmed_up
    assert summary["accuracy_before"] == accuracy  # the same model, evaluated through the backend
    assert isinstance(summary["accuracy_after"], float) and 0.0 <= summary["accuracy_after"] <= 1.0


# pass@k evaluation at the last step (sampling on the sharded model: parameters gathered, generation synced)
PASS_AT_K = ("--pass_at_k_samples", "2", "--pass_at_k_steps", "3")


def check_pass_at_k(summary: dict) -> None:
    rows = [row for row in summary["log_history"] if "eval/pass@1" in row]
    assert [row["step"] for row in rows] == [3]
    assert 0.0 <= rows[0]["eval/pass@1"] <= rows[0]["eval/pass@2"] <= 1.0


def test_ddp(tmp_path, warmed_up):
    summary = launch(tmp_path, warmed_up, "multi_gpu", "--use_cpu", "true", "--advantage_estimator", "nsr")
    check_run(
        summary,
        warmed_up,
        "MULTI_CPU",
        "GRPO with NSR",
        ("advantage/mean_incorrect", "advantage/frac_dropped", "advantage/mean_abs", "advantage/frac_correct"),
    )
    assert (tmp_path / "model.safetensors").exists()


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
        env=DEEPSPEED_ENV,
    )
    check_run(
        summary,
        warmed_up,
        "DEEPSPEED",
        "DRPO",
        ("drpo/kl", "drpo/kl_coef", "drpo/length_correct", "drpo/weight_entropy", "drpo/frac_valid_groups"),
    )


def test_deepspeed_zero3(tmp_path, warmed_up):
    summary = launch(
        tmp_path, warmed_up, "zero3", *DEEPSPEED, "--advantage_estimator", "w_reinforce", *PASS_AT_K, env=DEEPSPEED_ENV
    )
    check_run(
        summary,
        warmed_up,
        "DEEPSPEED",
        "GRPO with W-REINFORCE",
        ("advantage/mean_correct", "advantage/mean_incorrect", "advantage/frac_correct"),
    )
    assert (tmp_path / "model.safetensors").exists()  # zero3_save_16bit_model gathers the shards into one model
    check_pass_at_k(summary)


def test_deepspeed_zero3_offload(tmp_path, warmed_up):
    # parameters and optimizer states in CPU memory, stepped by DeepSpeed's CPU Adam (compiled on first use)
    summary = launch(
        tmp_path, warmed_up, "zero3_offload", *DEEPSPEED, "--advantage_estimator", "psr", env=DEEPSPEED_ENV
    )
    check_run(
        summary,
        warmed_up,
        "DEEPSPEED",
        "GRPO with PSR",
        ("advantage/mean_correct", "advantage/frac_dropped", "advantage/frac_correct"),
    )
    assert (tmp_path / "model.safetensors").exists()


def test_fsdp2(tmp_path, warmed_up):
    summary = launch(
        tmp_path,
        warmed_up,
        "fsdp2",
        "--use_cpu",
        "true",
        "--advantage_estimator",
        "beta_norm",
        *PASS_AT_K,
        wrapper=FSDP_CPU_LAUNCH,
    )
    check_pass_at_k(summary)
    check_run(summary, warmed_up, "FSDP", "GRPO with BNPO", ("beta_norm/alpha", "beta_norm/beta"))
    assert (tmp_path / "model.safetensors").exists()  # FULL_STATE_DICT: one ordinary model
    # the model really was sharded: every parameter (and what the optimizer steps) a DTensor, split in half
    proof = re.findall(FSDP2_PROOF, summary["stdout"], flags=re.MULTILINE)
    assert len(proof) == 1, summary["stdout"][-2000:]
    model_class, sharded, parameters, units, world, optimizer_sharded, local, full = proof[0]
    assert model_class.startswith("FSDP")  # the class fully_shard swaps in, e.g. FSDPQwen2ForCausalLM
    assert int(sharded) == int(parameters) == int(optimizer_sharded) > 0 and int(units) > 1 and world == "2"
    assert abs(2 * int(local) - int(full)) <= int(full) // 10  # rank 0 holds about half of the elements

"""ReasoningGRPOTrainer in TRL's ``vllm_mode="server"`` against a real ``trl vllm-serve`` (vLLM CPU) on 127.0.0.1.

The server is TRL's CLI running vLLM's own OpenAI server, started here as a subprocess and stopped by its PID. The
HTTP generation path is TRL's and vLLM's code; the weight sync, which TRL does over NCCL (CUDA only), goes through
a file and ``/collective_rpc`` (tests/support/vllm_cpu_shim.py), the one shimmed piece.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import torch
from support import vllm_cpu_shim as shim
from support.vllm_runs import (
    MAX_MODEL_LEN,
    CoinReward,
    SnapshotParameters,
    coin,
    config_kwargs,
    ids_of,
    logged,
    record_batches,
)

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
from trl_reasoning.embedded import arithmetic_dataset, build_tokenizer


TESTS = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's PID (vLLM then stops its engine process), SIGKILL to its process group if needed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this test started (start_new_session)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    trl = Path(sys.executable).with_name("trl")
    command = [
        str(trl),
        "vllm-serve",
        "--model",
        tiny_model_dir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max_model_len",
        str(MAX_MODEL_LEN),
        # forwarded to `vllm serve`: the shim's worker methods (reload weights from a file, save the engine's)
        "--worker-extension-cls",
        "support.vllm_cpu_shim.FileWeightSyncExtension",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"trl vllm-serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if requests.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"trl vllm-serve did not start in {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield {"host": "127.0.0.1", "port": port, "base_url": base_url, "model_dir": tiny_model_dir}
    finally:
        stop(process)
    assert process.poll() is not None


def test_server_mode_generates_trains_and_syncs_weights(server, tmp_path, monkeypatch):
    """Two steps through the server: rewards of the completions it returned, W-REINFORCE's +0.1 / -1 advantages,
    the weights after step 1 in the served engine for step 2."""
    syncs = shim.patch_server_sync(monkeypatch, str(tmp_path))
    config = ReasoningGRPOConfig(
        **config_kwargs(
            tmp_path,
            max_steps=2,
            vllm_mode="server",
            vllm_server_host=server["host"],
            vllm_server_port=server["port"],
            vllm_server_timeout=30.0,
        ),
        advantage_estimator="w_reinforce",
    )
    reward = CoinReward()
    snapshots = SnapshotParameters()
    trainer = ReasoningGRPOTrainer(
        model=server["model_dir"],
        reward_funcs=reward,
        args=config,
        train_dataset=arithmetic_dataset(32, seed=1),
        processing_class=build_tokenizer(),
        callbacks=[snapshots],
    )
    batches = record_batches(trainer)
    trainer.train()
    assert len(syncs) == 2 and len(batches) == 2  # the trainer pushed its weights before each generation
    for batch, call in zip(batches, reward.calls, strict=True):
        completions = [ids_of(batch, i) for i in range(len(batch["completion_ids"]))]
        assert completions == call["completion_ids"]  # what the server returned is what was scored and trained on
        expected = torch.tensor([0.1 if coin(ids) == 1.0 else -1.0 for ids in completions])
        torch.testing.assert_close(batch["advantages"], expected)
        assert torch.isfinite(batch["sampling_per_token_logps"][batch["completion_mask"].bool()]).all()
    assert len({tuple(ids) for ids in reward.calls[0]["completion_ids"]}) > 1  # sampled, not one repeated answer
    # step 2's samples come from the synced weights: the engine's log-probs agree with the trainer's
    assert max(logged(trainer, "sampling/sampling_logp_difference/mean")) < 5e-3

    engine = shim.server_engine_weights(server["base_url"], str(tmp_path))
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(server["model_dir"])
    reference.load_state_dict(snapshots.snapshots[1], strict=False)
    want = shim.hf_weights_in_vllm_layout(reference)
    reference.load_state_dict(snapshots.snapshots[0], strict=False)
    before = shim.hf_weights_in_vllm_layout(reference)
    assert sorted(engine) == sorted(want)
    moved = 0.0
    for name, value in want.items():
        got = engine[name][: value.shape[0]]  # vLLM pads the vocabulary rows
        torch.testing.assert_close(got, value.to(got.dtype), atol=0, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
        moved = max(moved, (value.to(got.dtype) - before[name].to(got.dtype)).abs().max().item())
    assert moved > 1e-3

"""Two CPU processes (gloo) compute exactly what one process computes on the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


pytestmark = [pytest.mark.distributed, pytest.mark.slow]

SCRIPT = Path(__file__).parent / "distributed" / "grpo_equivalence.py"


def run(tmp_path: Path, nproc: int, estimator: str, policy_loss: str) -> dict:
    out = tmp_path / f"{estimator}-{policy_loss}-{nproc}.pt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--standalone",
        str(SCRIPT),
        str(out),
        estimator,
        policy_loss,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out)


# psr drops samples (the token count is global); beta_norm fits α, β on the global batch; drpo couples the samples of
# a group inside the loss.
@pytest.mark.parametrize(
    "estimator, policy_loss", [("grpo", "trl"), ("psr", "trl"), ("beta_norm", "trl"), ("grpo", "drpo")]
)
def test_two_processes_match_one(tmp_path, estimator, policy_loss):
    single, double = run(tmp_path, 1, estimator, policy_loss), run(tmp_path, 2, estimator, policy_loss)
    assert (single["world_size"], double["world_size"]) == (1, 2)
    assert single["prompts"] == double["prompts"]
    assert len(single["advantages"]) == 2
    torch.testing.assert_close(torch.tensor(double["advantages"]), torch.tensor(single["advantages"]), rtol=0, atol=0)
    assert any(a != 0 for step in single["advantages"] for a in step)
    for name, value in single["params"].items():
        # float64 run; the ~1e-9 differences (vs. updates of ~1) come from reductions over differently sized batches
        torch.testing.assert_close(double["params"][name], value, rtol=1e-7, atol=1e-8, msg=name)

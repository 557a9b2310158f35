"""Two CPU processes (gloo) compute exactly what one process computes on the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


pytestmark = [pytest.mark.distributed, pytest.mark.slow]

SCRIPT = Path(__file__).parent / "distributed" / "grpo_equivalence.py"


def run(tmp_path: Path, nproc: int, estimator: str) -> dict:
    out = tmp_path / f"{estimator}-{nproc}.pt"
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
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out)


@pytest.mark.parametrize("estimator", ["grpo", "psr"])
def test_two_processes_match_one(tmp_path, estimator):
    single, double = run(tmp_path, 1, estimator), run(tmp_path, 2, estimator)
    assert (single["world_size"], double["world_size"]) == (1, 2)
    assert single["prompts"] == double["prompts"]
    assert len(single["advantages"]) == 2
    torch.testing.assert_close(torch.tensor(double["advantages"]), torch.tensor(single["advantages"]), rtol=0, atol=0)
    assert any(a != 0 for step in single["advantages"] for a in step)
    for name, value in single["params"].items():
        torch.testing.assert_close(double["params"][name], value, rtol=1e-8, atol=1e-9, msg=name)  # float64 run

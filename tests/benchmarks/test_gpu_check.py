"""benchmarks/gpu_check.sh runs end to end here in its CPU smoke mode (the GPU run itself needs a lent GPU)."""

import json
import os
import subprocess
import sys

import pytest
from support import ROOT


@pytest.mark.slow
def test_gpu_check_cpu_smoke(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert results["device"] == "cpu"
    # bf16 row on the CPU: two float32 runs from the same weights and seed agree exactly
    assert results["bf16"]["ok"] and results["bf16"]["first_step_gap"] == 0.0
    assert all(results["speed"][name]["tokens_per_second"] > 0 for name in ("trl", "ours"))
    assert results["zero3"]["skipped"] == "CPU smoke run" and "zero3.yaml" in results["zero3"]["command"]
    assert "| bf16 | True |" in done.stdout

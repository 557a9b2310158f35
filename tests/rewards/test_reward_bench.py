"""A smoke run of benchmarks/reward_bench.py --quick, so the benchmark that backs the docs' table keeps working."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


def test_reward_bench_quick_run_ranks_ours_first(tmp_path):
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reward_bench.py"), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ratio: ours" in done.stdout
    sets = json.loads(output.read_text())["sets"]
    for name in ("cases", "pairs"):
        rows = {row["method"]: row for row in sets[name]}
        assert set(rows) == {"ours", "trl", "math-verify", "math-verify-wrapped"}
        assert all(row["available"] for row in rows.values())
        assert rows["ours"]["accuracy"] == 1.0, rows["ours"]["wrong_ids"]
        assert all(rows["ours"]["accuracy"] >= row["accuracy"] for row in rows.values())
        assert rows["ours"]["max_s"] < 1.0

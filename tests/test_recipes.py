"""The demo recipe runs end to end on the embedded default (a 2-step smoke run) and its CLI parses."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_grpo_recipe_embedded_default_runs(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / "grpo.py"),
        "--config",
        str(ROOT / "recipes" / "configs" / "demo.yaml"),
        "--output_dir",
        str(tmp_path),
        "--max_steps",
        "2",
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"]  # one table row per step: step, reward, correct, length
    assert (tmp_path / "model.safetensors").exists()


def test_grpo_recipe_help_lists_estimator_fields():
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "grpo.py"), "--help"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for flag in ("--advantage_estimator", "--positive_weight", "--correctness_reward", "--model_name_or_path"):
        assert flag in result.stdout

"""The demo recipe runs end to end on the embedded default (a 2-step smoke run) and its CLI parses."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).parents[1]


def run_demo_recipe(output_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    """``recipes/grpo.py`` on the embedded default (demo.yaml) with extra flags; asserts it exits cleanly."""
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / "grpo.py"),
        "--config",
        str(ROOT / "recipes" / "configs" / "demo.yaml"),
        "--output_dir",
        str(output_dir),
        *flags,
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_grpo_recipe_embedded_default_runs(tmp_path):
    result = run_demo_recipe(tmp_path, "--max_steps", "2")
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"]  # one table row per step: step, reward, correct, length
    assert (tmp_path / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, method",
    [
        (["--advantage_estimator", "grpo", "--policy_loss", "drpo", "--length_lambda", "0.1"], "DRPO"),
        (["--advantage_estimator", "grpo", "--policy_loss", "topr", "--num_iterations", "2"], "TOPR"),
        (["--advantage_estimator", "beta_norm", "--beta_norm_decompose", "true"], "GRPO with BNPO"),
    ],
    ids=["drpo", "topr", "beta_norm"],
)
def test_grpo_recipe_runs_every_new_method_from_the_command_line(tmp_path, flags, method):
    result = run_demo_recipe(tmp_path, "--max_steps", "1", *flags)
    assert f"method: {method}" in result.stdout


def test_grpo_recipe_help_lists_estimator_fields():
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "grpo.py"), "--help"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    flags = (
        "--advantage_estimator",
        "--positive_weight",
        "--correctness_reward",
        "--model_name_or_path",
        "--policy_loss",
        "--length_lambda",
        "--topr_target_positive_fraction",
        "--beta_norm_decompose",
    )
    for flag in flags:
        assert flag in result.stdout

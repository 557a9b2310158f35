"""The docs' figures: rendered from the checked-in data, and the experiments behind them run end to end."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).parents[2]
FIGURES = ROOT / "docs" / "figures"
NAMES = ("demo_reward_curve", "pass_at_k_spectrum", "drpo_tradeoff")  # generate.py's figures, one JSON each
IMAGES = (*NAMES, "methods_toy_pass_at_k", "methods_toy_length")  # + two from benchmarks/methods_toy.py


def test_plot_renders_every_figure_from_the_checked_in_data_identically_twice(tmp_path):
    """`make docs` regenerates the images: the same data must give byte-identical files (no timestamps)."""
    images = []
    for run in ("first", "second"):
        result = subprocess.run(
            [sys.executable, str(FIGURES / "plot.py"), "--out-dir", str(tmp_path / run)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        images.append({name: (tmp_path / run / f"{name}.png").read_bytes() for name in IMAGES})
    for name in IMAGES:
        image = images[0][name]
        assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 10_000, name
        assert image == images[1][name], f"{name}.png differs between two renderings of the same data"


def test_checked_in_data_is_a_full_run():
    for name in NAMES:
        data = json.loads((FIGURES / "data" / f"{name}.json").read_text())
        assert data["figure"] == name and data["smoke"] is False, name
    spectrum = json.loads((FIGURES / "data" / "pass_at_k_spectrum.json").read_text())
    assert spectrum["samples_per_problem"] == 64 and spectrum["problems"] == 200
    for curve in spectrum["curves"].values():
        values = list(curve.values())
        assert values == sorted(values), "pass@k cannot decrease with k"


def test_checked_in_method_benchmark_is_a_full_run():
    """The docs' method benchmark numbers come from the default full run: every method, 3 seeds, 64 samples."""
    data = json.loads((FIGURES / "data" / "methods_toy.json").read_text())
    assert data["smoke"] is False and data["seeds"] == [0, 1, 2] and data["steps"] == 400
    assert data["samples_per_problem"] == 64 and data["held_out_problems"] == 200
    methods = ["GRPO", "PSR", "NSR", "W-REINFORCE", "DRPO", "drpo_length", "BNPO", "TOPR"]
    assert [row["label"] for row in data["summary"]] == ["start (warm-up)", *methods]
    assert len(data["runs"]) == 3 * (1 + len(methods))
    for run in data["runs"]:
        values = [run["pass@k"][str(k)] for k in data["ks"]]
        assert values == sorted(values), f"{run['label']} seed {run['seed']}: pass@k cannot decrease with k"
        assert abs(run["maj@k"]["1"] - run["pass@k"]["1"]) <= 1e-4, "maj@1 is pass@1"
    follow_up = json.loads((FIGURES / "data" / "methods_toy_lr3e-4.json").read_text())
    assert follow_up["smoke"] is False and follow_up["seeds"] == [0, 1, 2] and follow_up["steps"] == 400
    assert follow_up["shared_settings"]["learning_rate"] == 3e-4
    assert [row["label"] for row in follow_up["summary"]] == ["start (warm-up)", "GRPO", "PSR", "NSR", "W-REINFORCE"]
    # the same starting policies: the follow-up's start rows are the main run's
    assert [r for r in follow_up["runs"] if r["label"].startswith("start")] == [
        r for r in data["runs"] if r["label"].startswith("start")
    ]


@pytest.mark.slow
def test_generate_smoke_writes_what_the_plots_read(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(FIGURES / "generate.py"),
            "--smoke",
            "--data-dir",
            str(tmp_path / "data"),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in NAMES:
        smoke = json.loads((tmp_path / "data" / f"{name}.json").read_text())
        full = json.loads((FIGURES / "data" / f"{name}.json").read_text())
        assert smoke["smoke"] is True
        assert set(smoke) == set(full), name
    shutil.copy(FIGURES / "data" / "methods_toy.json", tmp_path / "data")  # made by benchmarks/methods_toy.py
    plotted = subprocess.run(
        [sys.executable, str(FIGURES / "plot.py"), "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert plotted.returncode == 0, plotted.stderr

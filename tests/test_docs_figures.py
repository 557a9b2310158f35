"""The docs' figures: rendered from the checked-in data, and the experiments behind them run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).parents[1]
FIGURES = ROOT / "docs" / "figures"
NAMES = ("demo_reward_curve", "pass_at_k_spectrum", "drpo_tradeoff")


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
        images.append({name: (tmp_path / run / f"{name}.png").read_bytes() for name in NAMES})
    for name in NAMES:
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
    plotted = subprocess.run(
        [sys.executable, str(FIGURES / "plot.py"), "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert plotted.returncode == 0, plotted.stderr

"""Render the docs' figures from ``docs/figures/data/*.json`` (made by ``docs/figures/generate.py``, and by
``benchmarks/methods_toy.py`` for the method benchmark).

    python docs/figures/plot.py                     # docs/figures/<name>.png, as `make docs` does
    python docs/figures/plot.py --out-dir /tmp/figs

Fast and deterministic: matplotlib's Agg backend, fixed sizes, no timestamps in the files; no torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


HERE = Path(__file__).parent
SIZE, DPI = (6.4, 4.0), 120


def labels(ax, xlabel: str, ylabel: str, title: str, top: float) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, top)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)


def demo_reward_curve(data: dict, ax) -> None:
    ax.plot(
        data["steps"], data["reward"], marker="o", markersize=3, color="tab:blue", label="mean reward (share correct)"
    )
    before, after = data["accuracy_before"], data["accuracy_after"]
    ax.axhline(before, color="gray", linestyle=":", label=f"held-out greedy accuracy before: {before:.3f}")
    ax.axhline(after, color="tab:green", linestyle="--", label=f"held-out greedy accuracy after: {after:.3f}")
    labels(ax, "training step", "reward / accuracy", f"make demo: {data['method']} on the embedded task", top=1.0)


def pass_at_k_spectrum(data: dict, ax) -> None:
    for (label, curve), color in zip(
        data["curves"].items(), ("gray", "tab:blue", "tab:orange", "tab:green"), strict=False
    ):
        ks = [int(k) for k in curve]
        ax.plot(ks, list(curve.values()), marker="o", color=color, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(data["ks"], [str(k) for k in data["ks"]])
    title = f"pass@k on {data['problems']} held-out problems ({data['samples_per_problem']} samples each, T=1)"
    labels(ax, "k (samples per problem)", "pass@k", title, top=1.02)


def drpo_tradeoff(data: dict, ax) -> None:
    runs = sorted(
        (run for run in data["runs"] if run["mean_correct_length"] is not None), key=lambda r: r["mean_correct_length"]
    )
    for index, run in enumerate(runs):
        label = run["label"]
        if label.startswith("start"):
            marker, color = "s", "gray"
        else:
            marker = "o"
            color = "tab:green" if label.startswith("drpo_length") else "tab:orange" if "DRPO" in label else "tab:blue"
        x, y = run["mean_correct_length"], run["accuracy"]
        ax.scatter(x, y, marker=marker, color=color, s=40)
        offset = (5, 6) if index % 2 == 0 else (5, -12)  # neighbours in x alternate above / below
        ax.annotate(label, (x, y), fontsize=8, xytext=offset, textcoords="offset points")
    ax.set_xlabel("mean length of correct answers (tokens)")
    ax.set_ylabel("held-out accuracy (sampled, T=1)")
    ax.set_title(f"Length vs accuracy after {data['steps']} steps from one policy")
    ax.margins(0.15)


METHOD_STYLES = {  # one colour and line per method, the same in both benchmark plots
    "start (warm-up)": ("gray", ":"),
    "GRPO": ("tab:blue", "-"),
    "PSR": ("tab:red", "-"),
    "NSR": ("tab:green", "-"),
    "W-REINFORCE": ("tab:olive", "-"),
    "DRPO": ("tab:orange", "--"),
    "drpo_length": ("tab:brown", "--"),
    "BNPO": ("tab:purple", "-."),
    "TOPR": ("tab:cyan", "-."),
}


def methods_toy_pass_at_k(data: dict, ax) -> None:
    """pass@k per method, the mean over seeds (``benchmarks/methods_toy.py``)."""
    for row in data["summary"]:
        color, line = METHOD_STYLES.get(row["label"], ("black", "-"))
        ax.plot(
            data["ks"],
            [row[f"pass@{k}"][0] for k in data["ks"]],
            marker="o",
            markersize=3,
            color=color,
            linestyle=line,
            label=row["label"],
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(data["ks"], [str(k) for k in data["ks"]])
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k (mean over seeds)")
    ax.set_ylim(0, 1.02)
    ax.set_title(
        f"pass@k after {data['steps']} steps, {len(data['seeds'])} seeds, {data['held_out_problems']} problems"
    )
    ax.legend(loc="lower right", fontsize=7, ncol=2)


def methods_toy_length(data: dict, ax) -> None:
    """pass@1 against the mean length of correct answers: one small dot per seed, a big one for the mean."""
    for row in data["summary"]:
        if row["mean_correct_length"][0] is None:
            continue
        color, _ = METHOD_STYLES.get(row["label"], ("black", "-"))
        runs = [r for r in data["runs"] if r["label"] == row["label"] and r["mean_correct_length"] is not None]
        ax.scatter(
            [r["mean_correct_length"] for r in runs], [r["pass@k"]["1"] for r in runs], color=color, s=12, alpha=0.5
        )
        x, y = row["mean_correct_length"][0], row["pass@1"][0]
        ax.scatter(
            x, y, color=color, s=60, marker="s" if row["label"].startswith("start") else "o", label=row["label"]
        )
    ax.set_xlabel("mean length of correct answers (tokens)")
    ax.set_ylabel("pass@1 (held-out, T=1)")
    ax.set_title("Accuracy vs length per method (big: mean over seeds)")
    ax.legend(loc="best", fontsize=7, ncol=2)
    ax.margins(0.1)


# image name -> (data file name, plot function)
PLOTS = {
    "demo_reward_curve": ("demo_reward_curve", demo_reward_curve),
    "pass_at_k_spectrum": ("pass_at_k_spectrum", pass_at_k_spectrum),
    "drpo_tradeoff": ("drpo_tradeoff", drpo_tradeoff),
    "methods_toy_pass_at_k": ("methods_toy", methods_toy_pass_at_k),
    "methods_toy_length": ("methods_toy", methods_toy_length),
}


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data", help="where the JSON files are")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where the PNG files go")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (data_name, plot) in PLOTS.items():
        source = args.data_dir / f"{data_name}.json"
        if not source.exists():
            how = (
                "python benchmarks/methods_toy.py"
                if data_name == "methods_toy"
                else f"python docs/figures/generate.py --only {data_name}"
            )
            raise SystemExit(f"{source} is missing: run `{how}` first.")
        fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
        plot(json.loads(source.read_text()), ax)
        fig.tight_layout()
        target = args.out_dir / f"{name}.png"
        fig.savefig(target, metadata={"Software": None})
        plt.close(fig)
        written.append(target)
    print(f"rendered {len(written)} figures into {args.out_dir}")
    return written


if __name__ == "__main__":
    main()

"""What a recipe leaves behind: ``summary.json`` (the run in numbers) and ``reward_curve.png``."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path


def write_summary(trainer, *, started: float, accuracy=None, extra: dict | None = None) -> dict:
    """Write ``<output_dir>/summary.json`` on the main process and return the summary (on every process).

    Keys: ``method``, ``num_processes``, ``distributed_type``, ``steps``, ``wall_seconds`` (since ``started``, a
    ``time.time()``), ``accuracy_before`` / ``accuracy_after`` (held-out greedy accuracy, from a
    :class:`~trl_reasoning.recipes.GreedyAccuracy`; None when not evaluated), ``eval_prompts``, then ``extra``, then
    ``log_history`` (every logged row).
    """
    state = trainer.accelerator.state
    summary = {
        # the model card's name of the method: `method_name` on ReasoningGRPOTrainer, TRL's `_name` elsewhere
        "method": getattr(trainer, "method_name", None) or getattr(trainer, "_name", type(trainer).__name__),
        "num_processes": state.num_processes,
        "distributed_type": str(state.distributed_type.value),
        "steps": trainer.state.global_step,
        "wall_seconds": round(time.time() - started, 2),
        "accuracy_before": None if accuracy is None else accuracy.before,
        "accuracy_after": None if accuracy is None else accuracy.after,
        "eval_prompts": 0 if accuracy is None else len(accuracy.dataset),
        **(extra or {}),
        "log_history": trainer.state.log_history,
    }
    if trainer.accelerator.is_main_process:
        path = Path(trainer.args.output_dir) / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2, default=float))
    return summary


def plot_reward_curve(
    summary: dict, path, *, curves: dict[str, str] | None = None, title: str = "", ylim=(-0.02, 1.02)
) -> Path | None:
    """Plot ``curves`` (label → log key) against the step from ``summary["log_history"]``, with the held-out greedy
    accuracy before and after as two marked points; save to ``path``. ``ylim=None`` lets matplotlib pick the y-axis
    (for losses and log-probs). Returns None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return None
    curves = curves or {"reward": "reward", "accuracy (sampled)": "advantage/frac_correct"}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    # Curves can coincide (with a 0/1 reward, the mean reward is the share correct): later ones are drawn thinner
    # and dashed on top of earlier ones so that every curve stays visible.
    for index, (label, key) in enumerate(curves.items()):
        rows = [(row["step"], row[key]) for row in summary["log_history"] if key in row and math.isfinite(row[key])]
        if rows:
            style = {"linewidth": 3.0, "alpha": 0.6} if index == 0 else {"linewidth": 1.2, "linestyle": "--"}
            ax.plot(*zip(*rows, strict=True), label=label, **style)
    before, after = summary.get("accuracy_before"), summary.get("accuracy_after")
    if before is not None and after is not None:
        ax.plot(
            [0, summary["steps"]],
            [before, after],
            "o",
            color="black",
            markersize=7,
            label="held-out accuracy (greedy)",
        )
        for step, value in ((0, before), (summary["steps"], after)):
            ax.annotate(f"{value:.2f}", (step, value), textcoords="offset points", xytext=(0, 8), ha="center")
    ax.set_xlabel("step")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or summary.get("method", ""))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def finish_run(
    trainer, *, started: float, accuracy=None, extra: dict | None = None, curves: dict | None = None, title: str = ""
) -> dict:
    """The end of every recipe: :func:`write_summary`, then on the main process ``reward_curve.png``
    (:func:`plot_reward_curve` with ``curves``) and one line with the held-out accuracy before and after."""
    summary = write_summary(trainer, started=started, accuracy=accuracy, extra=extra)
    if trainer.accelerator.is_main_process:
        plot_reward_curve(summary, Path(trainer.args.output_dir) / "reward_curve.png", curves=curves, title=title)
        if summary["accuracy_before"] is not None:
            print(
                f"held-out greedy accuracy: {summary['accuracy_before']:.3f} before -> "
                f"{summary['accuracy_after']:.3f} after {summary['steps']} steps of {summary['method']} "
                f"({summary['wall_seconds']:.0f} s)"
            )
    return summary

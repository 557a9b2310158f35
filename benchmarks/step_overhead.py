"""Median training-step time of ReasoningGRPOTrainer vs stock trl.GRPOTrainer on the tiny model (goal: ratio <= 1.02).

Both trainers run the same seeded configuration (so they generate the same completions) in alternating rounds in
one process (alternating which goes first); the table reports the median of TRL's own `step_time` metric over all measured steps.

    python benchmarks/step_overhead.py [--rounds 4] [--steps 15] [--estimator grpo] [--policy_loss trl]

With ``--policy_loss drpo`` or ``topr`` the ratio measures the cost of the whole method (its loss replaces TRL's),
not only of the override.
"""

import argparse
import os
import statistics
import tempfile
import time


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer  # noqa: E402
from trl_reasoning.embedded import arithmetic_dataset, build_tiny_model, build_tokenizer  # noqa: E402
from trl_reasoning.testing import coin_reward  # noqa: E402


ADDED_SECONDS: list[float] = []  # time spent in our override beyond TRL's own method, per generation batch


def instrument_override() -> None:
    """Time the part of ReasoningGRPOTrainer._generate_and_score_completions that TRL's version does not do."""
    parent, ours = GRPOTrainer._generate_and_score_completions, ReasoningGRPOTrainer._generate_and_score_completions
    parent_seconds = []

    def timed_parent(self, inputs):
        start = time.perf_counter()
        out = parent(self, inputs)
        parent_seconds.append(time.perf_counter() - start)
        return out

    def timed_ours(self, inputs):
        start = time.perf_counter()
        GRPOTrainer._generate_and_score_completions = timed_parent
        try:
            out = ours(self, inputs)
        finally:
            GRPOTrainer._generate_and_score_completions = parent
        ADDED_SECONDS.append(time.perf_counter() - start - parent_seconds.pop())
        return out

    ReasoningGRPOTrainer._generate_and_score_completions = timed_ours


def step_times(reasoning: bool, steps: int, estimator: str, policy_loss: str, output_dir: str) -> list[float]:
    tokenizer = build_tokenizer()
    settings = dict(
        output_dir=output_dir,
        per_device_train_batch_size=16,
        num_generations=4,
        max_completion_length=16,
        max_steps=steps,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
    )
    if reasoning:
        config = ReasoningGRPOConfig(advantage_estimator=estimator, policy_loss=policy_loss, **settings)
        trainer_cls = ReasoningGRPOTrainer
    else:
        config, trainer_cls = GRPOConfig(**settings), GRPOTrainer
    trainer = trainer_cls(
        model=build_tiny_model(tokenizer),
        reward_funcs=coin_reward,
        args=config,
        train_dataset=arithmetic_dataset(256),
        processing_class=tokenizer,
    )
    trainer.train()
    times = [entry["step_time"] for entry in trainer.state.log_history if "step_time" in entry]
    return times[2:]  # drop warm-up steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--estimator", default="grpo")
    parser.add_argument("--policy_loss", default="trl")
    args = parser.parse_args()
    instrument_override()
    stock, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):  # alternate which trainer goes first
            for reasoning in (False, True) if round_index % 2 == 0 else (True, False):
                times = step_times(reasoning, args.steps, args.estimator, args.policy_loss, tmp)
                (ours if reasoning else stock).extend(times)
    stock_ms, ours_ms = statistics.median(stock) * 1e3, statistics.median(ours) * 1e3
    print(f"{'trainer':<34} {'steps':>6} {'median ms/step':>15}")
    print(f"{'trl.GRPOTrainer':<34} {len(stock):>6} {stock_ms:>15.2f}")
    label = args.estimator if args.policy_loss == "trl" else f"{args.estimator}, {args.policy_loss}"
    print(f"{'ReasoningGRPOTrainer(' + label + ')':<34} {len(ours):>6} {ours_ms:>15.2f}")
    print(f"time added by the override: median {statistics.median(ADDED_SECONDS) * 1e3:.3f} ms per generation batch")
    print(f"ratio ours/stock = {ours_ms / stock_ms:.3f} (goal <= 1.02)")


if __name__ == "__main__":
    main()

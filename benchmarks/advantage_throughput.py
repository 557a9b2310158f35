"""Throughput of every registered advantage estimator on 1,000,000 rollouts (goal: < 100 ms each on a 2-core CPU).

python benchmarks/advantage_throughput.py [--rollouts 1000000] [--group-size 8] [--repeats 7]
"""

import argparse
import statistics
import time

import torch

from trl_reasoning import advantage_estimator_names, get_advantage_estimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=1_000_000)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    n = args.rollouts
    correct = torch.rand(n, generator=generator) < 0.4
    inputs = dict(
        rewards=0.9 * correct.float() + 0.1 * torch.rand(n, generator=generator),  # in [0, 1] (BNPO needs it)
        group_size=args.group_size,
        correct=correct,
        scorable=torch.ones(n, dtype=torch.bool),
        lengths=torch.randint(1, 4096, (n,), generator=generator),
        max_length=4096,
        rewards_per_func=torch.rand(n, 2, generator=generator),
        reward_weights=torch.tensor([1.0, 0.5]),
        reward_names=["accuracy", "format"],
    )
    print(f"{n:,} rollouts, group size {args.group_size}, torch threads {torch.get_num_threads()}")
    print(f"{'estimator':<14} {'median ms':>10} {'min ms':>8} {'M rollouts/s':>13} {'< 100 ms':>9}")
    for name in advantage_estimator_names():
        estimator = get_advantage_estimator(name)
        estimator.compute(**inputs)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            estimator.compute(**inputs)
            times.append((time.perf_counter() - start) * 1e3)
        median = statistics.median(times)
        print(
            f"{name:<14} {median:>10.1f} {min(times):>8.1f} {n / median / 1e3:>13.1f} {'yes' if median < 100 else 'NO':>9}"
        )


if __name__ == "__main__":
    main()

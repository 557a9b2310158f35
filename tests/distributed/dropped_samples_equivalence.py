"""NSR with ``dropped_samples="remove"`` on 1 or 2 gloo processes; rank 0 saves the logits and the real step count.

Run with ``torchrun --nproc_per_node {1,2} dropped_samples_equivalence.py OUT``. The global generation batch (16
completions, 4 per prompt, 4 optimizer steps of 4) is the same for any number of processes; the 6 wrong answers
(the kept samples) all sit in the first process's half, so with 2 processes "remove" must move kept samples to the
second process to fill 2 optimizer steps instead of 3.
"""

import os
import sys


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "trainers"))  # for test_dropped_samples

import torch  # noqa: E402
from test_dropped_samples import logits_of, make  # noqa: E402


def main(out_path: str) -> None:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    trainer, counter, _ = make(
        os.path.dirname(out_path),
        "remove",
        [0, 1, 2, 4, 5, 6],
        lr=1e-2,
        per_device_train_batch_size=2 // world_size,
        ddp_backend="gloo",
    )
    assert trainer.accelerator.num_processes == world_size
    trainer.train()
    if trainer.accelerator.is_main_process:
        torch.save({"world_size": world_size, "steps": counter.steps, "logits": logits_of(trainer)}, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

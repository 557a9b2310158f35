"""Two offline-TOPR steps on 16 rows; rank 0 saves the behaviour log-probs, the losses and the parameters.

Run with ``torchrun --nproc_per_node {1,2} topr_offline_equivalence.py OUT``: the global batch is 8 rows for any
number of processes, and the behaviour log-probs are computed by the trainer (sharded across processes, gathered).
"""

import os
import sys


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402

from trl_reasoning import OfflineTOPRConfig, OfflineTOPRTrainer  # noqa: E402
from trl_reasoning.embedded import arithmetic_problems, build_tiny_model, build_tokenizer  # noqa: E402


def main(out_path: str) -> None:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    tokenizer = build_tokenizer()
    rows = []
    for problem in arithmetic_problems(8, seed=0):
        rows.append({"prompt": f"{problem['question']}=", "completion": problem["answer"], "reward": 1.0})
        rows.append({"prompt": f"{problem['question']}=", "completion": "0", "reward": -1.0})
    config = OfflineTOPRConfig(
        output_dir=os.path.dirname(out_path),
        per_device_train_batch_size=8 // world_size,
        per_device_eval_batch_size=3,  # uneven shards and batches for the behaviour pass
        max_steps=2,
        learning_rate=0.1,
        optim="sgd",
        lr_scheduler_type="constant",
        max_length=32,
        report_to="none",
        use_cpu=True,
        bf16=False,
        ddp_backend="gloo",
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
        logging_steps=1,
    )
    trainer = OfflineTOPRTrainer(
        model=build_tiny_model(tokenizer).to(torch.float64),  # float64: compare updates, not rounding
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    behavior = [list(values) for values in trainer.train_dataset["behavior_logps"]]
    trainer.train()
    if trainer.accelerator.is_main_process:
        torch.save(
            {
                "world_size": world_size,
                "behavior_logps": behavior,
                "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
                "params": {n: p.detach().cpu().clone() for n, p in trainer.model.named_parameters()},
            },
            out_path,
        )


if __name__ == "__main__":
    main(sys.argv[1])
    # Tear the gloo group down before the interpreter exits: leaving it to process exit can abort a rank with
    # "terminate called without an active exception" while its background threads are still joinable.
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    # Skip interpreter finalisation: destroying the still-joinable C++ threads of torch's process-group machinery
    # there can abort a rank ("terminate called without an active exception", exit -6) after all work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

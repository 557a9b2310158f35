"""Train a few steps on a fixed global batch; rank 0 saves advantages, prompts and parameters.

Run with ``torchrun --nproc_per_node {1,2} grpo_equivalence.py OUT ESTIMATOR [POLICY_LOSS [TOKEN_WEIGHTING]]``: the global batch
(8 completions, 4 per prompt) is the same for any number of processes, and completions come from ``scripted_rollout`` so they
depend only on the global row, not on each process's sampling RNG.
"""

import os
import sys


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer  # noqa: E402
from trl_reasoning.embedded import arithmetic_dataset, build_tiny_model, build_tokenizer  # noqa: E402
from trl_reasoning.testing import coin_reward, scripted_rollout  # noqa: E402


def main(out_path: str, estimator: str, policy_loss: str = "trl", token_weighting: str = "none") -> None:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    global_batch = 8
    tokenizer = build_tokenizer()
    config = ReasoningGRPOConfig(
        output_dir=os.path.dirname(out_path),
        advantage_estimator=estimator,
        policy_loss=policy_loss,
        token_weighting=token_weighting,
        per_device_train_batch_size=global_batch // world_size,
        num_generations=4,
        max_completion_length=8,
        # Pad every local batch to the same width: left padding shifts positions, so without this the per-process
        # batches (padded to their own longest prompt) would see slightly different logits than the global one.
        pad_to_multiple_of=32,
        max_steps=int(os.environ.get("STEPS", "2")),
        learning_rate=0.1,
        optim="sgd",
        lr_scheduler_type="constant",
        report_to="none",
        use_cpu=True,
        ddp_backend="gloo",
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
        logging_steps=1,
    )
    trainer = ReasoningGRPOTrainer(
        model=build_tiny_model(tokenizer).to(torch.float64),  # float64: compare updates, not rounding
        reward_funcs=coin_reward,
        args=config,
        train_dataset=arithmetic_dataset(32),
        processing_class=tokenizer,
        rollout_func=scripted_rollout(),
    )
    assert trainer.accelerator.num_processes == world_size, (trainer.accelerator.num_processes, world_size)
    history = {"advantages": [], "prompts": []}
    original = trainer._generate_and_score_completions

    def recording(inputs):
        output = original(inputs)
        size = config.generation_batch_size
        history["advantages"].append(list(trainer._logs["advantages"])[-size:])
        history["prompts"].append(list(trainer._logs["prompt"])[-size:])
        return output

    trainer._generate_and_score_completions = recording
    trainer.train()
    if trainer.accelerator.is_main_process:
        params = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
        torch.save({"world_size": trainer.accelerator.num_processes, "params": params, **history}, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
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

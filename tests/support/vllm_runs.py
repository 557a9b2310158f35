"""What the vLLM tests (tests/vllm_engine/) record around a real TRL + vLLM CPU training run: the configuration they share,
what vLLM returned for each generation, each generation batch as the trainer built it, the parameters after every
optimizer step, and the rewards given to each completion."""

from __future__ import annotations

import zlib

import torch
from transformers import TrainerCallback


NUM_GENERATIONS = 4
BATCH_SIZE = 8  # 2 prompts x 4 completions per step
MAX_TOKENS = 8
MAX_MODEL_LEN = 128
TEMPERATURE = 1.0


def config_kwargs(output_dir, **overrides) -> dict:
    """The arguments every vLLM test run shares (colocate mode unless overridden)."""
    kwargs = dict(
        output_dir=str(output_dir),
        use_vllm=True,
        vllm_mode="colocate",
        vllm_max_model_length=MAX_MODEL_LEN,
        per_device_train_batch_size=BATCH_SIZE,
        num_generations=NUM_GENERATIONS,
        max_completion_length=MAX_TOKENS,
        temperature=TEMPERATURE,
        max_steps=1,
        learning_rate=1e-2,
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return kwargs


def coin(completion_ids) -> float:
    """A deterministic 0/1 coin of a completion's token ids (mixed groups for a random model)."""
    return float(zlib.crc32(bytes(str(list(completion_ids)), "ascii")) % 2)


class CoinReward:
    """The reward function of the runs: :func:`coin` of the token ids; remembers every call."""

    __name__ = "coin"

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, completions, completion_ids, **kwargs):
        rewards = [coin(ids) for ids in completion_ids]
        self.calls.append({"completion_ids": [list(ids) for ids in completion_ids], "rewards": rewards})
        return rewards


class SnapshotParameters(TrainerCallback):
    """The trainer's parameters before training and after every optimizer step."""

    def __init__(self):
        self.snapshots = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.snapshots.append(snapshot(model))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.snapshots.append(snapshot(model))


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def record_vllm_generations(monkeypatch) -> list[dict]:
    """Every ``VLLMGeneration.generate`` result: completion ids and vLLM's log-prob of each sampled token."""
    from trl.generation.vllm_generation import VLLMGeneration

    original = VLLMGeneration.generate
    records: list[dict] = []

    def generate(self, *args, **kwargs):
        prompt_ids, completion_ids, logprobs, token_ids = original(self, *args, **kwargs)
        records.append(
            {
                "completion_ids": [list(ids) for ids in completion_ids],
                "logprobs": [[token[0] for token in sequence] for sequence in logprobs],
                "logprob_token_ids": [[token[0] for token in sequence] for sequence in token_ids],
            }
        )
        return prompt_ids, completion_ids, logprobs, token_ids

    monkeypatch.setattr(VLLMGeneration, "generate", generate)
    return records


def record_batches(trainer, extra=None) -> list[dict]:
    """Every generation batch ``trainer._generate_and_score_completions`` returns (cloned tensors); ``extra(trainer,
    batch)`` may add entries computed at that moment (before the policy changes)."""
    original = trainer._generate_and_score_completions
    batches: list[dict] = []

    def generate_and_score(inputs):
        batch = original(inputs)
        record = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        if extra is not None:
            record.update(extra(trainer, batch))
        batches.append(record)
        return batch

    trainer._generate_and_score_completions = generate_and_score
    return batches


def ids_of(batch, index: int) -> list[int]:
    """The completion token ids of row ``index`` of a generation batch (padding removed)."""
    mask = batch["completion_mask"][index].bool()
    return batch["completion_ids"][index][mask].tolist()


def logged(trainer, name: str) -> list[float]:
    """The values of a logged metric, one per logging step."""
    return [entry[name] for entry in trainer.state.log_history if name in entry]

"""Small builders shared by the trainer tests."""

import threading

import torch
from trl import GRPOConfig, GRPOTrainer

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
from trl_reasoning.testing import arithmetic_dataset, build_tiny_model, build_tokenizer, coin_reward


BASE_ARGS = dict(
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=8,
    max_steps=3,
    learning_rate=1e-2,
    logging_steps=1,
    report_to="none",
    use_cpu=True,
    seed=0,
    save_strategy="no",
    disable_tqdm=True,
)


def make_trainer(
    tmp_path,
    reasoning=True,
    reward_funcs=(coin_reward,),
    dataset_size=32,
    trainer_kwargs=None,
    model_seed=0,
    model_dtype=torch.float32,
    train_dataset=None,
    config_cls=None,
    **args,
):
    """A GRPO trainer on the tiny model: ours (``reasoning``) or TRL's; ``config_cls`` overrides the config class
    (e.g. ours given a plain ``trl.GRPOConfig``, as a user who changed only the import would)."""
    tokenizer = build_tokenizer()
    config_cls_default, trainer_cls = (
        (ReasoningGRPOConfig, ReasoningGRPOTrainer) if reasoning else (GRPOConfig, GRPOTrainer)
    )
    config_cls = config_cls or config_cls_default
    config = config_cls(output_dir=str(tmp_path), **{**BASE_ARGS, **args})
    return trainer_cls(
        model=build_tiny_model(tokenizer, seed=model_seed).to(model_dtype),
        reward_funcs=list(reward_funcs),
        args=config,
        train_dataset=arithmetic_dataset(dataset_size) if train_dataset is None else train_dataset,
        processing_class=tokenizer,
        **(trainer_kwargs or {}),
    )


def parameters(trainer):
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


def adapter_logits(path, input_ids, attention_mask):
    from peft import PeftModel

    model = PeftModel.from_pretrained(build_tiny_model(build_tokenizer()), path).eval()
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask).logits.double()


class FakeGather:
    """``accelerator.gather`` for threads standing in for processes: concatenates in rank order."""

    def __init__(self, world_size: int):
        self.barrier = threading.Barrier(world_size)
        self.slots: list = [None] * world_size

    def for_rank(self, rank: int):
        def gather(tensor):
            self.slots[rank] = tensor
            self.barrier.wait()
            result = torch.cat(list(self.slots))
            self.barrier.wait()
            return result

        return gather

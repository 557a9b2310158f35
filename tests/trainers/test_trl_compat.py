"""`ReasoningGRPOTrainer` used exactly as `trl.GRPOTrainer` is: TRL's own config, TRL's argument order and every
optional argument, each run for two steps on the in-process tiny model.

The fast counterpart of ``scripts/trl_compat/run_trl_grpo_tests.py`` (TRL's own GRPO test suite with our trainer
swapped in): the usages of that suite that need no special model, written here against our tiny model.
"""

import inspect

import pytest
import torch
from datasets import IterableDataset
from support import BASE_ARGS
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from trl_reasoning import ReasoningGRPOTrainer
from trl_reasoning.embedded import arithmetic_dataset, build_tiny_model, build_tokenizer
from trl_reasoning.testing import scripted_rollout


STEPS = 2
TINY = {**BASE_ARGS, "max_completion_length": 6, "max_steps": STEPS}


def alternating_reward(completions, **kwargs):
    """0, 1, 0, 1, ... by position: every group of 4 consecutive completions is mixed, so advantages are never 0."""
    return [float(i % 2) for i in range(len(completions))]


def ones_reward(completions, **kwargs):
    return [1.0] * len(completions)


def tiny_config(tmp_path, **overrides):
    return GRPOConfig(output_dir=str(tmp_path), **{**TINY, **overrides})


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def changed(before, model):
    after = dict(model.named_parameters())
    return [name for name, value in before.items() if not torch.equal(value, after[name].detach())]


def train_logs(trainer):
    return [entry for entry in trainer.state.log_history if "loss" in entry]


@pytest.fixture
def tokenizer():
    return build_tokenizer()


@pytest.fixture
def model(tokenizer):
    return build_tiny_model(tokenizer)


@pytest.fixture
def dataset():
    return arithmetic_dataset(16)


def test_plain_grpo_config_trains_and_keeps_every_field(tmp_path, model, tokenizer, dataset):
    config = tiny_config(
        tmp_path,
        beta=0.04,
        loss_type="dapo",
        scale_rewards="batch",
        temperature=0.7,
        lr_scheduler_type="constant",  # an enum after __post_init__, a string in to_dict()
        optim="adamw_torch",
        epsilon_high=0.28,
        log_completions=False,
    )
    expected = config.to_dict()
    model.save_pretrained(tmp_path / "model")  # by path: with beta > 0 TRL loads its reference model from it
    trainer = ReasoningGRPOTrainer(
        model=str(tmp_path / "model"),
        reward_funcs=alternating_reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    assert isinstance(trainer.args, GRPOConfig)
    assert trainer.args.advantage_estimator == "grpo" and trainer.args.policy_loss == "trl"
    got = trainer.args.to_dict()
    assert {key: got[key] for key in expected} == expected
    assert trainer.args.lr_scheduler_type == config.lr_scheduler_type  # the enum, not its string
    assert trainer.beta == 0.04 and trainer.loss_type == "dapo" and trainer.epsilon_high == 0.28
    before = snapshot(trainer.model)
    trainer.train()
    assert changed(before, trainer.model)
    logs = train_logs(trainer)
    assert len(logs) == STEPS and all("kl" in entry for entry in logs)  # beta > 0: TRL's reference-model KL ran


def test_args_none_builds_the_config_trl_builds(tmp_path, monkeypatch, model, tokenizer, dataset, bf16_gpu):
    monkeypatch.chdir(tmp_path)  # the default output_dir is relative to the working directory
    stock = GRPOTrainer(
        model=model, reward_funcs=alternating_reward, train_dataset=dataset, processing_class=tokenizer
    )
    ours = ReasoningGRPOTrainer(
        model=build_tiny_model(tokenizer),
        reward_funcs=alternating_reward,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    assert ours.args.output_dir == stock.args.output_dir
    assert ours.args.output_dir.endswith("-GRPO")
    stock_fields, our_fields = stock.args.to_dict(), ours.args.to_dict()
    assert {key: our_fields[key] for key in stock_fields} == stock_fields
    assert ours.args.advantage_estimator == "grpo"


def test_positional_arguments_in_trl_order_reach_trl(tmp_path, model, tokenizer, dataset):
    class StepCounter(TrainerCallback):
        def __init__(self):
            self.steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.steps += 1

    counter = StepCounter()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    eval_dataset = arithmetic_dataset(8, seed=1)
    values = {
        "model": model,
        "reward_funcs": [alternating_reward],
        "args": tiny_config(tmp_path),
        "train_dataset": dataset,
        "eval_dataset": eval_dataset,
        "processing_class": tokenizer,
        "reward_processing_classes": None,
        "callbacks": [counter],
        "optimizers": (optimizer, scheduler),
    }
    order = list(inspect.signature(GRPOTrainer.__init__).parameters)[1:]
    assert order[: len(values)] == list(values)  # TRL's positional order, as this test passes them
    trainer = ReasoningGRPOTrainer(*values.values())
    assert trainer.train_dataset is dataset and trainer.eval_dataset is eval_dataset
    assert trainer.processing_class is tokenizer
    assert trainer.optimizer is optimizer and trainer.lr_scheduler is scheduler
    assert counter in trainer.callback_handler.callbacks
    before = snapshot(trainer.model)
    trainer.train()
    assert counter.steps == STEPS
    assert scheduler.last_epoch == STEPS  # our scheduler, stepped once per optimizer step
    assert len(optimizer.state) == 0  # plain SGD keeps no state: TRL did not swap in its default AdamW
    assert changed(before, trainer.model)


def test_keyword_arguments_match_trls_signature():
    ours = inspect.signature(ReasoningGRPOTrainer.__init__).parameters
    for name, parameter in inspect.signature(GRPOTrainer.__init__).parameters.items():
        accepted = name in ours or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ours.values())
        assert accepted, f"ReasoningGRPOTrainer does not accept TRL's keyword {name!r}"
        if name in ours and parameter.default is not inspect.Parameter.empty:
            assert ours[name].default == parameter.default, name


def test_peft_config_trains_only_the_adapter(tmp_path, model, tokenizer, dataset):
    from peft import LoraConfig, PeftModel

    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=alternating_reward,
        args=tiny_config(tmp_path, learning_rate=5e-2),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    assert isinstance(trainer.model, PeftModel)
    base = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if "lora_" not in name}
    before = snapshot(trainer.model)
    assert before and all("lora_" in name for name in before)
    trainer.train()
    assert any("lora_B" in name for name in changed(before, trainer.model))
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(value, after[name].detach()) for name, value in base.items())


def test_reward_model_instance_with_its_processing_class(tmp_path, model, tokenizer, dataset):
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    torch.manual_seed(1)
    reward_model = Qwen2ForSequenceClassification(
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    reward_model.config._name_or_path = "tiny-reward"
    reward_tokenizer = build_tokenizer()
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=reward_model,
        args=tiny_config(tmp_path),
        train_dataset=dataset,
        processing_class=tokenizer,
        reward_processing_classes=reward_tokenizer,
    )
    assert trainer.reward_processing_classes == [reward_tokenizer]
    assert trainer.reward_func_names == ["tiny-reward"]
    before = snapshot(trainer.model)
    trainer.train()
    assert changed(before, trainer.model)
    assert all("rewards/tiny-reward/mean" in entry for entry in train_logs(trainer))


def test_several_reward_funcs_with_reward_weights(tmp_path, model, tokenizer, dataset):
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=[alternating_reward, ones_reward],
        args=tiny_config(tmp_path, reward_weights=[1.0, 0.5], max_steps=1),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    (log,) = train_logs(trainer)
    # Per batch of 8: alternating has mean 4/8 = 0.5, ones 1.0; the weighted sum's mean is 1.0*0.5 + 0.5*1.0 = 1.0.
    assert log["rewards/alternating_reward/mean"] == 0.5
    assert log["rewards/ones_reward/mean"] == 1.0
    assert log["reward"] == pytest.approx(1.0, abs=1e-6)
    assert list(trainer.reward_weights) == [1.0, 0.5]


def test_eval_dataset_as_a_dict_of_datasets(tmp_path, model, tokenizer, dataset):
    eval_dataset = {"easy": arithmetic_dataset(8, seed=1), "hard": arithmetic_dataset(8, seed=2)}
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=alternating_reward,
        args=tiny_config(tmp_path, per_device_eval_batch_size=8, max_steps=1),
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )
    assert set(trainer.eval_dataset) == {"easy", "hard"}
    metrics = trainer.evaluate()
    assert "eval_easy_loss" in metrics and "eval_hard_loss" in metrics
    # One evaluation log per set; each scores its completions 0, 1, 0, 1, ... so its mean reward is exactly 0.5.
    for name in ("easy", "hard"):
        (entry,) = [e for e in trainer.state.log_history if f"eval_{name}_loss" in e]
        assert entry["eval_reward"] == 0.5 and entry["eval_rewards/alternating_reward/mean"] == 0.5


def test_iterable_train_dataset(tmp_path, model, tokenizer, dataset):
    iterable = dataset.to_iterable_dataset()
    assert isinstance(iterable, IterableDataset)
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=alternating_reward,
        args=tiny_config(tmp_path),
        train_dataset=iterable,
        processing_class=tokenizer,
    )
    assert trainer.args.accelerator_config.dispatch_batches is False  # TRL's requirement for iterable datasets
    before = snapshot(trainer.model)
    trainer.train()
    assert trainer.state.global_step == STEPS and changed(before, trainer.model)


def test_rollout_func_supplies_the_completions(tmp_path, model, tokenizer, dataset):
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=alternating_reward,
        args=tiny_config(tmp_path),
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=scripted_rollout(lengths=[3] * 8),
    )
    before = snapshot(trainer.model)
    trainer.train()
    logs = train_logs(trainer)
    # Every scripted completion is 2 digits + EOS = 3 tokens, whatever the model would have generated.
    assert [entry["completions/mean_length"] for entry in logs] == [3.0] * STEPS
    assert [entry["completions/max_length"] for entry in logs] == [3.0] * STEPS
    assert changed(before, trainer.model)


def test_third_party_grpo_config_subclass(tmp_path, model, tokenizer, dataset):
    from dataclasses import dataclass, field

    @dataclass
    class MyGRPOConfig(GRPOConfig):
        my_field: int = field(default=3, metadata={"help": "a third party's own field"})

    config = MyGRPOConfig(output_dir=str(tmp_path), my_field=7, **{**TINY, "max_steps": 1})
    trainer = ReasoningGRPOTrainer(
        model=model, reward_funcs=alternating_reward, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    assert trainer.args.my_field == 7 and isinstance(trainer.args, MyGRPOConfig)
    trainer.train()
    assert trainer.state.global_step == 1


def test_tools_run_through_trls_tool_calling_loop(tmp_path, model, tokenizer, dataset):
    """TRL's ``tools=``: completions that call a tool get its result appended and are generated on from there."""
    from pathlib import Path
    from unittest.mock import patch

    import trl

    calls = []

    def multiply(a: int, b: int) -> int:
        """
        Multiplies two integers.

        Args:
            a: The first integer.
            b: The second integer.
        """
        calls.append((a, b))
        return a * b

    # TRL parses tool calls only for the chat templates it ships: the character tokenizer gets Qwen3's.
    template = Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja"
    tokenizer.chat_template = template.read_text(encoding="utf-8")
    texts = {
        "call": '<tool_call>\n{"name": "multiply", "arguments": {"a": 3, "b": 4}}\n</tool_call><|im_end|>',
        "plain": "12<|im_end|>",
        "after": "Done<|im_end|>",
    }
    ids = {name: tokenizer(text, add_special_tokens=False)["input_ids"] for name, text in texts.items()}
    # With the tools' system text a prompt is ~900 characters; TRL stops the tool loop at max_position_embeddings.
    model.config.max_position_embeddings = 2048
    batch_sizes = []

    def fake_generate(input_ids, **kwargs):
        batch_sizes.append(input_ids.shape[0])
        if input_ids.shape[0] == 8:  # a fresh batch: the even rows call the tool, the odd rows answer
            rows = [ids["call"] if i % 2 == 0 else ids["plain"] for i in range(8)]
        else:  # generating on after the tool's result
            rows = [ids["after"]] * input_ids.shape[0]
        width = max(map(len, rows))
        rows = [row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows]
        return torch.cat([input_ids, torch.tensor(rows, device=input_ids.device)], dim=-1)

    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=alternating_reward,
        args=tiny_config(tmp_path, max_completion_length=256),
        train_dataset=dataset,
        processing_class=tokenizer,
        tools=[multiply],
    )
    before = snapshot(trainer.model)
    with patch.object(trainer.model, "generate", side_effect=fake_generate):
        trainer.train()
    assert batch_sizes == [8, 4] * STEPS  # per step: the batch, then the 4 completions that called the tool
    assert calls == [(3, 4)] * 4 * STEPS
    logs = train_logs(trainer)
    assert [entry["tools/call_frequency"] for entry in logs] == [0.5] * STEPS
    assert [entry["tools/failure_frequency"] for entry in logs] == [0.0] * STEPS
    assert changed(before, trainer.model)

"""The accuracy reward inside a real ReasoningGRPOTrainer run on the tiny model (CPU)."""

import operator

import pytest
import torch
from support import make_trainer, parameters

from trl_reasoning.embedded import arithmetic_dataset
from trl_reasoning.rewards import get_accuracy_reward


pytestmark = pytest.mark.slow

_OPERATIONS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _solve(question: str) -> int:
    for symbol, function in _OPERATIONS.items():
        left, sep, right = question.rstrip("=").rpartition(symbol)
        if sep and left and left[-1].isdigit():
            return function(int(left), int(right))
    raise ValueError(question)


def answer_writing_rollout(prompts, trainer):
    """Row r of the batch answers its arithmetic prompt in form r % 4: boxed, a square root (checked by sympy in a
    worker process), a wrong "The answer is ..." (off by one), and GSM8K's "#### ...". So 3 in 4 are correct."""
    tokenizer = trainer.processing_class
    prompt_ids, completion_ids = [], []
    for row, prompt in enumerate(prompts):
        answer = _solve(prompt[-1]["content"])
        root = rf"\sqrt{{{answer * answer}}}"
        forms = [rf"\boxed{{{answer}}}", rf"so \boxed{{{root if answer >= 0 else '-' + root}}}"]
        forms += [f"The answer is {answer + 1}.", f"#### {answer}"]
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        prompt_ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        completion = tokenizer(forms[row % 4], add_special_tokens=False)["input_ids"]
        completion_ids.append(completion + [tokenizer.eos_token_id])
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def test_accuracy_reward_drives_a_reasoning_grpo_run(tmp_path):
    reward = get_accuracy_reward(timeout=1.0, workers=1)
    try:
        trainer = make_trainer(
            tmp_path,
            reward_funcs=(reward,),
            train_dataset=arithmetic_dataset(16).rename_column("answer", "solution"),
            trainer_kwargs={"rollout_func": answer_writing_rollout},
            advantage_estimator="w_reinforce",
            correctness_reward="accuracy_reward",
            correct_threshold=1.0,
            max_completion_length=32,
        )
        initial = parameters(trainer)
        trainer.train()
    finally:
        reward.close()
    logs = [entry for entry in trainer.state.log_history if "rewards/accuracy_reward/mean" in entry]
    assert len(logs) == 3
    for entry in logs:
        assert entry["rewards/accuracy_reward/mean"] == 0.75
        assert entry["advantage/frac_correct"] == 0.75  # correctness read from the reward at threshold 1.0
        assert entry["accuracy_reward/no_answer"] == 0.0 and entry["accuracy_reward/timeouts"] == 0.0
    assert reward.stats["symbolic"] > 0 and reward.stats["timeouts"] == reward.stats["errors"] == 0
    trained = parameters(trainer)
    assert any(not torch.equal(initial[name], trained[name]) for name in trained)

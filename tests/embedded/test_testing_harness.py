"""The tiny-model harness: tokenizer round trip, chat template, model shapes, task answers, reward."""

import pytest
import torch

from trl_reasoning.embedded import arithmetic_dataset, arithmetic_problems, arithmetic_reward, build_tiny_model
from trl_reasoning.testing import coin_reward


def test_tokenizer_round_trip_and_chat_template(tokenizer):
    text = "12*3=36, so the answer is 36."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tokenizer.decode(ids) == text
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "7+5="}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\n7+5=<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode([tokenizer.eos_token_id]) == "<|im_end|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
def test_tiny_model_is_deterministic_and_sized_to_the_tokenizer(tokenizer, architecture):
    a = build_tiny_model(tokenizer, architecture=architecture, seed=3)
    b = build_tiny_model(tokenizer, architecture=architecture, seed=3)
    ids = torch.tensor([tokenizer("7+5=")["input_ids"]])
    logits = a(input_ids=ids).logits
    assert logits.shape == (1, 4, len(tokenizer))
    assert torch.equal(logits, b(input_ids=ids).logits)
    assert sum(p.numel() for p in a.parameters()) < 200_000


def test_arithmetic_answers_are_exact():
    for problem in arithmetic_problems(200, seed=1):
        assert int(problem["answer"]) == eval(problem["question"])  # noqa: S307 - our own generated digits
    ds = arithmetic_dataset(4, seed=2)
    assert ds[0]["prompt"][0]["role"] == "user" and ds[0]["prompt"][0]["content"].endswith("=")
    assert arithmetic_dataset(4, seed=2)["answer"] == ds["answer"]


def test_arithmetic_reward_reads_the_last_integer():
    completions = ["12", "7+5 is 12", "12 or 13", "-4", "none", [{"role": "assistant", "content": "so 12"}]]
    assert arithmetic_reward(completions, answer=["12", "12", "12", "-4", "0", "12"]) == [1, 1, 0, 1, 0, 1]


def test_coin_reward_is_deterministic_and_mixed():
    texts = [str(i) for i in range(100)]
    rewards = coin_reward(texts)
    assert rewards == coin_reward(texts) and 30 < sum(rewards) < 70


def test_a_saved_tiny_model_loads_with_the_tokenizer_it_was_trained_with(tmp_path):
    """transformers 5 rebuilds a plain `tokenizers` tokenizer saved next to a Qwen2 config as Qwen2Tokenizer, which
    drops the newlines of the chat template; load_pretrained_tokenizer loads what was saved."""
    from trl_reasoning.embedded import build_tiny_model, build_tokenizer, load_pretrained_tokenizer

    tokenizer = build_tokenizer()
    build_tiny_model(tokenizer).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_pretrained_tokenizer(str(tmp_path))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "12+7="}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\n12+7=<|im_end|>\n<|im_start|>assistant\n"
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert expected.count(tokenizer.convert_tokens_to_ids("\n")) == 3
    assert (
        loaded(
            loaded.apply_chat_template(
                [{"role": "user", "content": "12+7="}], tokenize=False, add_generation_prompt=True
            ),
            add_special_tokens=False,
        )["input_ids"]
        == expected
    )
    assert (loaded.pad_token, loaded.eos_token) == ("<|pad|>", "<|im_end|>")

"""``trl_reasoning.evaluate(..., backend="vllm")`` on the real vLLM CPU engine (nothing shimmed: evaluate builds its
own ``vllm.LLM`` from the saved model)."""

from math import comb

import pytest

from trl_reasoning.embedded import arithmetic_dataset, build_tokenizer, completion_text
from trl_reasoning.evaluation import evaluate
from trl_reasoning.testing import coin_reward


N = 4


def test_evaluate_with_the_vllm_backend(tiny_model_dir):
    dataset = arithmetic_dataset(6, seed=3)
    result = evaluate(
        tiny_model_dir,
        dataset,
        coin_reward,
        n=N,
        max_new_tokens=8,
        temperature=1.0,
        backend="vllm",
        vllm_kwargs={"max_model_len": 128},
        seed=0,
    )
    assert result.backend == "vllm"
    assert result.num_problems == len(dataset) and len(result.samples) == N * len(dataset)
    tokenizer = build_tokenizer()
    counts = []
    for problem in range(len(dataset)):
        samples = result.samples[problem * N : (problem + 1) * N]
        assert [s["problem"] for s in samples] == [problem] * N
        assert all(s["prompt"] == dataset[problem]["prompt"] for s in samples)
        for sample in samples:
            # the verdict is the reward of the text vLLM returned, recomputed here
            assert sample["correct"] == (coin_reward([sample["completion"]])[0] >= 1.0)
            # the token count vLLM reported is the length of that text in the model's tokenizer (at most 8 tokens,
            # plus the end-of-sequence token vLLM drops from the text)
            text = completion_text(sample["completion"])
            length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            assert sample["completion_tokens"] in (length, length + 1)
            assert 1 <= sample["completion_tokens"] <= 8
        assert len({completion_text(s["completion"]) for s in samples}) > 1  # n samples, not one answer n times
        counts.append(sum(s["correct"] for s in samples))
    assert 0 < sum(counts) < N * len(dataset)  # mixed verdicts, so pass@k is not trivially 0 or 1
    for k in (1, 2, 4):
        expected = sum(1 - comb(N - c, k) / comb(N, k) for c in counts) / len(counts)
        assert result.pass_at_k[k] == pytest.approx(expected)
    assert result.accuracy == pytest.approx(sum(counts) / (N * len(dataset)))

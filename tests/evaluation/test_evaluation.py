"""maj@k, answer lengths and ``evaluate`` (transformers and vLLM backends) against hand-computed numbers."""

import importlib.machinery
import math
import sys
import types

import pytest
import torch

from trl_reasoning.embedded import arithmetic_reward, build_tokenizer, last_integer
from trl_reasoning.evaluation import (
    EvaluationResult,
    evaluate,
    maj_at_k,
    mean_length_by_correctness,
    mean_maj_at_k,
)


# --- maj@k -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "correct", "k", "expected"),
    [
        (["4", "4", "5"], [True, True, False], 1, 2 / 3),  # one vote: the share correct
        (["4", "4", "5"], [True, True, False], 2, 2 / 3),  # {4,4} -> 1, {4,5} twice -> tie 1/2: (1 + 1/2 + 1/2) / 3
        (["4", "4", "5"], [True, True, False], 3, 1.0),  # 4 wins 2-1
        (["4", "5"], [True, False], 2, 0.5),  # a tie between a right and a wrong answer
        ([None, None, "5"], [False, False, True], 3, 1.0),  # no answer casts no vote
        ([None, None, "5"], [False, False, True], 1, 1 / 3),
        ([None, None], [False, False], 2, 0.0),  # nobody voted
        (["3", "3", "2", "4"], [False, False, True, False], 4, 0.0),  # the wrong answer 3 wins
        # {3,3} 0; {3,2} x2 1/2 each; {3,4} x2 0; {2,4} 1/2: 1.5 / 6
        (["3", "3", "2", "4"], [False, False, True, False], 2, 0.25),
    ],
)
def test_maj_at_k_hand_computed(answers, correct, k, expected):
    assert maj_at_k(answers, correct, k) == pytest.approx(expected, abs=1e-12)


def _two_answer_maj(a: int, b: int, k: int) -> float:
    """maj@k with ``a`` copies of a right answer and ``b`` of one wrong answer: hypergeometric, ties count 1/2."""
    total = math.comb(a + b, k)
    win = sum(math.comb(a, i) * math.comb(b, k - i) for i in range(k + 1) if 2 * i > k)
    tie = math.comb(a, k // 2) * math.comb(b, k // 2) if k % 2 == 0 else 0
    return (win + tie / 2) / total


@pytest.mark.parametrize(("a", "b", "k"), [(5, 3, 4), (4, 4, 3), (2, 7, 6), (7, 7, 8)])
def test_maj_at_k_exact_enumeration_matches_the_hypergeometric_closed_form(a, b, k):
    answers, correct = ["R"] * a + ["W"] * b, [True] * a + [False] * b
    assert maj_at_k(answers, correct, k, max_subsets=10**6) == pytest.approx(_two_answer_maj(a, b, k), abs=1e-12)


def test_maj_at_k_random_subsets_estimate_the_closed_form():
    a, b, k = 12, 10, 9  # C(22, 9) = 497420 subsets: estimated from 20000 random ones
    answers, correct = ["R"] * a + ["W"] * b, [True] * a + [False] * b
    estimate = maj_at_k(answers, correct, k, max_subsets=20_000, seed=3)
    assert estimate == pytest.approx(_two_answer_maj(a, b, k), abs=0.01)
    assert estimate == maj_at_k(answers, correct, k, max_subsets=20_000, seed=3)  # seeded


def test_mean_maj_at_k_averages_problems():
    result = mean_maj_at_k([["4", "4", "5"], ["4", "5"]], [[True, True, False], [True, False]], [1, 2])
    assert result == pytest.approx({1: (2 / 3 + 1 / 2) / 2, 2: (2 / 3 + 1 / 2) / 2})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: maj_at_k([], [], 1), "answers is empty"),
        (lambda: maj_at_k(["1"], [True, False], 1), "one per sample"),
        (lambda: maj_at_k(["1", "2"], [True, False], 3), "k must be between 1 and n"),
        (lambda: maj_at_k(["1", "2"], [True, False], 0), "k must be between 1 and n"),
        (lambda: mean_maj_at_k([], [], [1]), "no problems"),
        (lambda: mean_length_by_correctness([1, 2], [True]), "2 lengths but 1"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mean_length_by_correctness():
    assert mean_length_by_correctness([2, 4, 9, 3], [True, True, False, False]) == (3.0, 6.0)
    assert mean_length_by_correctness([2, 4], [False, False]) == (None, 3.0)


# --- evaluate ---------------------------------------------------------------------------------------------------------

# Two problems, four scripted completions each. Hand-computed:
#   "2+3=": 5, 5, 7, (none)   -> 2 correct; votes 5:2 7:1 -> maj@4 right
#   "1+1=": 3, 3, 2, 4        -> 1 correct; votes 3:2 -> maj@4 wrong
# pass@1 = (2/4 + 1/4) / 2 = 0.375; pass@2 = (1 - C(2,2)/C(4,2) + 1 - C(3,2)/C(4,2)) / 2 = (5/6 + 1/2) / 2 = 2/3
# pass@4 = 1; maj@1 = pass@1; maj@2 = (4/6 + 1/4) / 2 = 11/24 (enumerated in the comments of the maj@k cases above)
# maj@4 = 1/2. Token lengths: characters plus the end-of-sequence token.
SCRIPT = {
    "2+3=": ["5", "so 5", "7", "no idea"],
    "1+1=": ["it is 3", "3", "2", "4"],
}
EXPECTED = {
    "pass": {1: 0.375, 2: 2 / 3, 4: 1.0},
    "maj": {1: 0.375, 2: 11 / 24, 4: 0.5},
    # correct: "5" (2 tokens), "so 5" (5), "2" (2) -> 3.0; incorrect: "7" 2, "no idea" 8, "it is 3" 8, "3" 2, "4" 2
    "correct_length": 3.0,
    "incorrect_length": 22 / 5,
}


def _problems():
    from datasets import Dataset

    rows = [{"prompt": [{"role": "user", "content": p}], "answer": str(eval(p[:-1]))} for p in SCRIPT]  # noqa: S307
    return Dataset.from_list(rows)


class ScriptedModel(torch.nn.Module):
    """A stand-in causal LM whose ``generate`` returns the next scripted completion for each prompt."""

    def __init__(self, tokenizer):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.tokenizer = tokenizer
        self.served = dict.fromkeys(SCRIPT, 0)

    def generate(self, input_ids, attention_mask=None, max_new_tokens=8, **kwargs):
        rows = []
        for ids in input_ids:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            prompt = next(p for p in SCRIPT if p in text)
            completion = SCRIPT[prompt][self.served[prompt] % len(SCRIPT[prompt])]
            self.served[prompt] += 1
            new = self.tokenizer(completion, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            rows.append(new[:max_new_tokens])
        width = max_new_tokens
        out = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        for i, new in enumerate(rows):
            out[i, : len(new)] = torch.tensor(new)
        return torch.cat([input_ids, out], dim=1)


def _check(result: EvaluationResult, backend: str):
    assert result.backend == backend
    assert (result.num_problems, result.samples_per_problem) == (2, 4)
    assert result.pass_at_k == pytest.approx(EXPECTED["pass"], abs=1e-12)
    assert result.maj_at_k == pytest.approx(EXPECTED["maj"], abs=1e-12)
    assert result.accuracy == pytest.approx(3 / 8)
    assert result.mean_correct_length == pytest.approx(EXPECTED["correct_length"])
    assert result.mean_incorrect_length == pytest.approx(EXPECTED["incorrect_length"])
    assert [s["problem"] for s in result.samples] == [0, 0, 0, 0, 1, 1, 1, 1]
    metrics = result.metrics()
    assert metrics["eval/pass@2"] == pytest.approx(2 / 3) and metrics["eval/maj@4"] == pytest.approx(0.5)
    assert metrics["eval/accuracy"] == pytest.approx(3 / 8)


@pytest.mark.parametrize("batch_size", [3, 64])
def test_evaluate_with_transformers_generation(batch_size):
    tokenizer = build_tokenizer()
    result = evaluate(
        ScriptedModel(tokenizer),
        _problems(),
        arithmetic_reward,
        4,
        tokenizer=tokenizer,
        max_new_tokens=10,
        batch_size=batch_size,
        answer_extractor=last_integer,
        backend="transformers",
    )
    _check(result, "transformers")


def test_evaluate_with_vllm_scores_the_same(monkeypatch):
    """The vLLM path (a stand-in ``vllm`` module): same prompts in, same numbers out; n, seed and limits passed."""
    tokenizer = build_tokenizer()
    calls = {}

    class LLM:
        def __init__(self, model, seed, **kwargs):
            calls["init"] = {"model": model, "seed": seed, **kwargs}

        def generate(self, prompts, params):
            calls["params"] = params
            outputs = []
            for text in prompts:
                prompt = next(p for p in SCRIPT if p in text)
                completions = [
                    types.SimpleNamespace(text=c, token_ids=tokenizer(c, add_special_tokens=False)["input_ids"] + [2])
                    for c in SCRIPT[prompt][: params[len(outputs)].n]
                ]
                outputs.append(types.SimpleNamespace(outputs=completions))
            return outputs

    def sampling_params(**kwargs):
        return types.SimpleNamespace(**kwargs)

    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    vllm.LLM, vllm.SamplingParams = LLM, sampling_params
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    result = evaluate(
        "some/model",
        _problems(),
        arithmetic_reward,
        4,
        tokenizer=tokenizer,
        max_new_tokens=10,
        answer_extractor=last_integer,
        seed=7,
        backend="vllm",
        vllm_kwargs={"gpu_memory_utilization": 0.5},
    )
    _check(result, "vllm")
    assert calls["init"] == {"model": "some/model", "seed": 7, "gpu_memory_utilization": 0.5}
    params = calls["params"]  # one per prompt, each its own seed: independent random streams, reproducible from 7
    assert [(p.n, p.max_tokens, p.temperature) for p in params] == [(4, 10, 1.0)] * len(params)
    assert [p.seed for p in params] == list(range(7, 7 + len(params))) and len(params) == len(_problems())


def test_auto_backend_uses_transformers_for_a_model_object_and_without_vllm():
    tokenizer = build_tokenizer()
    result = evaluate(
        ScriptedModel(tokenizer), _problems(), arithmetic_reward, 4, tokenizer=tokenizer, max_new_tokens=10
    )
    assert result.backend == "transformers"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n=0 must be >= 1"),
        ({"ks": [8]}, r"every k must be between 1 and n=4 \(got \[8\]\)"),
        ({"maj_ks": [5]}, "every k must be between 1 and n=4"),
        ({"temperature": 0.0}, "use n=1 or temperature > 0"),
        ({"backend": "tgi"}, "backend='tgi' is not one of"),
        ({"backend": "vllm"}, "needs the model as a path or hub id"),
        ({"tokenizer": None}, "pass tokenizer="),
    ],
)
def test_evaluate_bad_arguments_name_the_fix(kwargs, message):
    tokenizer = build_tokenizer()
    arguments = {"n": 4, "tokenizer": tokenizer, **kwargs}
    n = arguments.pop("n")
    with pytest.raises(ValueError, match=message):
        evaluate(ScriptedModel(tokenizer), _problems(), arithmetic_reward, n, **arguments)


def test_evaluate_refuses_an_empty_dataset():
    from datasets import Dataset

    tokenizer = build_tokenizer()
    with pytest.raises(ValueError, match="dataset is empty"):
        evaluate(ScriptedModel(tokenizer), Dataset.from_list([]), arithmetic_reward, 4, tokenizer=tokenizer)


# --- the training callback --------------------------------------------------------------------------------------------


def test_callback_logs_eval_pass_at_k_without_changing_training(tmp_path):
    """eval/pass@k reaches the log rows at the evaluation steps (every report_to sees them), the numbers are those of
    evaluate() on the model at that step, and training is bit-for-bit what it is without the callback."""
    from support import make_trainer, parameters

    from trl_reasoning.embedded import arithmetic_dataset
    from trl_reasoning.evaluation import PassAtKCallback
    from trl_reasoning.testing import coin_reward

    held_out = arithmetic_dataset(4, seed=5)
    plain = make_trainer(tmp_path / "plain", max_steps=4, logging_steps=1)
    plain.train()
    watched = make_trainer(tmp_path / "watched", max_steps=4, logging_steps=1)
    callback = PassAtKCallback(watched, held_out, coin_reward, n=4, ks=[1, 4], eval_steps=2, eval_on_start=True)
    watched.add_callback(callback)
    watched.train()

    assert all(
        torch.equal(a, b) for a, b in zip(parameters(plain).values(), parameters(watched).values(), strict=True)
    )
    rewards = [[row["reward"] for row in t.state.log_history if "reward" in row] for t in (plain, watched)]
    assert rewards[0] == rewards[1]
    assert [step for step, _ in callback.history] == [0, 2, 4]
    logged = {row["step"]: row for row in watched.state.log_history if "eval/pass@1" in row}
    assert sorted(logged) == [2, 4]
    for step, result in callback.history[1:]:
        row = logged[step]
        assert row["eval/pass@1"] == pytest.approx(result.pass_at_k[1]) == pytest.approx(result.accuracy)
        assert row["eval/pass@4"] == pytest.approx(result.pass_at_k[4])
        assert row["eval/maj@4"] == pytest.approx(result.maj_at_k[4])
        assert result.num_problems == 4 and len(result.samples) == 16
    # the final model, evaluated afresh, gives the last logged numbers (same seed, same samples)
    again = evaluate(
        watched.model, held_out, coin_reward, 4, [1, 4], tokenizer=watched.processing_class, max_new_tokens=8
    )
    assert again.pass_at_k == pytest.approx(callback.history[-1][1].pass_at_k)


def test_callback_refuses_bad_settings(tmp_path):
    from trl_reasoning.embedded import arithmetic_dataset
    from trl_reasoning.evaluation import PassAtKCallback
    from trl_reasoning.testing import coin_reward

    held_out = arithmetic_dataset(4)
    with pytest.raises(ValueError, match="eval_steps=0"):
        PassAtKCallback(None, held_out, coin_reward, eval_steps=0)
    with pytest.raises(ValueError, match=r"every k in ks=\[16\] must be between 1 and n=8"):
        PassAtKCallback(None, held_out, coin_reward, n=8, ks=[16])
    with pytest.raises(ValueError, match="dataset is empty"):
        PassAtKCallback(None, held_out.select([]), coin_reward)

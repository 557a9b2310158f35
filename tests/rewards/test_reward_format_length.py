"""Format and length rewards (hand-computed values, DAPO's worked example, pickling, errors, adversarial inputs) and
the well-formedness of the verifier case file tests/data/reward_cases.jsonl."""

import json
import math
import pickle
import re
import sys
import time
import types
from collections import Counter
from pathlib import Path

import pytest

from trl_reasoning.rewards.format import (
    boxed_format_reward,
    completion_text,
    get_think_format_reward,
    has_boxed_answer,
    think_format_reward,
)
from trl_reasoning.rewards.length import (
    dapo_overlong_buffer,
    get_correct_length_reward,
    get_dapo_soft_overlong_punishment,
    get_soft_overlong_punishment,
)


CASES_FILE = Path(__file__).parents[1] / "data" / "reward_cases.jsonl"


def conversation(text):
    return [{"role": "assistant", "content": text}]


# A linear scan of 200k characters takes milliseconds here; a quadratic one takes minutes. The budget only has to tell
# the two apart, with room for a busy CI machine (0.1 s was seen to flake at 0.11 s).
LINEAR_BUDGET_S = 1.0


def fastest(fn, *args, repeats=3):
    """Best-of-n wall time, so a busy machine does not make a timing assertion flaky."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


# ------------------------------------------------------------------------------------------------- the case file

CATEGORIES = {
    "integer", "decimal", "fraction", "percent", "thousands", "currency_units", "degrees", "mixed_number",
    "sqrt_expression", "symbolic", "equation", "interval", "tuple", "set", "solutions_list", "matrix",
    "multiple_choice", "text", "extraction", "gold_format", "hostile", "missing_gold",
}  # fmt: skip


def load_cases():
    with CASES_FILE.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_cases_file_is_well_formed():
    cases = load_cases()
    assert len(cases) >= 200
    ids = [case["id"] for case in cases]
    assert len(ids) == len(set(ids))
    for case in cases:
        assert {"id", "category", "gold", "expected", "note"} <= case.keys(), case["id"]
        assert case.keys() <= {"id", "category", "gold", "completion", "completion_repeat", "expected", "note",
                               "conversational"}, case["id"]  # fmt: skip
        assert case["category"] in CATEGORIES, case["id"]
        assert re.fullmatch(re.escape(case["category"]) + r"-\d{2,}", case["id"]), case["id"]
        assert isinstance(case["gold"], str) and isinstance(case["note"], str) and case["note"], case["id"]
        assert ("completion" in case) != ("completion_repeat" in case), case["id"]
        if "completion_repeat" in case:
            repeat = case["completion_repeat"]
            assert repeat.keys() == {"prefix", "unit", "times", "suffix"}, case["id"]
            assert isinstance(repeat["times"], int) and repeat["times"] > 0, case["id"]
        else:
            assert isinstance(case["completion"], str), case["id"]
        assert case.get("conversational", False) in (True, False), case["id"]
        if case["category"] == "missing_gold":
            assert case["expected"] is None and not case["gold"].strip(), case["id"]
        else:
            assert case["expected"] in (0.0, 1.0) and type(case["expected"]) is float, case["id"]
            assert case["gold"].strip(), case["id"]


def test_cases_file_covers_every_category_with_enough_wrong_answers():
    cases = load_cases()
    per_category = Counter(case["category"] for case in cases)
    assert set(per_category) == CATEGORIES
    assert min(per_category.values()) >= 6
    scored = [case for case in cases if case["expected"] is not None]
    wrong = sum(case["expected"] == 0.0 for case in scored)
    assert 0.3 <= wrong / len(scored) <= 0.5
    assert sum(bool(case.get("conversational")) for case in cases) >= 3
    # the long hostile inputs really are long
    longest = max(
        len(r["prefix"]) + len(r["unit"]) * r["times"] + len(r["suffix"])
        for r in (case["completion_repeat"] for case in cases if "completion_repeat" in case)
    )
    assert longest >= 200_000


def test_cases_file_holds_the_verifier_facts_pairs_both_ways():
    pairs = {(case["gold"], case["expected"]) for case in load_cases()}
    for gold, expected in [
        (r"\{1,2\}", 1.0), (r"\{2,1\}", 1.0), ("(1, 2)", 0.0), ("(2, 1)", 0.0), ("[1, 2]", 0.0),
        (r"\frac{1}{2^{99}}", 0.0), (r"\frac{1}{2^{98}}", 0.0), ("12:00", 0.0), ("1:00", 0.0),
        ("2x+4y-3=0", 1.0), (r"y=-\frac{1}{2}x+\frac{3}{4}", 1.0), (r"\pm 2", 0.0), (r"\pm 2", 1.0),
    ]:  # fmt: skip
        assert (gold, expected) in pairs, gold


# ------------------------------------------------------------------------------------------------- completion text


def test_completion_text_handles_strings_conversations_parts_and_tool_calls():
    assert completion_text("abc") == "abc"
    assert completion_text(conversation("abc")) == "abc"
    assert completion_text({"role": "assistant", "content": "abc"}) == "abc"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "bc"}]}]
    assert completion_text(parts) == "abc"
    tool_use = [
        {"role": "assistant", "content": None, "tool_calls": [{"name": "calc"}]},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": "The answer is 42."},
    ]
    assert completion_text(tool_use) == "The answer is 42."
    assert completion_text([]) == ""
    with pytest.raises(TypeError, match="string or a list of messages"):
        completion_text(42)


# ------------------------------------------------------------------------------------------------- think format

THINK_CASES = [
    ("<think>\nI add 2 and 2.\n</think>\nThe answer is 4.", 1.0),
    ("\n  <think>reasoning</think>answer", 1.0),  # leading whitespace is fine
    ("<think>reasoning</think>", 0.0),  # no answer
    ("<think>reasoning</think>  \n", 0.0),  # blank answer
    ("<think>  \n </think>answer", 0.0),  # blank reasoning
    ("<think>reasoning\nanswer", 0.0),  # never closed
    ("reasoning</think>answer", 0.0),  # never opened
    ("Sure! <think>reasoning</think>answer", 0.0),  # text before the block
    ("<think>a</think>b<think>c</think>d", 0.0),  # two blocks
    ("<think>a<think>b</think>c", 0.0),  # nested open
    ("<think>a</think>b</think>c", 0.0),  # two closes
    ("", 0.0),
]


def test_think_format_reward_strings_and_conversations():
    texts = [text for text, _ in THINK_CASES]
    expected = [reward for _, reward in THINK_CASES]
    assert think_format_reward(texts) == expected
    assert think_format_reward([conversation(t) for t in texts]) == expected
    assert get_think_format_reward()(texts) == expected


def test_think_format_reward_with_think_in_prompt():
    reward = get_think_format_reward(think_in_prompt=True)
    completions = [
        "I add 2 and 2.\n</think>\nThe answer is 4.",  # the template already opened <think>
        "<think>reasoning</think>answer",  # opening it again is wrong
        "reasoning</think>",  # no answer
        "</think>answer",  # no reasoning
        "a</think>b</think>c",
        "no tags at all",
    ]
    assert reward(completions) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert reward([conversation(c) for c in completions], prompts=["p"] * 6) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_think_format_reward_is_picklable_and_named():
    for think_in_prompt in (False, True):
        reward = get_think_format_reward(think_in_prompt)
        clone = pickle.loads(pickle.dumps(reward))
        assert clone.__name__ == reward.__name__ == "think_format_reward"
        assert repr(clone) == f"ThinkFormatReward(think_in_prompt={think_in_prompt})"
        texts = [text for text, _ in THINK_CASES] + ["x</think>y"]
        assert clone(texts) == reward(texts)
    assert pickle.loads(pickle.dumps(think_format_reward)) is think_format_reward
    with pytest.raises(TypeError, match="think_in_prompt"):
        get_think_format_reward("yes")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>" * 30_000, 0.0),
        ("<think>" + "a" * 200_000, 0.0),
        ("<think>" + "</think>" * 25_000, 0.0),
        ("<think>" + "<" * 200_000 + "</think>x", 1.0),
        ("<think>a</think>" + " " * 200_000, 0.0),
        (" " * 200_000 + "<think>a</think>b", 1.0),
    ],
    ids=["opens", "unclosed", "closes", "angles", "blank-answer", "leading-blanks"],
)
def test_think_format_reward_is_fast_on_200k_adversarial_input(text, expected):
    assert think_format_reward([text]) == [expected]
    assert fastest(think_format_reward, [text]) < LINEAR_BUDGET_S
    assert fastest(get_think_format_reward(think_in_prompt=True), [text]) < LINEAR_BUDGET_S


# ------------------------------------------------------------------------------------------------- boxed format

BOX_CASES = [
    (r"So the answer is $\boxed{5}$.", 1.0),
    (r"$\boxed{\frac{1}{2}}$", 1.0),
    (r"\boxed {5}", 1.0),  # space before the brace is valid LaTeX
    (r"\boxed{\{1, 2\}}", 1.0),  # escaped braces inside
    (r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", 1.0),
    (r"}}} stray closers, then \boxed{7}", 1.0),
    (r"\boxed{3} and later an unclosed \boxed{", 0.0),  # the last box was cut off: no boxed final answer
    (r"\boxed{}", 0.0),
    (r"\boxed{ }", 0.0),
    (r"\boxed{{}}", 0.0),
    (r"\boxed{\boxed{}}", 0.0),  # a box holding only an empty box is empty
    (r"\boxed{\frac{1}{2}", 0.0),  # never closed
    (r"\boxed{5\}", 0.0),  # an escaped brace does not close
    (r"\boxed5", 0.0),
    (r"\boxedx{5}", 0.0),
    (r"\fbox{5}", 1.0),  # \fbox is read as a box, as by the accuracy reward
    (r"\\boxed{5}", 0.0),  # a line break followed by the word "boxed"
    ("The answer is 5.", 0.0),
    ("", 0.0),
    ("<think>Is it \\boxed{3}?</think> I think it is 3.", 0.0),  # the box is in the reasoning only
    ("<think>It is 3.</think> $\\boxed{3}$", 1.0),
    ("<think>a</think>b<think>\\boxed{3}</think> done", 0.0),  # after the LAST </think>
    ("<think>still thinking \\boxed{3}", 1.0),  # no </think>: the whole completion is the answer
]


def test_boxed_format_reward_strings_and_conversations():
    texts = [text for text, _ in BOX_CASES]
    expected = [reward for _, reward in BOX_CASES]
    assert boxed_format_reward(texts) == expected
    assert boxed_format_reward([conversation(t) for t in texts], solution=["x"] * len(texts)) == expected


def test_has_boxed_answer_reads_the_last_box_only():
    assert has_boxed_answer(r"\boxed{} then \boxed{4}")
    assert not has_boxed_answer(r"\boxed{4} then \boxed{ }")
    assert has_boxed_answer(r"\boxed{\boxed{x}}")
    assert not has_boxed_answer(r"\boxed{\boxed{ {} }}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed" + "{" * 200_000, 0.0),
        ("\\boxed{" * 30_000, 0.0),
        ("\\boxed{" + "}" * 200_000, 0.0),
        ("\\boxed{" + " " * 200_000 + "}", 0.0),
        ("\\boxed{" * 14_000 + "}" * 14_000, 0.0),
        ("\\boxed{" + "\\{" * 100_000, 0.0),
        ("\\boxed{" + "{a}" * 66_000, 0.0),
        ("\\boxed{" + "{a}" * 66_000 + "}", 1.0),
        ("\\boxed{" + "{a" * 50_000 + "}" * 50_001, 1.0),
        ("\\boxed{" + "{a" * 50_000 + "}" * 50_000, 0.0),
        ("\\boxed{" + "a{" * 100_000, 0.0),
        ("\\" * 200_000 + "boxed{5}", 0.0),
        ("\\boxed{}a" * 25_000, 0.0),
    ],
    ids=[
        "opens",
        "boxes",
        "closes",
        "blank",
        "nested-empty",
        "escapes",
        "flat-groups",
        "flat-groups-closed",
        "deep",
        "deep-unclosed",
        "open-after-text",
        "backslashes",
        "empty-boxes",
    ],  # fmt: skip
)
def test_boxed_format_reward_is_fast_on_200k_adversarial_input(text, expected):
    assert boxed_format_reward([text]) == [expected]
    assert fastest(boxed_format_reward, [text]) < LINEAR_BUDGET_S


def test_boxed_format_reward_finds_the_last_of_many_boxes_fast():
    text = "Try $\\boxed{1}$. " * 12_000 + "No: $\\boxed{2}$."
    assert boxed_format_reward([text]) == [1.0]
    assert fastest(boxed_format_reward, [text]) < LINEAR_BUDGET_S


# ------------------------------------------------------------------------------------------------- soft overlong


def test_soft_overlong_punishment_dapo_worked_example():
    # docs/rewards.md, Worked example: L_max = 20480, L_cache = 4096
    reward = get_soft_overlong_punishment(max_completion_len=20480, soft_punish_cache=4096)
    lengths = [16000, 16384, 18000, 20480, 21000]
    ids = [[7] * n for n in lengths]
    assert reward(completions=["x"] * 5, completion_ids=ids) == [0.0, 0.0, -0.39453125, -1.0, -1.0]
    assert reward([conversation("x")] * 5, completion_ids=ids) == [0.0, 0.0, -0.39453125, -1.0, -1.0]


def test_soft_overlong_punishment_small_example_and_penalty_factor():
    # L_max = 10, L_cache = 4: free up to 6 tokens, then -1/4 per token up to 10, then -1
    reward = get_soft_overlong_punishment(10, 4)
    ids = [[1] * n for n in (0, 6, 7, 8, 10, 11)]
    assert reward(completion_ids=ids) == [0.0, 0.0, -0.25, -0.5, -1.0, -1.0]
    # verl scales the linear branch only; the paper's -1 beyond the limit stays
    half = get_soft_overlong_punishment(10, 4, penalty_factor=0.5)
    assert half(completion_ids=ids) == [0.0, 0.0, -0.125, -0.25, -0.5, -1.0]
    # a buffer as long as the limit punishes from the first token
    whole = get_soft_overlong_punishment(4, 4)
    assert whole(completion_ids=[[], [1], [1, 2, 3, 4]]) == [0.0, -0.25, -1.0]


def test_soft_overlong_punishment_is_picklable_and_named():
    reward = get_soft_overlong_punishment(100, 20, penalty_factor=2.0)
    clone = pickle.loads(pickle.dumps(reward))
    assert reward.__name__ == clone.__name__ == "soft_overlong_punishment"
    assert repr(clone) == "SoftOverlongPunishment(max_completion_len=100, soft_punish_cache=20, penalty_factor=2.0)"
    ids = [[0] * n for n in (50, 80, 81, 90, 100, 101)]
    assert clone(completion_ids=ids) == reward(completion_ids=ids) == [0.0, 0.0, -0.1, -1.0, -2.0, -1.0]


def test_soft_overlong_correctness_range_scales_the_whole_punishment():
    # correctness_range / 2 multiplies both branches: with 1 (a 0/1 accuracy) the punishment is halved, -1 → -0.5.
    reward = get_soft_overlong_punishment(10, 4, correctness_range=1.0)
    ids = [[1] * n for n in (0, 6, 7, 8, 10, 11)]
    assert reward(completion_ids=ids) == [0.0, 0.0, -0.125, -0.25, -0.5, -0.5]
    assert "correctness_range=1.0" in repr(pickle.loads(pickle.dumps(reward)))
    for bad in (0, -1.0, float("inf"), "1", True):
        with pytest.raises(ValueError, match="correctness_range"):
            get_soft_overlong_punishment(10, 4, correctness_range=bad)


def test_dapo_proportions_buffer_and_worked_example():
    # DAPO's buffer is a fifth of the limit: 4096 of 20480 (docs/rewards.md, Worked example), rounded, at least 1 token.
    assert [dapo_overlong_buffer(n) for n in (20480, 8192, 10, 8, 4, 1)] == [4096, 1638, 2, 2, 1, 1]
    lengths = [16000, 16384, 18000, 20480, 21000]
    ids = [[7] * n for n in lengths]
    # correctness_range=2 (DAPO's ±1) is docs/rewards.md's Worked example exactly; the default, 1 (0/1 accuracy), halves it.
    dapo = get_dapo_soft_overlong_punishment(20480, correctness_range=2.0)
    assert dapo(completion_ids=ids) == [0.0, 0.0, -0.39453125, -1.0, -1.0]
    halved = get_dapo_soft_overlong_punishment(20480)
    assert (halved.max_completion_len, halved.soft_punish_cache) == (20480, 4096)
    assert halved(completion_ids=ids) == [0.0, 0.0, -0.197265625, -0.5, -0.5]


def test_dapo_proportions_with_0_1_accuracy_give_dapo_advantages_through_grpo():
    """Group (L_max = 20480): right at 16000 and 18000 tokens, wrong at 20480 (truncated) and 12000 tokens.

    DAPO (±1 correctness + soft overlong punishment): totals [1, 1 − 0.39453125, −1 − 1, −1] = [1, 0.60546875, −2, −1].
    Ours (0/1 accuracy + halved punishment): [1, 0.802734375, −0.5, 0] = (DAPO + 1) / 2, so Dr. GRPO's unscaled
    advantages are exactly half of DAPO's and GRPO's std-scaled ones equal them (up to the 1e-4 in the denominator).
    The old recipe shaping (buffer L_max // 4 = 5120, unscaled) starts at 15360 tokens and gives
    [1 − 640/5120, 1 − 2640/5120, −1, 0] = [0.875, 0.484375, −1, 0], no affine map of DAPO's.
    """
    import torch

    from trl_reasoning import get_advantage_estimator

    lengths, right = [16000, 18000, 20480, 12000], [1.0, 1.0, 0.0, 0.0]
    ids = [[0] * n for n in lengths]
    ours = [a + p for a, p in zip(right, get_dapo_soft_overlong_punishment(20480)(completion_ids=ids), strict=True)]
    assert ours == [1.0, 0.802734375, -0.5, 0.0]
    dapo = torch.tensor([1.0, 0.60546875, -2.0, -1.0], dtype=torch.float64)
    grpo = get_advantage_estimator("grpo")
    unscaled = grpo(rewards=torch.tensor(ours, dtype=torch.float64), group_size=4, scale="none")
    torch.testing.assert_close(unscaled, grpo(rewards=dapo, group_size=4, scale="none") / 2, rtol=0, atol=1e-12)
    # DAPO's mean is −1.39453125 / 4 = −0.3486328125: unscaled [1.3486328125, 0.9541015625, −1.6513671875,
    # −0.6513671875], halved.
    expected = torch.tensor([1.3486328125, 0.9541015625, -1.6513671875, -0.6513671875], dtype=torch.float64) / 2
    torch.testing.assert_close(unscaled, expected, rtol=0, atol=1e-12)
    scaled = grpo(rewards=torch.tensor(ours, dtype=torch.float64), group_size=4)
    torch.testing.assert_close(scaled, grpo(rewards=dapo, group_size=4), rtol=2e-4, atol=0)
    old = get_soft_overlong_punishment(20480, 20480 // 4)(completion_ids=ids)
    assert [a + p for a, p in zip(right, old, strict=True)] == [0.875, 0.484375, -1.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_completion_len": 0, "soft_punish_cache": 1}, "max_completion_len"),
        ({"max_completion_len": -5, "soft_punish_cache": 1}, "max_completion_len"),
        ({"max_completion_len": 10.0, "soft_punish_cache": 1}, "max_completion_len"),
        ({"max_completion_len": True, "soft_punish_cache": 1}, "max_completion_len"),
        ({"max_completion_len": 10, "soft_punish_cache": 0}, "soft_punish_cache"),
        ({"max_completion_len": 10, "soft_punish_cache": -1}, "soft_punish_cache"),
        ({"max_completion_len": 10, "soft_punish_cache": 11}, "soft_punish_cache"),
        ({"max_completion_len": 10, "soft_punish_cache": 2.5}, "soft_punish_cache"),
        ({"max_completion_len": 10, "soft_punish_cache": 4, "penalty_factor": 0}, "penalty_factor"),
        ({"max_completion_len": 10, "soft_punish_cache": 4, "penalty_factor": -1.0}, "penalty_factor"),
        ({"max_completion_len": 10, "soft_punish_cache": 4, "penalty_factor": float("nan")}, "penalty_factor"),
        ({"max_completion_len": 10, "soft_punish_cache": 4, "penalty_factor": "1"}, "penalty_factor"),
    ],
)
def test_soft_overlong_punishment_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        get_soft_overlong_punishment(**kwargs)


def test_soft_overlong_punishment_error_messages_say_how_to_fix():
    with pytest.raises(ValueError, match=r"\(0, max_completion_len\] = \(0, 10\]"):
        get_soft_overlong_punishment(10, 11)
    reward = get_soft_overlong_punishment(10, 4)
    with pytest.raises(ValueError, match="completion_ids.*GRPOTrainer passes `completion_ids`"):
        reward(completions=["abc"])
    with pytest.raises(ValueError, match="2 completions but 1 completion_ids"):
        reward(completions=["a", "b"], completion_ids=[[1]])
    with pytest.raises(TypeError, match="completion_ids must be a list"):
        reward(completion_ids="abc")


# ------------------------------------------------------------------------------------------------- correct length

ACCURACY = {"right": 1.0, "wrong": 0.0, "half": 0.5, "unknown": None}


def fake_accuracy(completions, solution, **kwargs):
    """A stand-in accuracy reward with TRL's signature: the solution names the verdict."""
    return [ACCURACY[s] for s in solution]


class RecordingAccuracy:
    __name__ = "recording_accuracy"

    def __init__(self):
        self.calls = []

    def __call__(self, completions, solution, **kwargs):
        self.calls.append({"completions": completions, "solution": solution, **kwargs})
        return [1.0] * len(completions)


def test_correct_length_reward_hand_computed():
    reward = get_correct_length_reward(200, accuracy_reward=fake_accuracy)
    solution = ["right", "right", "wrong", "unknown", "right", "half"]
    ids = [[1] * n for n in (10, 0, 10, 10, 250, 10)]
    # 1 - 10/200 = 0.95; empty: 1.0; wrong: 0; unknown: None; over budget: clamped to 0; 0.5 < threshold 1.0: 0
    expected = [0.95, 1.0, 0.0, None, 0.0, 0.0]
    assert reward(["x"] * 6, solution=solution, completion_ids=ids) == pytest.approx(expected)
    assert reward([conversation("x")] * 6, solution=solution, completion_ids=ids) == pytest.approx(expected)
    lenient = get_correct_length_reward(200, accuracy_reward=fake_accuracy, correct_threshold=0.5)
    assert lenient(["x"] * 6, solution=solution, completion_ids=ids) == pytest.approx(
        [0.95, 1.0, 0.0, None, 0.0, 0.95]
    )


def test_correct_length_reward_added_to_grpo_can_push_a_long_correct_answer_down():
    """The brevity reward is not DRPO: added to GRPO's reward a long correct answer can get a negative advantage.

    C = 100; right answers of 90, 10 and 20 tokens and a wrong one of 50. Totals (accuracy + brevity):
    [1 + 0.1, 1 + 0.9, 1 + 0.8, 0] = [1.1, 1.9, 1.8, 0], group mean 1.2, sample std sqrt(2.3 / 3) = 0.8755950358, so
    the 90-token right answer gets (1.1 − 1.2) / (0.8755950358 + 1e-4) = −0.1141950 < 0. DRPO's length weighting on
    the same group keeps every right answer positive: GRPO on correctness gives 0.25 / (0.5 + 1e-4), times
    |P|·softmax(−L/(λC)) over the right answers, λ = 0.1: 3·e^−9/(e^−9 + e^−1 + e^−2) → 3.677005e-4 for the 90-token one.
    """
    import torch

    from trl_reasoning import get_advantage_estimator

    lengths = [90, 10, 20, 50]
    solution = ["right", "right", "right", "wrong"]
    brevity = get_correct_length_reward(100, accuracy_reward=fake_accuracy)
    scores = brevity(["x"] * 4, solution=solution, completion_ids=[[0] * n for n in lengths])
    totals = [ACCURACY[s] + b for s, b in zip(solution, scores, strict=True)]
    assert totals == pytest.approx([1.1, 1.9, 1.8, 0.0])
    advantages = get_advantage_estimator("grpo")(rewards=torch.tensor(totals, dtype=torch.float64), group_size=4)
    std = math.sqrt(2.3 / 3)
    expected = [(t - 1.2) / (std + 1e-4) for t in totals]
    assert advantages.tolist() == pytest.approx(expected, abs=1e-6)
    assert advantages[0] < 0 and advantages[0] == pytest.approx(-0.1141950, abs=1e-6)
    correct = torch.tensor([True, True, True, False])
    drpo = get_advantage_estimator("drpo_length").compute(
        rewards=correct.double(),
        correct=correct,
        lengths=torch.tensor(lengths),
        group_size=4,
        max_length=100,
        length_lambda=0.1,
    )
    e = [math.exp(-9), math.exp(-1), math.exp(-2)]
    assert drpo.advantages[0].item() == pytest.approx(0.25 / 0.5001 * 3 * e[0] / sum(e), rel=1e-6)
    assert (drpo.advantages[correct] > 0).all()


def test_correct_length_reward_is_documented_as_brevity_shaping_not_drpo():
    import trl_reasoning.rewards.length as length

    for doc in (length.__doc__, length.CorrectLengthReward.__doc__, length.get_correct_length_reward.__doc__):
        assert "not DRPO" in doc or "Not DRPO" in doc
    assert "negative advantage" in length.get_correct_length_reward.__doc__
    assert 'policy_loss="drpo"' in length.get_correct_length_reward.__doc__


def test_correct_length_reward_passes_the_trl_arguments_to_the_accuracy_reward():
    accuracy = RecordingAccuracy()
    reward = get_correct_length_reward(8, accuracy_reward=accuracy)
    completions = [conversation("a"), conversation("b")]
    hooks = {"log_extra": lambda *args: None, "log_metric": lambda *args: None}
    out = reward(completions, solution=["1", "2"], completion_ids=[[1, 2], [1, 2, 3, 4]], prompts=["p", "q"], **hooks)
    assert out == pytest.approx([0.75, 0.5])
    (call,) = accuracy.calls
    assert call["completions"] is completions and call["solution"] == ["1", "2"]
    assert call["completion_ids"] == [[1, 2], [1, 2, 3, 4]] and call["prompts"] == ["p", "q"]
    # TRL's logging hooks are not passed on: the accuracy reward logs once, when TRL calls it itself.
    assert "log_extra" not in call and "log_metric" not in call


def test_correct_length_reward_imports_the_default_accuracy_reward_at_call_time(monkeypatch):
    reward = get_correct_length_reward(10)  # nothing is imported or looked up yet
    stand_in = types.ModuleType("trl_reasoning.rewards")
    stand_in.accuracy_reward = fake_accuracy
    monkeypatch.setitem(sys.modules, "trl_reasoning.rewards", stand_in)
    assert reward(["x", "y"], solution=["right", "wrong"], completion_ids=[[1], [1]]) == pytest.approx([0.9, 0.0])
    monkeypatch.setitem(sys.modules, "trl_reasoning.rewards", types.ModuleType("trl_reasoning.rewards"))
    with pytest.raises(ImportError, match="pass accuracy_reward="):
        reward(["x"], solution=["right"], completion_ids=[[1]])


def test_correct_length_reward_is_picklable_and_named():
    reward = get_correct_length_reward(100, accuracy_reward=fake_accuracy, correct_threshold=0.5)
    clone = pickle.loads(pickle.dumps(reward))
    assert reward.__name__ == clone.__name__ == "correct_length_reward"
    assert (
        repr(clone)
        == "CorrectLengthReward(max_completion_len=100, accuracy_reward=fake_accuracy, correct_threshold=0.5)"
    )
    args = (["a", "b", "c"],)
    kwargs = {"solution": ["right", "half", "unknown"], "completion_ids": [[0] * 30, [0] * 60, [0]]}
    assert clone(*args, **kwargs) == reward(*args, **kwargs) == pytest.approx([0.7, 0.4, None])
    default = pickle.loads(pickle.dumps(get_correct_length_reward(100)))
    assert (
        repr(default) == "CorrectLengthReward(max_completion_len=100, accuracy_reward=default, correct_threshold=1.0)"
    )


def test_correct_length_reward_errors():
    with pytest.raises(ValueError, match="max_completion_len"):
        get_correct_length_reward(0)
    with pytest.raises(ValueError, match="max_completion_len"):
        get_correct_length_reward(8192.0)
    with pytest.raises(TypeError, match="accuracy_reward"):
        get_correct_length_reward(10, accuracy_reward="accuracy")
    with pytest.raises(ValueError, match="correct_threshold"):
        get_correct_length_reward(10, accuracy_reward=fake_accuracy, correct_threshold=float("nan"))
    reward = get_correct_length_reward(10, accuracy_reward=fake_accuracy)
    with pytest.raises(ValueError, match="completion_ids.*GRPOTrainer passes `completion_ids`"):
        reward(["x"], solution=["right"])
    with pytest.raises(ValueError, match="returned 1 values for 2 completions"):
        get_correct_length_reward(10, accuracy_reward=lambda completions, **kw: [1.0])(
            ["x", "y"], solution=["a", "b"], completion_ids=[[1], [1]]
        )

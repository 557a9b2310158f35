"""The accuracy reward against the shared case file (tests/data/reward_cases.jsonl) and its time bounds.

The case file's own checks (size, categories, the VERIFIER_FACTS pairs) are in test_reward_format_length.py."""

import asyncio
import json
import logging
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trl_reasoning.rewards import (
    AccuracyReward,
    accuracy_reward,
    extract_final_answer,
    extract_gold_answer,
    get_accuracy_reward,
)
from trl_reasoning.rewards.answers import parse_number, quick_verdict


CASE_FILE = Path(__file__).parents[1] / "data" / "reward_cases.jsonl"
# Slack for process scheduling on a loaded 2-core CI machine, on top of a verification's own timeout.
KILL_SLACK_S = 1.5


def load_cases():
    cases = []
    for line in CASE_FILE.read_text().splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        completion = case.get("completion")
        if completion is None:
            repeat = case["completion_repeat"]
            completion = repeat.get("prefix", "") + repeat["unit"] * repeat["times"] + repeat.get("suffix", "")
        if case.get("conversational"):
            completion = [{"role": "assistant", "content": completion}]
        cases.append({**case, "completion": completion})
    return cases


CASES = load_cases()


@pytest.fixture(scope="module")
def reward():
    reward = get_accuracy_reward(timeout=1.0, workers=2)
    reward([r"\boxed{\sqrt{4}}"], ["2"])  # start the workers outside the timed tests
    yield reward
    reward.close()


def test_every_case_is_scored_as_expected_in_one_batch(reward):
    scores = reward([case["completion"] for case in CASES], [case["gold"] for case in CASES])
    wrong = [
        (case["id"], case["expected"], score)
        for case, score in zip(CASES, scores, strict=True)
        if score != case["expected"]
    ]
    assert not wrong, wrong
    assert all(score in (0.0, 1.0) for score in scores if score is not None)
    assert reward.stats["timeouts"] == 0 and reward.stats["errors"] == 0


def test_every_case_finishes_within_a_second_called_from_a_worker_thread():
    reward = get_accuracy_reward(timeout=1.0, workers=1)
    reward([r"\boxed{\sqrt{4}}"], ["2"])  # worker start-up is not a verification
    slow, wrong = [], []

    def score_one(case):
        start = time.perf_counter()
        (score,) = reward([case["completion"]], [case["gold"]])
        return score, time.perf_counter() - start

    try:
        with ThreadPoolExecutor(max_workers=1) as executor:
            for case in CASES:
                score, seconds = executor.submit(score_one, case).result()
                if score != case["expected"]:
                    wrong.append(case["id"])
                if seconds >= 1.0:
                    slow.append((case["id"], round(seconds, 3)))
    finally:
        reward.close()
    assert not wrong, wrong
    assert not slow, slow
    # Hostile answers are refused by the verifier's guards, not rescued by the timeout.
    assert reward.stats["timeouts"] == 0


def test_string_and_conversational_completions_score_the_same(reward):
    texts = [r"so \boxed{\frac{1}{2}}", "The answer is 0.4.", "#### 12", r"$\boxed{(1,2)}$"]
    golds = ["0.5", r"\frac{2}{5}", "12", "(2,1)"]
    as_messages = [[{"role": "assistant", "content": text}] for text in texts]
    as_parts = [[{"role": "assistant", "content": [{"type": "text", "text": text}]}] for text in texts]
    assert reward(texts, golds) == [1.0, 1.0, 1.0, 0.0]
    assert reward(as_messages, golds) == [1.0, 1.0, 1.0, 0.0]
    assert reward(as_parts, golds) == [1.0, 1.0, 1.0, 0.0]


# ---------------------------------------------------------------------------------------------------- extraction
@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        (r"first \boxed{12}, no wait: \boxed{14}.", "flexible", "14"),
        (r"\boxed{\frac{1}{2}} and \boxed{\{1, 2\}}", "flexible", r"\{1, 2\}"),
        (r"\boxed{3} then cut off \boxed{\frac{1", "flexible", None),
        ("<think>maybe \\boxed{3}</think> The answer is 4.", "flexible", "4"),
        ("<think>so \\boxed{3}</think>", "flexible", "3"),
        ("<think>so \\boxed{3}</think>", "strict", None),
        ("Final Answer: The final answer is $19/13$. I hope it is correct.", "flexible", "19/13"),
        ("The answer is 19/13.", "strict", "19/13"),
        ("Answer:\n\n$x = 5$", "strict", "x = 5"),
        ("so 3 + 4 = 7\n#### 7", "strict", "7"),
        ("#### 6\nOn reflection the answer is 8", "strict", "8"),
        ("we get $x=2$ and finally $x=3$", "flexible", "x=3"),
        ("we get $x=2$ and finally $x=3$", "strict", None),
        ("the total is 1,250 apples", "flexible", "1,250"),
        (r"the answer is \boxed{5}", "boxed", "5"),
        ("the answer is 5", "boxed", None),
        ("nothing to see", "flexible", None),
    ],
)
def test_extract_final_answer(text, mode, expected):
    assert extract_final_answer(text, mode) == expected


@pytest.mark.parametrize(
    ("solution", "expected"),
    [
        ("He pays 3 * 4 = 12 dollars.\n#### 12", "12"),
        (r"So the area is $\boxed{\frac{\sqrt{3}}{4}}$.", r"\frac{\sqrt{3}}{4}"),
        (r"$\frac{1}{2}$", r"\frac{1}{2}"),
        (r"\(2\sqrt{3}\)", r"2\sqrt{3}"),
        ("(2,-3)", "(2,-3)"),
        ("  ", None),
    ],
)
def test_extract_gold_answer(solution, expected):
    assert extract_gold_answer(solution) == expected


def test_extraction_is_linear_on_huge_hostile_completions():
    hostile = [r"\boxed{" * 100_000, "{" * 100_000 + r"\boxed{1}" + "}" * 50_000, "7 " * 100_000 + r"\boxed{7}"]
    for text in hostile:
        start = time.perf_counter()
        extract_final_answer(text)
        assert time.perf_counter() - start < 0.5


# ---------------------------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.125", (1, 8)),
        (r"-\frac{3}{4}", (-3, 4)),
        (r"\frac{-3}{4}", (-3, 4)),
        ("2 2/3", (8, 3)),
        (r"4\frac{2}{3}", (14, 3)),
        (r"0.1\overline{6}", (1, 6)),
        (r"1.5\times10^{3}", (1500, 1)),
        ("10^{-2}", (1, 100)),
        ("12 apples", (12, 1)),
        (r"\frac{1}{0}", None),
        ("1" * 500, None),  # beyond MAX_NUMBER_DIGITS: left to the guarded symbolic path
    ],
)
def test_parse_number_is_exact(text, value):
    from fractions import Fraction

    assert parse_number(text) == (None if value is None else Fraction(*value))


def test_fast_path_decides_plain_numbers_and_defers_the_rest():
    assert quick_verdict("0.5", r"\frac{1}{2}") is True
    assert quick_verdict("12", "13") is False
    assert quick_verdict(r"\frac{1}{3}", "0.333333") is False
    assert quick_verdict("2", r"\sqrt{4}") is None  # needs sympy: sent to a worker


# ---------------------------------------------------------------------------------------------------- time bounds
class HangingReward(AccuracyReward):
    verify_function = "support.reward_targets:hang_on_sqrt"


class CrashingReward(AccuracyReward):
    verify_function = "support.reward_targets:crash_on_sqrt"


# The first pair is decided in-process (identical answers); the other two need the worker: one hangs.
HANG_BATCH = ([r"\boxed{x+1}", r"\boxed{\sqrt{49}}", r"\boxed{y}"], ["x+1", "7", "z"])


def _run_hanging_batch(reward):
    start = time.perf_counter()
    scores = reward(*HANG_BATCH)
    return scores, time.perf_counter() - start


@pytest.fixture
def hanging_reward():
    reward = HangingReward(timeout=0.5, workers=1)
    reward([r"\boxed{x}"], ["x"])  # worker start-up outside the timing
    yield reward
    reward.close()


def test_a_hanging_verification_scores_zero_within_its_timeout_and_is_logged(hanging_reward, caplog):
    with caplog.at_level(logging.WARNING, logger="trl_reasoning.rewards.accuracy"):
        scores, seconds = _run_hanging_batch(hanging_reward)
    assert scores == [1.0, 0.0, 0.0]
    assert seconds < 0.5 + KILL_SLACK_S
    assert hanging_reward.stats["timeouts"] == 1
    assert "timed out" in caplog.text and "sqrt{49}" in caplog.text


def test_the_timeout_holds_in_a_worker_thread_and_in_asyncio(hanging_reward):
    with ThreadPoolExecutor(max_workers=1) as executor:
        scores, seconds = executor.submit(_run_hanging_batch, hanging_reward).result()
    assert scores == [1.0, 0.0, 0.0] and seconds < 0.5 + KILL_SLACK_S

    async def direct():
        return _run_hanging_batch(hanging_reward)

    async def via_to_thread():  # how TRL's async GRPO calls reward functions
        return await asyncio.to_thread(_run_hanging_batch, hanging_reward)

    for coroutine in (direct, via_to_thread):
        scores, seconds = asyncio.run(coroutine())
        assert scores == [1.0, 0.0, 0.0] and seconds < 0.5 + KILL_SLACK_S
    assert hanging_reward.stats["timeouts"] == 3


def test_the_timeout_holds_inside_a_subprocess(tmp_path):
    script = textwrap.dedent(
        """
        import sys, time
        sys.path[:0] = sys.argv[1:]  # this file's folder and tests/ (support.reward_targets, run by the worker)
        from test_reward_accuracy import HangingReward
        reward = HangingReward(timeout=0.5, workers=1)
        reward([r"\\boxed{x}"], ["x"])
        start = time.perf_counter()
        print(reward([r"\\boxed{\\sqrt{49}}", r"\\boxed{x}"], ["7", "x"]), round(time.perf_counter() - start, 2))
        reward.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent), str(Path(__file__).parents[1])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    scores, seconds = done.stdout.split("]")
    assert scores + "]" == "[0.0, 1.0]"
    assert float(seconds) < 0.5 + KILL_SLACK_S


def test_a_crashing_verification_scores_zero_and_the_rest_still_score():
    reward = CrashingReward(timeout=5.0, workers=1)
    try:
        completions = [r"\boxed{\sqrt{49}}", r"\boxed{x}", r"\boxed{y}", r"\boxed{2x}"]
        assert reward(completions, ["7", "x", "x", "2x+0"]) == [0.0, 1.0, 0.0, 0.0]
        assert reward.stats["errors"] == 1
        # The pool replaced the dead worker: the next pair is answered (a False verdict, not another error).
        assert reward([r"\boxed{2y}"], ["y"]) == [0.0]
        assert reward.stats["errors"] == 1 and reward.pool.stats["restarts"] >= 1
    finally:
        reward.close()


def test_a_pool_failure_mid_run_costs_the_batch_not_the_run(monkeypatch):
    reward = AccuracyReward(workers=1)
    try:
        assert reward([r"\boxed{\sqrt{4}}"], ["2"]) == [1.0]

        def broken_map(*args, **kwargs):
            raise RuntimeError("cannot start a worker")

        monkeypatch.setattr(reward.pool, "map", broken_map)
        assert reward([r"\boxed{\sqrt{9}}", r"\boxed{3}"], ["3", "3"]) == [0.0, 1.0]
        assert reward.stats["errors"] == 1
        assert reward([r"\boxed{\sqrt{9}}"], ["3"]) == [1.0]  # a fresh pool next time
    finally:
        reward.close()


def test_a_pool_that_never_worked_fails_loudly(monkeypatch):
    reward = AccuracyReward(workers=1)

    def broken_map(*args, **kwargs):
        raise RuntimeError("cannot start a worker")

    monkeypatch.setattr(reward.pool, "map", broken_map)
    with pytest.raises(RuntimeError, match="cannot start a worker"):
        reward([r"\boxed{\sqrt{9}}"], ["3"])
    reward.close()


def test_the_in_process_path_never_raises_on_random_fragments():
    import random

    pieces = [
        r"\boxed{",
        "{",
        "}",
        r"\{",
        r"\}",
        "(",
        ")",
        "[",
        "]",
        ",",
        "=",
        "1",
        "23",
        ".",
        "/",
        r"\frac",
        r"\sqrt",
    ]
    pieces += ["^", "-", r"\pm", r"\text{", " cm", "%", "$", r"\cup", r"\infty", "!", r"\begin{pmatrix}", "&", r"\\"]
    pieces += ["A", " and ", r"\overline{", "</think>", "The answer is ", "#### ", "9" * 600, "\x00", r"\left("]
    rng = random.Random(0)
    for _ in range(3000):
        gold = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        gold_answer, answer = extract_gold_answer(gold), extract_final_answer(text)
        if gold_answer and answer:
            quick_verdict(gold_answer, answer)  # must not raise


def test_concurrent_calls_from_two_threads(reward):
    completions = [rf"\boxed{{\sqrt{{{n * n}}}}}" for n in range(1, 13)]
    golds = [str(n) for n in range(1, 13)]
    results = {}

    def run(key):
        results[key] = reward(completions, golds)

    threads = [threading.Thread(target=run, args=(key,)) for key in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {0: [1.0] * 12, 1: [1.0] * 12}


# ---------------------------------------------------------------------------------------------------- the callable
def test_factory_makes_a_named_picklable_reward():
    reward = get_accuracy_reward(timeout=0.75, workers=1, extraction="strict")
    assert reward.__name__ == "accuracy_reward"
    try:
        assert reward(["The answer is 0.5", r"$\frac{1}{2}$"], ["1/2", "1/2"]) == [1.0, 0.0]
        clone = pickle.loads(pickle.dumps(reward))
        assert (clone.timeout, clone.workers, clone.extraction) == (0.75, 1, "strict")
        assert clone(["The answer is 0.5", r"$\frac{1}{2}$"], ["1/2", "1/2"]) == [1.0, 0.0]
        clone.close()
    finally:
        reward.close()
    assert pickle.loads(pickle.dumps(accuracy_reward)) is accuracy_reward
    assert accuracy_reward.__name__ == "accuracy_reward"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"timeout": 0}, "timeout"), ({"workers": 0}, "workers"), ({"extraction": "last"}, "extraction")],
)
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        get_accuracy_reward(**kwargs)


def test_missing_or_mismatched_solutions_name_the_column():
    with pytest.raises(ValueError, match="solution"):
        AccuracyReward(workers=1)(["1"], None)
    with pytest.raises(ValueError, match="pair up"):
        AccuracyReward(workers=1)(["1", "2"], ["1"])


def test_trl_logging_hooks_receive_answers_and_counts(hanging_reward):
    columns, metrics = {}, {}
    scores = hanging_reward(
        [r"\boxed{x+1}", r"\boxed{\sqrt{49}}", "no answer here", "42"],
        ["x+1", "7", "5", ""],
        log_extra=lambda column, values: columns.setdefault(column, values),
        log_metric=lambda name, value: metrics.setdefault(name, value),
    )
    assert scores == [1.0, 0.0, 0.0, None]
    assert columns == {"gold_answer": ["x+1", "7", "5", ""], "extracted_answer": ["x+1", r"\sqrt{49}", "", ""]}
    assert metrics == {
        "accuracy_reward/no_answer": 1 / 3,
        "accuracy_reward/timeouts": 1.0,
        "accuracy_reward/errors": 0.0,
    }


def test_repeated_pairs_are_served_from_the_cache(reward):
    before = reward.pool.stats["items"]
    completions, golds = [r"\boxed{2\sqrt{3}}"] * 2, [r"\sqrt{12}"] * 2
    assert reward(completions, golds) == [1.0, 1.0]
    cached = reward.stats["cached"]
    assert reward(completions, golds) == [1.0, 1.0]
    assert reward.stats["cached"] == cached + 2
    assert reward.pool.stats["items"] <= before + 2
    assert extract_gold_answer.cache_info().hits > 0

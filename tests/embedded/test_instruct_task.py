"""The instruct-model phrasing of the arithmetic task: prompts, gold answers worked out from the question text, and
scoring by accuracy_reward."""

import re

import pytest

from trl_reasoning.embedded.instruct_task import EXAMPLE, INSTRUCTION, instruct_dataset, instruct_prompt, word_problems
from trl_reasoning.rewards import accuracy_reward


def gold_from_question(question: str) -> int:
    """The answer read back from the text: the two numbers and the operation the template's words name."""
    a, b = (int(x) for x in re.findall(r"\d+", question))
    if " more" in question:
        return a + b
    if "away" in question or "took" in question:
        return a - b
    if "each" in question:
        return a * b
    raise AssertionError(f"unknown template: {question}")


def test_word_problem_answers_match_their_text():
    problems = word_problems(200, seed=3, max_operand=12)
    assert len({p["question"] for p in problems}) > 150
    for problem in problems:
        assert int(problem["answer"]) == gold_from_question(problem["question"]) >= 0
        assert all(1 <= int(x) <= 12 for x in re.findall(r"\d+", problem["question"]))
    assert {"+", "-", "*"} == {
        "+" if " more" in p["question"] else "-" if ("away" in p["question"] or "took" in p["question"]) else "*"
        for p in problems
    }


def test_dataset_rows_ask_and_score():
    data = instruct_dataset(40, seed=5, word_share=0.25, max_operand=9)
    assert data.column_names == ["prompt", "solution", "kind"]
    assert sorted(data["kind"]).count("word") == 10
    for row in data:
        example_question, example_answer, message = row["prompt"]
        assert example_question == {"role": "user", "content": f"{EXAMPLE[0]}\n{INSTRUCTION}"}
        assert example_answer == {"role": "assistant", "content": EXAMPLE[1]}
        assert message["role"] == "user" and message["content"].endswith("\n" + INSTRUCTION)
        question = message["content"].split("\n")[0]
        if row["kind"] == "arithmetic":
            a, op, b = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", question).groups()
            assert int(row["solution"]) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        else:
            assert int(row["solution"]) == gold_from_question(question)
    solutions = data["solution"][:3]
    completions = [
        [{"role": "assistant", "content": f"Adding up gives \\boxed{{{solutions[0]}}}."}],
        [{"role": "assistant", "content": f"So the answer is {int(solutions[1]) + 1}."}],
        [{"role": "assistant", "content": f"{solutions[2]}"}],
    ]
    assert accuracy_reward(completions, solutions) == [1.0, 0.0, 1.0]


def test_the_worked_example_is_right_and_optional():
    assert EXAMPLE[1].endswith("\\boxed{7}.") and "4" in EXAMPLE[0] and "3 more" in EXAMPLE[0]
    assert accuracy_reward([[{"role": "assistant", "content": EXAMPLE[1]}]], ["7"]) == [1.0]
    assert instruct_prompt("What is 1 + 1?", example=False) == [
        {"role": "user", "content": f"What is 1 + 1?\n{INSTRUCTION}"}
    ]


def test_seeds_differ_and_repeat():
    assert instruct_dataset(8, seed=1)["prompt"] == instruct_dataset(8, seed=1)["prompt"]
    assert instruct_dataset(8, seed=1)["prompt"] != instruct_dataset(8, seed=2)["prompt"]


@pytest.mark.parametrize("bad", [{"word_share": 1.5}, {"operations": "/"}, {"max_operand": 0}])
def test_bad_settings_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        instruct_dataset(4, **bad)

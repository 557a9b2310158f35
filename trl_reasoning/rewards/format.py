r"""Format rewards: is the completion shaped the way the prompt asked?

Both rewards have TRL's reward signature, ``f(completions, **kwargs) -> list[float]``, and accept plain-text completions
(``"<think>...</think> answer"``) as well as conversational ones (``[{"role": "assistant", "content": ...}]``).

- ``think_format_reward``: 1.0 when the completion is exactly one ``<think>R</think>`` block with non-empty reasoning
  ``R`` followed by a non-empty answer, else 0.0 (the format R1-style recipes reward, DeepSeek-AI 2025,
  arXiv 2501.12948). ``get_think_format_reward(think_in_prompt=True)`` is the variant for chat templates that already
  end the prompt with ``<think>``: the completion must then hold one ``</think>`` and no ``<think>``.
- ``boxed_format_reward``: 1.0 when the final answer (the text after the last ``</think>``, or the whole completion
  when there is none) ends its last ``\boxed{...}`` (or ``\fbox{...}``) and that box is not empty, else 0.0: the
  box the accuracy reward reads.

Both run in time linear in the completion length (no backtracking regular expressions): a 200,000-character
adversarial completion is scored in well under 0.1 s.
"""

import re

from .extraction import completion_text, last_boxed


THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_NOT_CONTENT = re.compile(r"\\(?:boxed|fbox)|[{}\s]")


def answer_part(text: str) -> str:
    """The text after the last ``</think>``, or the whole text when there is none."""
    end = text.rfind(THINK_CLOSE)
    return text if end < 0 else text[end + len(THINK_CLOSE) :]


def _has_think_format(text: str, think_in_prompt: bool) -> bool:
    if text.count(THINK_CLOSE) != 1:
        return False
    if think_in_prompt:
        if THINK_OPEN in text:
            return False
        reasoning, _, answer = text.partition(THINK_CLOSE)
    else:
        body = text.lstrip()
        if not body.startswith(THINK_OPEN) or text.count(THINK_OPEN) != 1:
            return False
        reasoning, _, answer = body[len(THINK_OPEN) :].partition(THINK_CLOSE)
    return bool(reasoning.strip()) and bool(answer.strip())


def has_boxed_answer(text: str) -> bool:
    r"""Whether the last ``\boxed{...}`` of ``text`` is closed and holds more than whitespace, braces and boxes.

    The same box the accuracy reward reads (:func:`~trl_reasoning.rewards.extraction.last_boxed`): a completion whose
    last box is never closed was cut off and has no boxed answer, even if an earlier box was complete.
    """
    content = last_boxed(text)
    return content is not None and bool(_NOT_CONTENT.sub("", content))


def _think_scores(completions, think_in_prompt: bool) -> list[float]:
    return [1.0 if _has_think_format(completion_text(c), think_in_prompt) else 0.0 for c in completions]


def think_format_reward(completions, **kwargs) -> list[float]:
    """1.0 per completion that is one ``<think>`` block with non-empty reasoning followed by a non-empty answer."""
    return _think_scores(completions, think_in_prompt=False)


class ThinkFormatReward:
    """``think_format_reward`` as a picklable callable; ``think_in_prompt`` for templates that open ``<think>``."""

    def __init__(self, think_in_prompt: bool = False):
        if not isinstance(think_in_prompt, bool):
            raise TypeError(f"think_in_prompt must be True or False, got {think_in_prompt!r}")
        self.think_in_prompt = think_in_prompt
        self.__name__ = "think_format_reward"

    def __call__(self, completions, **kwargs) -> list[float]:
        return _think_scores(completions, self.think_in_prompt)

    def __repr__(self) -> str:
        return f"ThinkFormatReward(think_in_prompt={self.think_in_prompt})"


def get_think_format_reward(think_in_prompt: bool = False) -> ThinkFormatReward:
    """The think-format reward; with ``think_in_prompt=True`` the completion must close ``</think>`` but not open it.

    Use ``think_in_prompt=True`` for chat templates whose generation prompt already ends with ``<think>`` (Qwen3,
    DeepSeek-R1 distills): the completion is then ``reasoning</think>answer``.
    """
    return ThinkFormatReward(think_in_prompt)


def boxed_format_reward(completions, **kwargs) -> list[float]:
    r"""1.0 per completion whose final answer (after the last ``</think>``) has a complete, non-empty ``\boxed{}``."""
    return [1.0 if has_boxed_answer(answer_part(completion_text(c))) else 0.0 for c in completions]

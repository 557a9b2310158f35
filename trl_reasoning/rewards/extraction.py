r"""Find the final answer in a model's completion, and the gold answer in a dataset's solution field.

Everything here is linear-time string scanning (no backtracking regexes, one pass for brace matching), so it runs in
the trainer's process with no timeout even on 200k-character or hostile completions.

Completion answers, in order of precedence (``extraction`` modes):

=========== ============================================================================================
mode        what counts as the final answer
=========== ============================================================================================
``boxed``   the last ``\boxed{...}`` / ``\fbox{...}``
``strict``  the last boxed answer, else the last "final answer: X" / "the answer is X" / "answer: X",
            else the last ``#### X``
``flexible`` ``strict``, else the last math span (``$...$``, ``\(...\)``, ``\[...\]``), else the last number
=========== ============================================================================================

If the completion has a ``</think>``, the text after the last one is searched first (the reasoning is not the
answer); ``flexible`` falls back to the whole text when that part has no answer. A completion whose last
``\boxed{`` is never closed was cut off mid-answer: it has no final answer in any mode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache


EXTRACTION_MODES = ("flexible", "strict", "boxed")

MAX_ANSWER_CHARS = 2000
"""Longer extracted answers are refused (scored 0): no dataset answer is this long, hostile inputs often are."""

_BOXED_RE = re.compile(r"(?<!\\)\\(?:boxed|fbox)\s*\{")
_THINK_END = "</think>"
_ANSWER_PHRASE_RE = re.compile(
    r"(?:final\s+answer\s*(?:is\s*)?[:：]?|answer\s+is\s*[:：]?|\banswer\s*[:：])\s*", re.IGNORECASE
)
_GSM8K_RE = re.compile(r"####\s*")
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?\s*%?")
_TRAILING_JUNK = " \t\r\n.,;:!*`'\"\u3002"


def completion_text(completion) -> str:
    """The text of one completion: a string as is, or the content of the last message of a conversation.

    A conversational completion is a list of messages (``{"role": ..., "content": ...}``); with tool calls it can
    hold several, and the last assistant message is the one that carries the answer. Content given as a list of
    parts (``[{"type": "text", "text": ...}]``) is joined. ``None`` content counts as empty.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        message = completion
    elif isinstance(completion, Sequence):
        if not completion:
            return ""
        assistant = [m for m in completion if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"]
        message = assistant[-1] if assistant else completion[-1]
        if not isinstance(message, Mapping):
            raise TypeError(
                f"a conversational completion is a list of message dicts, got an item of type {type(message).__name__}"
            )
    else:
        raise TypeError(f"a completion is a string or a list of messages, got {type(completion).__name__}")
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def matching_braces(text: str) -> dict[int, int]:
    """Map the index of every closed ``{`` to the index of its ``}`` (escaped ``\\{``, ``\\}`` are not groups)."""
    closes: dict[int, int] = {}
    stack: list[int] = []
    for match in re.finditer(r"\\[{}]|[{}]", text):
        token = match.group()
        if len(token) == 2:
            continue
        if token == "{":
            stack.append(match.start())
        elif stack:
            closes[stack.pop()] = match.start()
    return closes


def _final_box(text: str) -> tuple[bool, str | None]:
    r"""``(found, content)`` of the last ``\boxed{`` (one scan): content None when it is never closed."""
    last = _last_match(_BOXED_RE, text)
    if last is None:
        return False, None
    open_at = last.end() - 1
    close_at = matching_braces(text[open_at:]).get(0)
    return True, None if close_at is None else text[open_at + 1 : open_at + close_at]


def last_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}``; None if there is none or the last one is never closed."""
    return _final_box(text)[1]


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - only the last match is wanted
        pass
    return last


def _after_last(pattern: re.Pattern[str], text: str) -> str | None:
    last = _last_match(pattern, text)
    return None if last is None else text[last.end() :]


_DOLLAR_RE = re.compile(r"(?<!\\)\$\$?")


def _first_math_span(line: str) -> str | None:
    r"""The content of the first ``$...$``, ``$$...$$``, ``\(...\)`` or ``\[...\]`` span (``\$`` is a dollar sign)."""
    dollar = _DOLLAR_RE.search(line)
    starts = [(line.find(opener), opener, closer) for opener, closer in ((r"\(", r"\)"), (r"\[", r"\]"))]
    if dollar is not None:
        starts.append((dollar.start(), dollar.group(), dollar.group()))
    starts = [item for item in starts if item[0] != -1]
    if not starts:
        return None
    start, opener, closer = min(starts)
    if opener.startswith("$"):
        end_match = next((m for m in _DOLLAR_RE.finditer(line, start + len(opener)) if m.group() == closer), None)
        end = -1 if end_match is None else end_match.start()
    else:
        end = line.find(closer, start + len(opener))
    return None if end == -1 else line[start + len(opener) : end]


def _answer_after_phrase(tail: str) -> str:
    line = tail.split("\n", 1)[0].strip()
    if not line:
        # "Final answer:\n\n$42$": the answer sits on the next non-empty line.
        rest = [chunk.strip() for chunk in tail.split("\n") if chunk.strip()]
        line = rest[0] if rest else ""
    math = _first_math_span(line)
    if math is not None:
        return math
    # "The answer is 5 because ...": stop at the end of the sentence (a period followed by a space).
    sentence_end = re.search(r"\.(?:\s|$)", line)
    if sentence_end is not None:
        line = line[: sentence_end.start()]
    return line


def last_math_span(text: str) -> str | None:
    r"""The content of the last ``$...$``, ``$$...$$``, ``\(...\)`` or ``\[...\]`` span."""
    best_end, best = -1, None
    for opener, closer in ((r"\(", r"\)"), (r"\[", r"\]")):
        end = text.rfind(closer)
        if end > best_end:
            start = text.rfind(opener, 0, end)
            if start != -1:
                best_end, best = end, text[start + len(opener) : end]
    dollars = [m.start() for m in re.finditer(r"(?<!\\)\$", text)]
    if len(dollars) >= 2:
        # Pair dollars from the start ("$$" counts as one delimiter), keep the last complete pair.
        spans, opened, i = [], None, 0
        while i < len(dollars):
            pos = dollars[i]
            width = 2 if i + 1 < len(dollars) and dollars[i + 1] == pos + 1 else 1
            if opened is None:
                opened = (pos, width)
            else:
                spans.append((opened[0] + opened[1], pos))
                opened = None
            i += width
        if spans and spans[-1][1] > best_end:
            best = text[spans[-1][0] : spans[-1][1]]
    return best


def _last_number(text: str) -> str | None:
    last = _last_match(_NUMBER_RE, text)
    return None if last is None else last.group()


def _clean(answer: str | None) -> str | None:
    if answer is None:
        return None
    answer = answer.strip().rstrip(_TRAILING_JUNK).lstrip(" \t\r\n*:")
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    return answer or None


def _extract(text: str, mode: str) -> str | None:
    boxed, answer = _final_box(text)
    if boxed or mode == "boxed":  # a last box that is never closed: cut off mid-answer, no answer
        return answer
    # "the answer is X" or "#### X", whichever comes last.
    phrase, hashes = _last_match(_ANSWER_PHRASE_RE, text), _last_match(_GSM8K_RE, text)
    answer = None
    if phrase is not None and (hashes is None or phrase.start() > hashes.start()):
        answer = _answer_after_phrase(text[phrase.end() :])
    elif hashes is not None:
        answer = text[hashes.end() :].split("\n", 1)[0]
    if (answer is not None and answer.strip(_TRAILING_JUNK)) or mode == "strict":
        return answer
    answer = last_math_span(text)
    if answer is not None:
        return answer
    return _last_number(text)


def extract_final_answer(text: str, mode: str = "flexible") -> str | None:
    """The model's final answer in ``text`` (see the module docstring for the modes), or None."""
    if mode not in EXTRACTION_MODES:
        raise ValueError(f"extraction must be one of {', '.join(map(repr, EXTRACTION_MODES))}, got {mode!r}")
    think_end = text.rfind(_THINK_END)
    if think_end != -1:
        answer = _clean(_extract(text[think_end + len(_THINK_END) :], mode))
        if answer is not None or mode != "flexible":
            return answer
    return _clean(_extract(text, mode))


@lru_cache(maxsize=16384)
def extract_gold_answer(solution: str) -> str | None:
    r"""The gold answer in a dataset's solution field; None when it is empty.

    Accepts what datasets store: a bare answer (``\frac{1}{2}``, ``42``), a ``$...$``-wrapped one, a GSM8K
    rationale ending in ``#### 42``, or a MATH-style solution whose last ``\boxed{}`` holds the answer.
    """
    solution = solution.strip()
    if not solution:
        return None
    answer = last_boxed(solution)
    if answer is None and "####" in solution:
        answer = _after_last(_GSM8K_RE, solution).split("\n", 1)[0]
    if answer is None:
        stripped = solution.strip()
        for opener, closer in (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]")):
            if stripped.startswith(opener) and stripped.endswith(closer) and len(stripped) > 2 * len(opener):
                inner = stripped[len(opener) : -len(closer)]
                if opener != "$" or "$" not in inner:
                    stripped = inner
                break
        answer = stripped
    return _clean(answer)

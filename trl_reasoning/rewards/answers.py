r"""Math answers as structures, and when two of them are the same answer.

An answer string is normalised (spacing commands, ``\left``/``\right``, ``\dfrac``, currency, degree signs,
thousands separators, trailing units) and parsed into a small structure:

* :class:`Choice` (``A``, ``(B)``, ``\text{(C)}``), :class:`Text` (``\text{Evelyn}``, ``12:00``),
* :class:`Scalar` (one expression; ``50\%`` keeps a percent flag), :class:`Equation` (``x = 3``, ``2x+4y=3``),
* :class:`Ordered` (tuples and intervals: the brackets are part of the answer, ``(1,2) != [1,2] != (2,1)``),
* :class:`Unordered` (sets ``\{1,2\}``, bare solution lists ``2, -2`` and ``\pm 2``, unions of intervals),
* :class:`Matrix` (``pmatrix``, ``bmatrix``, ...), or :class:`Invalid` (too long, too deep, NUL bytes).

:func:`answers_equal` compares two structures; the only question it delegates is "are these two scalar
expressions (or two equations) equal", to a :class:`ScalarComparator`. :class:`ExactNumbers` answers it for plain
numbers with exact rational arithmetic, in microseconds, and gives up (:class:`NeedsSympy`) on anything else;
:mod:`trl_reasoning.rewards.symbolic` answers it with sympy inside a killable worker process.

Everything here is bounded string work (inputs are capped at
:data:`~trl_reasoning.rewards.extraction.MAX_ANSWER_CHARS`), safe to run in the trainer's process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Protocol

from .extraction import MAX_ANSWER_CHARS, matching_braces


MAX_NESTING = 64
MAX_ITEMS = 100
MAX_NUMBER_DIGITS = 400
MAX_POWER_OF_TEN = 1000


# ---------------------------------------------------------------------------------------------------- structures
@dataclass(frozen=True)
class Invalid:
    reason: str


@dataclass(frozen=True)
class Choice:
    letter: str


@dataclass(frozen=True)
class Text:
    key: str


@dataclass(frozen=True)
class Scalar:
    latex: str
    percent: bool = False


@dataclass(frozen=True)
class Equation:
    lhs: str
    rhs: str

    @property
    def variable(self) -> str | None:
        """The assigned variable(s) when the left side is one (``x``, ``y_1``, ``\\theta``) or a tuple of them
        (``(x, y)``), else None."""
        lhs = self.lhs.replace(" ", "")
        return lhs if _VARIABLE_RE.fullmatch(lhs) or _VARIABLE_TUPLE_RE.fullmatch(lhs) else None


@dataclass(frozen=True)
class Ordered:
    brackets: str
    items: tuple


@dataclass(frozen=True)
class Unordered:
    kind: str  # "set" (\{...\}, bare lists, \pm) or "union" (of intervals)
    items: tuple


@dataclass(frozen=True)
class Matrix:
    rows: tuple


Answer = Invalid | Choice | Text | Scalar | Equation | Ordered | Unordered | Matrix


# ---------------------------------------------------------------------------------------------------- normalising
_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u00d7": r"\times ", "\u00f7": r"\div ", "\u221a": r"\sqrt", "\u03c0": r"\pi ",
    "\u221e": r"\infty ", "\u2264": r"\le ", "\u2265": r"\ge ", "\u00b0": "", "\u2009": " ", "\u00a0": " ",
    "\u202f": " ", "\u00b7": r"\cdot ",
}  # fmt: skip
_DROP_COMMANDS_RE = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg|displaystyle|textstyle|scriptstyle)(?![a-zA-Z])"
)
_SPACING_RE = re.compile(r"(?<!\\)\\[,;:! ]|\\q?quad(?![a-zA-Z])|~")
_DEGREES_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree(?![a-zA-Z])|\s*degrees?\b")
_CURRENCY_RE = re.compile(r"\\\$|\$|\\textdollar|\\euro|\\pounds|[€£¥]|\bUSD\b|\bRs\.?(?=\s*\d)")
_TEXT_COMMAND_RE = re.compile(r"\\(?:text|textbf|textit|textrm|texttt|mathrm|mathbf|mathit|mbox|operatorname)\s*\{")
_CONNECTIVE_RE = re.compile(r"\s*\b(?:and|or)\b\s*")
_VARIABLE_RE = re.compile(r"[a-zA-Z](?:_\{?\w+\}?)?|\\(?:alpha|beta|gamma|theta|lambda|mu|phi|omega|sigma|tau)")
_VARIABLE_TUPLE_RE = re.compile(
    rf"\((?:{_VARIABLE_RE.pattern}),(?:{_VARIABLE_RE.pattern})(?:,(?:{_VARIABLE_RE.pattern}))*\)"
)
_UNIT_WORDS_RE = re.compile(r"\s+[a-zA-Z][a-zA-Z.]+(?:\s+[a-zA-Z][a-zA-Z.]*)*(?:\^\{?\d\}?)?$")
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "inf", "infinity", "frac"}


def _unwrap_text_commands(s: str) -> str:
    r"""``\text{...}`` and friends: unwrap when they are the whole answer, drop when they trail content (units)."""
    while True:
        match = _TEXT_COMMAND_RE.search(s)
        if match is None:
            return s
        open_at = match.end() - 1
        close_at = matching_braces(s[open_at:]).get(0)
        if close_at is None:
            return s[: match.start()] + s[match.end() :]
        inner = s[open_at + 1 : open_at + close_at]
        before, after = s[: match.start()], s[open_at + close_at + 1 :]
        is_trailing_unit = before.strip() and not after.strip(" .^{}0123456789") and re.search(r"[\d}]\s*$", before)
        if is_trailing_unit and not _CONNECTIVE_RE.fullmatch(inner):
            s = before.rstrip()
        else:
            s = before + inner + after


def normalize(answer: str) -> str:
    """Strip formatting that never changes an answer's value; keep everything else as written."""
    for char, replacement in _UNICODE.items():
        if char in answer:
            answer = answer.replace(char, replacement)
    answer = _DROP_COMMANDS_RE.sub("", answer)
    answer = _SPACING_RE.sub(" ", answer)
    answer = answer.replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac").replace(r"\dbinom", r"\binom")
    answer = answer.replace("{,}", ",").replace(r"\%", "%").replace(r"\varnothing", r"\emptyset")
    answer = re.sub(r"^\\\{\s*\\\}$", r"\\emptyset", answer)
    answer = _DEGREES_RE.sub("", answer)
    answer = _CURRENCY_RE.sub("", answer)
    answer = _unwrap_text_commands(answer)
    answer = re.sub(r"\s*\bpercent\b", "%", answer)
    answer = re.sub(r"\s+", " ", answer).strip().rstrip(".").strip()
    # "x \in [1, 2]": the set is the answer.
    answer = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", answer)
    return answer


# ---------------------------------------------------------------------------------------------------- parsing
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = set(")]}")


def _split_top_level(s: str, separator: str) -> list[str]:
    """Split on ``separator`` outside every bracket (intervals like ``[1,2)`` count as bracketed)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        char = s[i]
        if char == "\\" and s.startswith(("\\{", "\\}"), i):
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth -= 1
        elif depth == 0 and s.startswith(separator, i):
            parts.append(s[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    parts.append(s[start:])
    return [part.strip() for part in parts]


def _nesting_depth(s: str) -> int:
    depth = deepest = 0
    for char in s:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _enclosing_pair(s: str) -> tuple[str, str, str] | None:
    r"""``(open, inner, close)`` when one bracket pair (any of ``( [ \{``) encloses the whole string."""
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = s[2:-2]
        return ("\\{", inner, "\\}") if _balanced(inner) else None
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        inner = s[1:-1]
        return (s[0], inner, s[-1]) if _balanced(inner) else None
    return None


def _balanced(s: str) -> bool:
    depth = 0
    for char in s:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?")
_CHOICE_RE = re.compile(r"\(?([A-Za-z])\)?(?=$|[\s.:)])")
_TIME_RE = re.compile(r"\d{1,2}:\d{2}(?:\s*[ap]\.?m\.?)?", re.IGNORECASE)
_WORDS_RE = re.compile(r"[A-Za-z][A-Za-z\s'\-]*")
_MATRIX_RE = re.compile(r"\\begin\{([pbBvV]?matrix|array)\}(?:\{[^}]*\})?(.*)\\end\{\1\}", re.DOTALL)
_PM_RE = re.compile(r"\\(?:pm|mp)(?![a-zA-Z])")


def text_key(s: str) -> str:
    """Case-, space- and punctuation-insensitive key of a text answer."""
    key = re.sub(r"[^\w:]+", " ", s.casefold()).strip()
    return re.sub(r"^(?:the|a|an) ", "", key)


def _is_text(s: str) -> bool:
    if _TIME_RE.fullmatch(s):
        return True
    if not _WORDS_RE.fullmatch(s):
        return False
    words = s.replace("-", " ").split()
    return any(len(word) > 1 and word.lower() not in _MATH_WORDS for word in words)


def parse_answer(answer: str) -> Answer:
    """Parse an extracted answer (gold or predicted) into an :data:`Answer` structure (cached)."""
    if len(answer) > MAX_ANSWER_CHARS:
        return Invalid(f"longer than {MAX_ANSWER_CHARS} characters")
    return _parse_answer(answer)


@lru_cache(maxsize=65536)
def _parse_answer(answer: str) -> Answer:
    if "\x00" in answer:
        return Invalid("contains a NUL byte")
    s = normalize(answer)
    if not s:
        return Invalid("empty")
    if _nesting_depth(s) > MAX_NESTING:
        return Invalid(f"nested deeper than {MAX_NESTING}")
    choice = _CHOICE_RE.fullmatch(s)
    if choice is not None and (s[0] == "(" or s.isupper()):
        return Choice(choice.group(1).upper())
    if _is_text(s):
        return Text(text_key(s))
    return _parse_math(s)


def _parse_math(s: str) -> Answer:
    if not s:
        return Invalid("empty item")
    matrix = _MATRIX_RE.fullmatch(s)
    if matrix is not None:
        body = matrix.group(2).strip().rstrip("\\").strip()
        rows = tuple(tuple(_parse_scalar(cell) for cell in row.split("&")) for row in body.split("\\\\"))
        return Matrix(rows)
    union = _split_top_level(s, "\\cup")
    if len(union) > 1:
        return Unordered("union", tuple(_parse_math(part) for part in union))
    if _THOUSANDS_RE.fullmatch(s):
        return _parse_scalar(s.replace(",", ""))
    s = _CONNECTIVE_RE.sub(", ", s) if re.search(r"\b(?:and|or)\b", s) else s
    items = _split_top_level(s, ",")
    if len(items) > MAX_ITEMS:
        return Invalid(f"more than {MAX_ITEMS} items")
    if len(items) > 1:
        return _solutions([_parse_math(item) for item in items if item])
    pair = _enclosing_pair(s)
    if pair is not None:
        opener, inner, closer = pair
        inner_items = [item for item in _split_top_level(inner, ",") if item]
        if opener == "\\{":
            return Unordered("set", tuple(_parse_math(item) for item in inner_items))
        if len(inner_items) > 1:
            return Ordered(opener + closer, tuple(_parse_math(item) for item in inner_items))
        if opener == "(" and inner_items:
            return _parse_math(inner_items[0])
    return _parse_scalar(s)


def _solutions(items: list[Answer]) -> Answer:
    """A bare list: an unordered list of solutions (``\\pm`` items contribute both of theirs)."""
    flat: list[Answer] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Unordered) and item.kind == "set" else [item])
    return Unordered("set", tuple(flat))


def _parse_scalar(s: str) -> Answer:
    s = s.strip()
    if not s:
        return Invalid("empty item")
    equals = _split_top_level(s, "=")
    if len(equals) > 1 and all(equals) and not re.search(r"[<>!]$|\\(?:le|ge|ne|neq|leq|geq)$", equals[0]):
        lhs, rhs = equals[0], equals[-1]
        return Equation(lhs, rhs)
    if len(_PM_RE.findall(s)) == 1:
        plus, minus = _PM_RE.sub("+", s), _PM_RE.sub("-", s)
        return Unordered("set", (_parse_scalar(plus.lstrip("+")), _parse_scalar(minus)))
    percent = s.endswith("%")
    return Scalar(s[:-1].strip() if percent else s, percent)


# ---------------------------------------------------------------------------------------------------- comparing
class NeedsSympy(Exception):
    """Raised by :class:`ExactNumbers` for a comparison that needs symbolic mathematics."""


class ScalarComparator(Protocol):
    def scalars_equal(self, gold: Scalar, pred: Scalar) -> bool: ...

    def relations_equal(self, gold: Equation, pred: Equation) -> bool: ...


_NUM = r"\d+(?:\.\d*)?|\.\d+"
_PLAIN_RE = re.compile(rf"[+-]?(?:{_NUM})")
_FRAC_RE = re.compile(rf"([+-]?)\\frac\{{\s*([+-]?(?:{_NUM}))\s*\}}\{{\s*([+-]?(?:{_NUM}))\s*\}}")
_SLASH_RE = re.compile(rf"([+-]?(?:{_NUM}))\s*/\s*([+-]?(?:{_NUM}))")
_MIXED_RE = re.compile(r"([+-]?)(\d+)\s*(?:\\frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}|\s(\d+)\s*/\s*(\d+))")
_SCIENTIFIC_RE = re.compile(rf"([+-]?(?:{_NUM}))\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{{?\s*([+-]?\d{{1,4}})\s*\}}?")
_POWER_OF_TEN_RE = re.compile(r"([+-]?)10\s*\^\s*\{?\s*([+-]?\d{1,4})\s*\}?")
_E_NOTATION_RE = re.compile(rf"([+-]?(?:{_NUM}))[eE]([+-]?\d{{1,4}})")
_INFINITY_RE = re.compile(r"([+-]?)\s*(?:\\infty|\\infinity|infinity|inf)")


_REPEATING_RE = re.compile(r"([+-]?)(\d*)\.(\d*)\\overline\{(\d{1,50})\}")


def _repeating_decimal(sign: str, whole: str, fixed: str, repeat: str) -> Fraction | None:
    r"""``0.1\overline{6}`` = 1/6: the fixed digits plus the repeating block over (10^k - 1), shifted."""
    if len(whole) + len(fixed) > MAX_NUMBER_DIGITS:
        return None
    value = Fraction(int(whole or "0")) + Fraction(int(fixed or "0"), 10 ** len(fixed))
    value += Fraction(int(repeat), (10 ** len(repeat) - 1) * 10 ** len(fixed))
    return -value if sign == "-" else value


def _decimal(text: str) -> Fraction | None:
    if sum(char.isdigit() for char in text) > MAX_NUMBER_DIGITS:
        return None
    return Fraction(text.replace(" ", ""))


def parse_number(s: str) -> Fraction | float | None:
    """The exact value of a plain number (integer, decimal, fraction, mixed number, power of ten), ``±inf``
    for infinity, or None when ``s`` is anything else."""
    s = s.strip()
    for _ in range(2):
        value = _parse_number_once(s if _MIXED_RE.fullmatch(s) else s.replace(" ", ""))
        if value is not None:
            return value
        stripped = _UNIT_WORDS_RE.sub("", s)  # "5 apples", "12 cm^2"
        if stripped == s:
            return None
        s = stripped
    return None


def _parse_number_once(s: str) -> Fraction | float | None:
    if _PLAIN_RE.fullmatch(s):
        return _decimal(s)
    if (m := _REPEATING_RE.fullmatch(s)) is not None:
        return _repeating_decimal(m.group(1), m.group(2), m.group(3), m.group(4))
    if (m := _FRAC_RE.fullmatch(s)) is not None:
        num, den = _decimal(m.group(2)), _decimal(m.group(3))
        if num is None or den is None or den == 0:
            return None
        return -num / den if m.group(1) == "-" else num / den
    if (m := _SLASH_RE.fullmatch(s)) is not None:
        num, den = _decimal(m.group(1)), _decimal(m.group(2))
        return None if num is None or den is None or den == 0 else num / den
    if (m := _MIXED_RE.fullmatch(s)) is not None:
        num, den = (m.group(3), m.group(4)) if m.group(3) is not None else (m.group(5), m.group(6))
        if max(len(m.group(2)), len(num), len(den)) > MAX_NUMBER_DIGITS or int(den) == 0:
            return None
        value = int(m.group(2)) + Fraction(int(num), int(den))
        return -value if m.group(1) == "-" else value
    for pattern in (_SCIENTIFIC_RE, _E_NOTATION_RE):
        if (m := pattern.fullmatch(s)) is not None:
            mantissa, exponent = _decimal(m.group(1)), int(m.group(2))
            if mantissa is None or abs(exponent) > MAX_POWER_OF_TEN:
                return None
            return mantissa * Fraction(10) ** exponent
    if (m := _POWER_OF_TEN_RE.fullmatch(s)) is not None:
        exponent = int(m.group(2))
        if abs(exponent) > MAX_POWER_OF_TEN:
            return None
        value = Fraction(10) ** exponent
        return -value if m.group(1) == "-" else value
    if (m := _INFINITY_RE.fullmatch(s)) is not None:
        return float("-inf") if m.group(1) == "-" else float("inf")
    return None


def numbers_equal(gold: Fraction | float, gold_percent: bool, pred: Fraction | float, pred_percent: bool) -> bool:
    r"""Exact equality; a percent on either side may be read as a percent or a plain number (``50\% = 50 = 0.5``)."""
    if gold == pred:
        return True
    if gold_percent and gold / 100 == pred:
        return True
    return pred_percent and pred / 100 == gold


class ExactNumbers:
    """Plain numbers compared exactly with rationals; anything else raises :class:`NeedsSympy`."""

    def scalars_equal(self, gold: Scalar, pred: Scalar) -> bool:
        gold_value, pred_value = parse_number(gold.latex), parse_number(pred.latex)
        if gold_value is None or pred_value is None:
            raise NeedsSympy
        return numbers_equal(gold_value, gold.percent, pred_value, pred.percent)

    def relations_equal(self, gold: Equation, pred: Equation) -> bool:
        raise NeedsSympy


def answers_equal(gold: Answer, pred: Answer, scalars: ScalarComparator, pred_text: str = "") -> bool:
    """Whether ``pred`` is the same answer as ``gold`` (the rules are in the module docstring)."""
    if isinstance(gold, Invalid) or isinstance(pred, Invalid):
        return False
    if isinstance(gold, Choice):
        letter = _CHOICE_RE.match(normalize(pred_text)) if pred_text else None
        if letter is not None:
            return letter.group(1).upper() == gold.letter
        return isinstance(pred, Choice) and pred.letter == gold.letter
    if isinstance(gold, Text) or isinstance(pred, Text):
        return isinstance(gold, Text) and isinstance(pred, Text) and gold.key == pred.key
    if isinstance(gold, Equation) or isinstance(pred, Equation):
        return _equations_equal(gold, pred, scalars)
    if isinstance(gold, Scalar) and isinstance(pred, Scalar):
        return scalars.scalars_equal(gold, pred)
    if isinstance(gold, Ordered) and isinstance(pred, Ordered):
        return (
            gold.brackets == pred.brackets
            and len(gold.items) == len(pred.items)
            and all(answers_equal(g, p, scalars) for g, p in zip(gold.items, pred.items, strict=True))
        )
    if isinstance(gold, Unordered) or isinstance(pred, Unordered):
        gold_items = _as_collection(gold, pred)
        pred_items = _as_collection(pred, gold)
        if gold_items is None or pred_items is None:
            return False
        return _same_set(gold_items, pred_items, scalars)
    if isinstance(gold, Matrix) and isinstance(pred, Matrix):
        return [len(row) for row in gold.rows] == [len(row) for row in pred.rows] and all(
            answers_equal(g, p, scalars)
            for g_row, p_row in zip(gold.rows, pred.rows, strict=True)
            for g, p in zip(g_row, p_row, strict=True)
        )
    return False


def _as_collection(answer: Answer, other: Answer) -> tuple | None:
    """Items of an unordered answer; a single item counts as a one-element solution list (never as a union)."""
    if isinstance(answer, Unordered):
        other_kind = other.kind if isinstance(other, Unordered) else "set"
        return answer.items if answer.kind == other_kind or answer.kind == "union" and len(answer.items) == 1 else None
    if isinstance(other, Unordered) and other.kind == "union" and isinstance(answer, Ordered):
        return (answer,)
    return None if isinstance(answer, Ordered | Matrix) else (answer,)


def _same_set(gold_items: tuple, pred_items: tuple, scalars: ScalarComparator) -> bool:
    """Set equality: every item of each side equals some item of the other (order and repeats do not matter)."""
    return all(any(answers_equal(g, p, scalars) for p in pred_items) for g in gold_items) and all(
        any(answers_equal(g, p, scalars) for g in gold_items) for p in pred_items
    )


def _equations_equal(gold: Answer, pred: Answer, scalars: ScalarComparator) -> bool:
    """``x = 3`` equals ``3`` (either side); two equations are equal as assignments or as relations."""
    if isinstance(gold, Equation) and isinstance(pred, Equation):
        if gold.variable is not None and gold.variable == pred.variable:
            if answers_equal(_parse_rhs(gold.rhs), _parse_rhs(pred.rhs), scalars):
                return True
        return scalars.relations_equal(gold, pred)
    equation, value = (gold, pred) if isinstance(gold, Equation) else (pred, gold)
    if equation.variable is None:
        return False
    rhs = _parse_rhs(equation.rhs)
    return answers_equal(rhs, value, scalars) if equation is gold else answers_equal(value, rhs, scalars)


@lru_cache(maxsize=4096)
def _parse_rhs(rhs: str) -> Answer:
    return _parse_math(rhs)


def quick_verdict(gold: str, pred: str) -> bool | None:
    """Decide in-process when no symbolic maths is needed (identical answers, plain numbers, letters, text);
    None when the pair needs :func:`trl_reasoning.rewards.symbolic.verify_answers`."""
    gold_answer, pred_answer = parse_answer(gold), parse_answer(pred)
    if isinstance(gold_answer, Invalid) or isinstance(pred_answer, Invalid):
        return False
    if gold_answer == pred_answer:  # the same structure: identical once normalised (also hostile answers)
        return True
    try:
        return answers_equal(gold_answer, pred_answer, ExactNumbers(), pred_text=pred)
    except NeedsSympy:
        return None

r"""Symbolic answer comparison with sympy, run inside a killable worker process (see :mod:`.pool`).

Scalars are converted with latex2sympy2_extended (the parser math-verify builds on) after our own repair of
malformed LaTeX (``\sqrt3``, ``\sqrt(2)``, ``\frac12``, ASCII ``sqrt(x)``), and compared:

* constants: numerically at a precision chosen from their magnitude (30 significant digits beyond the integer
  part), so ``2^{1000}`` and ``2^{1000}+1`` differ and ``\frac{1}{2^{99}}`` and ``\frac{1}{2^{98}}`` differ: there
  is no rounding and no "close to zero" chop (math-verify rounds to 6 decimals and chops tiny values);
* expressions with variables: at four random points (``x^2+2x+1`` equals ``(x+1)^2``), falling back to
  ``simplify(a - b) == 0`` when no point evaluates to a finite number;
* equations: ``lhs - rhs`` of both must be proportional with a non-zero constant factor.

Numbers beyond :data:`MAX_LOG2_MAGNITUDE` bits (exponent towers, ``1000000!``) are refused before sympy or mpmath
touch them, so hostile answers fail fast instead of only by the worker's timeout.
"""

from __future__ import annotations

import math
import random
import re
from fractions import Fraction
from functools import lru_cache

import sympy
from latex2sympy2_extended import latex2sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig
from latex2sympy2_extended.math_normalization import NormalizationConfig

from .answers import Equation, Scalar, answers_equal, parse_answer, parse_number


MAX_LOG2_MAGNITUDE = 1_000_000
MAX_FACTORIAL = 20_000
MAX_NODES = 2_000
RANDOM_POINTS = 4
SIGNIFICANT_DIGITS = 30

_NORMALIZATION = NormalizationConfig(
    basic_latex=True, units=False, malformed_operators=False, nits=False, boxed="none", equations=False
)
_CONVERSION = ConversionConfig(
    interpret_as_mixed_fractions=True,
    interpret_simple_eq_as_assignment=False,
    interpret_contains_as_eq=True,
    lowercase_symbols=True,
)


_IMAGINARY_SYMBOL = sympy.Symbol("i")


class TooBig(Exception):
    """A number too large to evaluate safely."""


def repair_latex(latex: str) -> str:
    r"""Repair the malformed LaTeX models write: ``\sqrt3``, ``\sqrt(2)``, ``\frac12``, ``sqrt(x)``, ``x**2``."""
    latex = re.sub(r"(?<![\\a-zA-Z])(sqrt|pi|sin|cos|tan|log|ln)(?![a-zA-Z])", r"\\\1", latex)
    latex = latex.replace("**", "^")
    latex = re.sub(r"\\sqrt\s*(\d+|[a-zA-Z])", r"\\sqrt{\1}", latex)
    while (match := re.search(r"\\sqrt\s*\(", latex)) is not None:
        open_at = match.end() - 1
        close_at = _matching_paren(latex, open_at)
        if close_at is None:
            break
        latex = latex[: match.start()] + r"\sqrt{" + latex[open_at + 1 : close_at] + "}" + latex[close_at + 1 :]
    latex = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", latex)
    latex = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", latex)
    latex = re.sub(r"(\\frac\{[^{}]*\})\s*(\d|[a-zA-Z])", r"\1{\2}", latex)
    return latex


def _matching_paren(text: str, open_at: int) -> int | None:
    depth = 0
    for index in range(open_at, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return None


@lru_cache(maxsize=16384)
def to_sympy(latex: str) -> sympy.Basic | None:
    """The sympy value of one scalar answer, or None when it cannot be parsed or is too big to handle."""
    number = parse_number(latex)
    if isinstance(number, Fraction):
        return sympy.Rational(number.numerator, number.denominator)
    if number is not None:
        return sympy.oo if number > 0 else -sympy.oo
    if not latex:
        return None
    try:
        expr = latex2sympy(repair_latex(latex), normalization_config=_NORMALIZATION, conversion_config=_CONVERSION)
    except Exception:
        return None
    if not isinstance(expr, sympy.Basic) or sympy.count_ops(expr, visual=False) > MAX_NODES:
        return None
    # In a final answer, i is the imaginary unit (3+4i).
    expr = expr.subs(_IMAGINARY_SYMBOL, sympy.I) if _IMAGINARY_SYMBOL in expr.free_symbols else expr
    try:
        _check_magnitude(expr)
    except TooBig:
        return None
    return expr


def _log2_magnitude(expr: sympy.Basic) -> float:
    """An upper estimate of log2|value| of a constant expression; raises :class:`TooBig` past the limit."""
    if expr.is_Integer or expr.is_Rational:
        return max(abs(expr.p).bit_length(), abs(expr.q).bit_length())
    if isinstance(expr, sympy.Pow) and not expr.free_symbols:
        base = _log2_magnitude(expr.base)
        exponent = _log2_magnitude(expr.exp)
        if exponent > 64:
            raise TooBig
        value = abs(float(expr.exp.evalf(15))) * max(base, 1.0)
        if value > MAX_LOG2_MAGNITUDE:
            raise TooBig
        return value
    if isinstance(expr, sympy.factorial) and not expr.free_symbols:
        argument = float(expr.args[0].evalf(15)) if _log2_magnitude(expr.args[0]) < 64 else math.inf
        if argument > MAX_FACTORIAL:
            raise TooBig
        return argument * math.log2(max(argument, 2.0))
    if not expr.args:
        return 2.0
    total = sum(_log2_magnitude(arg) for arg in expr.args) if isinstance(expr, sympy.Mul) else 0.0
    largest = max(_log2_magnitude(arg) for arg in expr.args)
    return max(total, largest) + 1.0


def _check_magnitude(expr: sympy.Basic) -> None:
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow | sympy.factorial) and not node.free_symbols:
            _log2_magnitude(node)


def _evaluate(expr: sympy.Basic, subs: dict | None = None, digits: int = SIGNIFICANT_DIGITS) -> sympy.Basic | None:
    """The value of ``expr`` to ``digits`` significant digits, or None when it is not a finite number."""
    try:
        value = expr.evalf(digits, subs=subs)
    except (TypeError, ValueError, ArithmeticError, RecursionError, AttributeError):
        return None
    if not value.is_number or value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return None
    return value


def _digits_needed(*values: sympy.Basic) -> int:
    """Significant digits that keep :data:`SIGNIFICANT_DIGITS` digits after the integer part of every value."""
    largest = max(abs(value) for value in values)
    integer_digits = int(sympy.floor(sympy.log(largest, 10))) + 1 if largest >= 1 else 0
    return min(SIGNIFICANT_DIGITS + integer_digits, 20_000)


def _numbers_close(a: sympy.Basic, b: sympy.Basic, digits: int) -> bool:
    """Equal up to the last few of ``digits`` significant digits."""
    scale = max(abs(a), abs(b))
    return bool(scale == 0 or abs(a - b) <= scale * sympy.Float(10, digits) ** (5 - digits))


def _values_equal(a: sympy.Expr, b: sympy.Expr, subs: dict | None = None) -> bool | None:
    """Compare at a precision chosen from the magnitudes; None when either side is not a finite number."""
    va, vb = _evaluate(a, subs), _evaluate(b, subs)
    if va is None or vb is None:
        return None
    digits = _digits_needed(va, vb)
    if digits > SIGNIFICANT_DIGITS:
        va, vb = _evaluate(a, subs, digits), _evaluate(b, subs, digits)
        if va is None or vb is None:
            return None
    return _numbers_close(va, vb, digits)


def exprs_equal(a: sympy.Basic, b: sympy.Basic) -> bool:
    """Whether two sympy values are mathematically equal (see the module docstring)."""
    if a == b:
        return True
    if not isinstance(a, sympy.Expr) or not isinstance(b, sympy.Expr):
        return False
    infinite = {sympy.oo, -sympy.oo, sympy.zoo, sympy.nan}
    if a in infinite or b in infinite:
        return False
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        return bool(_values_equal(a, b))
    rng = random.Random(0)
    checked = 0
    for _ in range(RANDOM_POINTS):
        point = {symbol: sympy.Rational(rng.randint(300, 2300), 1000) for symbol in symbols}
        verdict = _values_equal(a, b, point)
        if verdict is False:
            return False
        checked += verdict is True
    if checked:
        return True
    return sympy.simplify(a - b) == 0


class SympyScalars:
    """The :class:`~trl_reasoning.rewards.answers.ScalarComparator` used in worker processes."""

    def scalars_equal(self, gold: Scalar, pred: Scalar) -> bool:
        a, b = to_sympy(gold.latex), to_sympy(pred.latex)
        if a is None or b is None:
            return False
        candidates = [(a, b)]
        if gold.percent:
            candidates.append((a / 100, b))
        if pred.percent:
            candidates.append((a, b / 100))
        return any(exprs_equal(x, y) for x, y in candidates)

    def relations_equal(self, gold: Equation, pred: Equation) -> bool:
        sides = [to_sympy(side) for side in (gold.lhs, gold.rhs, pred.lhs, pred.rhs)]
        if any(not isinstance(side, sympy.Expr) for side in sides):
            return False
        first, second = sides[0] - sides[1], sides[2] - sides[3]
        symbols = sorted(first.free_symbols | second.free_symbols, key=str)
        if not symbols:
            return False
        rng = random.Random(1)
        ratios = []
        for _ in range(RANDOM_POINTS):
            point = {symbol: sympy.Rational(rng.randint(300, 2300), 1000) for symbol in symbols}
            v1, v2 = _evaluate(first, point), _evaluate(second, point)
            if v1 is None or v2 is None:
                continue
            if abs(v2) == 0 or abs(v1) == 0:
                if abs(v1) != abs(v2):
                    return False
                continue
            ratios.append(v1 / v2)
        return len(ratios) >= 2 and all(_numbers_close(ratio, ratios[0], SIGNIFICANT_DIGITS) for ratio in ratios)


def verify_answers(gold: str, pred: str) -> bool:
    """Whether the extracted answer ``pred`` equals the gold answer ``gold``; the worker-process entry point."""
    return answers_equal(parse_answer(gold), parse_answer(pred), SympyScalars(), pred_text=pred)

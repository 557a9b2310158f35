"""Realistic (gold, completion) pairs for benchmarking math-answer reward functions, with labels right by construction.

``generate_pairs(n, seed)`` returns ``n`` dicts ``{"gold", "completion", "expected", "category", "prediction",
"style"}``, deterministic given ``seed``. ``expected`` is 1.0 when the completion's final answer equals the gold
answer and 0.0 otherwise; half the pairs of every category are equal. ``prediction`` (the final answer as written
in the completion) and ``style`` (how the completion states it) are there for diagnosis only.

What it imitates:

* Golds are stored bare, the way math-RL datasets store them (``\\frac{3}{4}``, ``2\\sqrt{3}``, ``(-\\infty, 3]``, no
  ``$``), plus a few GSM8K ``answer`` fields (``#### 72``, some with the worked rationale before it).
* Completions are a few sentences of plausible reasoning (200-2,000 characters, log-uniform) with intermediate numbers
  and inline/display LaTeX, then the final answer (shares for seed 0, n = 2000): ``\\boxed{}`` in several phrasings
  (64%), "The answer is X." (10%), "Final answer: X" (6%), a first ``\\boxed{}`` guess then a corrected final
  ``\\boxed{}`` (8%), reasoning inside ``<think>...</think>`` with the boxed answer after it (8%; in 40% of those the
  thinking also ends with "So the answer should be X."), and GSM8K's "#### X" for plain numbers (4%; 35% of the
  gsm8k category). Answers that are not plain numbers, letters or words are written in ``$...$`` outside a box.
* Equal pairs write the answer in an equivalent form where one is realistic (60% of them when there is one; about
  half of all equal pairs end up differing from the gold as strings): ``\\frac{1}{2}``/``\\dfrac{1}{2}``/``1/2``/
  ``0.5``/``\\frac{2}{4}``, ``1,000``/``1{,}000``/``1\\,000``/``10^3``, ``4\\frac{2}{3}``, ``x = 3``, units
  (``10 \\text{ cm}``, ``90^\\circ``, ``\\$5``, ``5 \\text{ dollars}``), ``50\\%``/``50``/``0.5``, ``\\sqrt{12}`` for
  ``2\\sqrt{3}``, ``\\frac{1}{\\sqrt{3}}`` for ``\\frac{\\sqrt{3}}{3}``, factored/expanded polynomials, reordered
  terms, reordered set elements, ``\\pm 2`` for ``2, -2``, ``pmatrix``/``bmatrix``, ``(B)``/``\\text{(B)}``, letter
  case.
* Unequal pairs are near misses: off by one, sign flipped, reciprocal, rounded decimal of a non-terminating fraction,
  swapped tuple, tuple written as a set, open instead of closed endpoint, a missing or extra solution, a forgotten
  square root or pi, a transposed matrix, a different letter or word.

Labelling policy (what ``expected`` means): exact comparison, no rounding (``1/3`` vs ``0.333`` is unequal); tuples,
points and matrices ordered; sets and solution lists unordered; interval endpoints exact, open vs closed matters;
``p\\%`` equals both ``p`` and ``p/100``; units, currency and degree signs ignored; text compared case-insensitively;
the final answer counts (a corrected guess is scored on the correction). Every label is derived from exact values
(``fractions.Fraction``, surd and polynomial coefficients, sets), never from a verifier. This is the policy of
``tests/data/README.md``.

Category mix (share of pairs; counts are allocated exactly, then shuffled):

    integer 42%, fraction 10%, sqrt 6%, decimal 5%, negative 5%, expression 5%, text 5%, gsm8k 3%, percent 3%,
    money 3%, pi 3%, interval 3%, tuple 3%, set 3%, matrix 1%

    python benchmarks/reward_pairs.py [--n 2000] [--seed 0] [--show 10] [--category fraction]
"""

from __future__ import annotations

import argparse
import math
import random
import re
from collections import Counter
from fractions import Fraction
from typing import NamedTuple


CATEGORY_WEIGHTS: dict[str, float] = {
    "integer": 0.42,
    "fraction": 0.10,
    "sqrt": 0.06,
    "decimal": 0.05,
    "negative": 0.05,
    "expression": 0.05,
    "text": 0.05,
    "gsm8k": 0.03,
    "percent": 0.03,
    "money": 0.03,
    "pi": 0.03,
    "interval": 0.03,
    "tuple": 0.03,
    "set": 0.03,
    "matrix": 0.01,
}

P_SAME_FORM = 0.4  # an equal prediction is written exactly like the gold this often (when other forms exist)


class _Problem(NamedTuple):
    gold: str
    equal: list[str]  # equal[0] is the gold's own form; the rest are equivalent rewritings (may repeat, for weight)
    wrong: list[str]  # near misses (may repeat, for weight)


# ---------------------------------------------------------------------------------------------------------------------
# Number formatting helpers
# ---------------------------------------------------------------------------------------------------------------------


def _exact_decimal(value: Fraction) -> str | None:
    """The exact decimal expansion of ``value``, or None when it does not terminate."""
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return None
    places = max(twos, fives)
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}" if places else digits
    return ("-" if value < 0 else "") + text


def _rounded(value: Fraction, places: int) -> str:
    return f"{float(value):.{places}f}"


def _rational(value: Fraction, style: str = "frac", rng: random.Random | None = None) -> str:
    """LaTeX for a rational number; integers are written as integers whatever the style."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    p, q = abs(value.numerator), value.denominator
    if style == "dfrac":
        return f"{sign}\\dfrac{{{p}}}{{{q}}}"
    if style == "slash":
        return f"{sign}{p}/{q}"
    if style == "short" and p < 10 and q < 10:
        return f"{sign}\\frac{p}{q}"
    if style == "negnum" and sign:
        return f"\\frac{{-{p}}}{{{q}}}"
    if style == "unreduced":
        k = rng.choice([2, 3]) if rng else 2
        return f"{sign}\\frac{{{k * p}}}{{{k * q}}}"
    if style == "decimal":
        exact = _exact_decimal(value)
        if exact is not None:
            return exact
    if style == "mixed" and p > q and not sign:
        return f"{p // q}\\frac{{{p % q}}}{{{q}}}"
    return f"{sign}\\frac{{{p}}}{{{q}}}"


def _small_rational(rng: random.Random, lo: int = -9, hi: int = 9, p_frac: float = 0.15) -> Fraction:
    if rng.random() < p_frac:
        q = rng.choice([2, 3, 4, 5])
        p = rng.choice([p for p in range(-2 * q + 1, 2 * q) if p % q and math.gcd(p, q) == 1])
        return Fraction(p, q)
    return Fraction(rng.randint(lo, hi))


def _elem(value: Fraction, rng: random.Random, alt: bool) -> str:
    """An element of a tuple/set/matrix; with ``alt`` a fraction may be written as a decimal or with a slash."""
    if value.denominator == 1 or not alt:
        return _rational(value)
    styles = ["slash", "dfrac"] + (["decimal"] if _exact_decimal(value) else [])
    return _rational(value, rng.choice(styles))


def _digit_swap(value: int) -> int | None:
    digits = str(abs(value))
    if len(digits) < 2:
        return None
    i = len(digits) - 2
    swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
    if swapped == digits or swapped.startswith("0"):
        return None
    return int(swapped) * (1 if value >= 0 else -1)


def _int_near_misses(value: int, rng: random.Random, allow_negative: bool = True) -> list[int]:
    candidates = [value + 1, value - 1, value + 1, value - 1, value + 2, value - 2, value + 10, 2 * value, 10 * value]
    if value > 3 and value % 2 == 0:
        candidates.append(value // 2)
    swapped = _digit_swap(value)
    if swapped is not None:
        candidates += [swapped, swapped]
    if allow_negative and value != 0:
        candidates.append(-value)
    return [c for c in candidates if c != value and (allow_negative or c >= 0)]


def _pick(rng: random.Random, equal: list[str]) -> str:
    """An equal prediction: the gold's own form with probability P_SAME_FORM, else one of the rewritings."""
    if len(equal) == 1 or rng.random() < P_SAME_FORM:
        return equal[0]
    return rng.choice(equal[1:])


# ---------------------------------------------------------------------------------------------------------------------
# Categories: each returns the gold, equivalent rewritings and near misses
# ---------------------------------------------------------------------------------------------------------------------

_UNITS = ["cm", "meters", "inches", "feet", "minutes", "hours", "days", "miles", "square units", "students", "km"]


def _decorate_int(text: str, context: str, unit: str, rng: random.Random) -> list[str]:
    """Equivalent spellings of an integer answer in a context (units, angle, solve-for-x)."""
    if context == "unit":
        return [f"{text} \\text{{ {unit}}}", f"{text}\\text{{ {unit}}}", f"{text} \\ \\text{{{unit}}}"]
    if context == "angle":
        return [f"{text}^\\circ", f"{text}^{{\\circ}}", f"{text}^\\circ"]
    if context == "solve":
        var = rng.choice(["x", "x", "n", "k"])
        return [f"{var} = {text}", f"{var}={text}"]
    return []


def _random_int(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.03:
        return 10 ** rng.randint(3, 6)
    if r < 0.50:
        return rng.randint(0, 100)
    if r < 0.80:
        return rng.randint(101, 2000)
    if r < 0.95:
        return rng.choice([rng.randint(2001, 100_000), rng.randint(2, 100) * 1000])
    return rng.randint(100_001, 10_000_000)


def _integer(rng: random.Random) -> _Problem:
    value = _random_int(rng)
    context = rng.choices(["plain", "unit", "angle", "solve"], [0.55, 0.2, 0.07, 0.18])[0]
    if context == "angle":
        value = rng.randint(1, 359)
    unit = rng.choice(_UNITS)
    gold = str(value)
    equal = [gold] + _decorate_int(gold, context, unit, rng)
    if value >= 1000:
        grouped = f"{value:,}"
        equal += [grouped, grouped, grouped, grouped.replace(",", "{,}"), grouped.replace(",", "{,}")]
        if value >= 10_000:
            equal.append(grouped.replace(",", "\\,"))  # thin-space grouping, as in typeset solutions
    if value >= 1000 and str(value).strip("0") == "1":
        equal.append(f"10^{{{len(str(value)) - 1}}}")
    if rng.random() < 0.05:
        equal.append(f"{value}.0")
    wrong = []
    for miss in _int_near_misses(value, rng):
        forms = [str(miss)] + _decorate_int(str(miss), context, unit, rng)
        if abs(miss) >= 1000:
            forms.append(f"{miss:,}")
        wrong.append(rng.choice(forms))
    return _Problem(gold, equal, wrong)


_GSM8K_THINGS = ["apples", "dollars", "cookies", "pages", "eggs", "marbles", "miles"]


def _gsm8k_rationale(value: int, thing: str, rng: random.Random) -> str:
    a = rng.randint(2, 9)
    b = rng.randint(1, max(1, value // a))
    first = a * b
    rest = value - first
    name = rng.choice(["Natalia", "Janet", "Weng", "Betty", "James", "Albert", "Julie"])
    op = "+" if rest >= 0 else "-"
    return (
        f"{name} gets {a} * {b} = <<{a}*{b}={first}>>{first} {thing} in the first week.\n"
        f"In total {name} has {first} {op} {abs(rest)} = <<{first}{op}{abs(rest)}={value}>>{value} {thing}.\n"
        f"#### {value}"
    )


def _gsm8k(rng: random.Random) -> _Problem:
    value = rng.choice([rng.randint(2, 200), rng.randint(2, 200), rng.randint(201, 5000)])
    thing = rng.choice(_GSM8K_THINGS)
    gold = _gsm8k_rationale(value, thing, rng) if rng.random() < 1 / 3 else f"#### {value}"
    equal = [str(value), f"\\${value}" if thing == "dollars" else str(value), f"{value} \\text{{ {thing}}}"]
    if value >= 1000:
        equal += [f"{value:,}", f"{value:,}"]
    wrong = [str(miss) for miss in _int_near_misses(value, rng, allow_negative=False)]
    return _Problem(gold, equal, wrong)


def _fraction(rng: random.Random) -> _Problem:
    q = rng.choice([2, 3, 3, 4, 4, 5, 6, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 20, 25, 27, 32, 36, 49, 64])
    hi = 3 * q if rng.random() < 0.3 else q
    p = rng.choice([p for p in range(1, hi) if p % q and math.gcd(p, q) == 1] or [1])
    value = Fraction(p, q)
    gold_style = rng.choices(["frac", "dfrac", "slash"], [0.72, 0.1, 0.18])[0]
    gold = _rational(value, gold_style)
    equal = [gold]
    for style in ["frac", "dfrac", "slash", "short", "unreduced", "decimal", "decimal", "mixed"]:
        text = _rational(value, style, rng)
        if text != gold:
            equal.append(text)
    misses = [1 / value, Fraction(p + 1, q), Fraction(p, q + 1), -value]
    if p > 1:
        misses.append(Fraction(p - 1, q))
    if q > 2:
        misses.append(Fraction(p, q - 1))
    wrong = [_rational(m, rng.choice([gold_style, gold_style, "frac", "slash"])) for m in misses if m != value]
    if _exact_decimal(value) is None:
        wrong += [_rounded(value, rng.choice([2, 3])), _rounded(value, 2)]
    return _Problem(gold, equal, wrong)


def _decimal(rng: random.Random) -> _Problem:
    places = rng.choices([1, 2, 3], [0.45, 0.45, 0.1])[0]
    scale = 10**places
    magnitude = rng.choices([10, 100, 1000], [0.5, 0.35, 0.15])[0]
    numerator = rng.randint(1, magnitude * scale)
    while numerator % 10 == 0:
        numerator += 1
    value = Fraction(numerator, scale)
    gold = _exact_decimal(value)
    unit = rng.choice(_UNITS)
    equal = [gold, f"{gold}0", f"{gold} \\text{{ {unit}}}"]
    if value.denominator <= 20 and value.numerator <= 200:
        equal += [_rational(value, "frac"), _rational(value, "slash")]
    if value < 1:
        equal.append(gold[1:])
    last = Fraction(1, scale)
    misses = [value + last, value - last, value * 10, value / 10, Fraction(math.floor(value)), value + 1]
    if places > 1:
        misses.append(Fraction(round(value * scale / 10), scale // 10))
    wrong = [_exact_decimal(m) for m in misses if m != value and m > 0]
    return _Problem(gold, equal, wrong)


def _negative(rng: random.Random) -> _Problem:
    kind = rng.choices(["int", "frac", "decimal"], [0.6, 0.25, 0.15])[0]
    if kind == "int":
        value = Fraction(-rng.randint(1, 500))
        gold = _rational(value)
        equal = [gold, f"x = {gold}", f"x = {gold}", f"x={gold}"] + ([f"{gold}.0"] if rng.random() < 0.1 else [])
        misses = [-value, value - 1, value + 1, -value, -value, value * 2]
    elif kind == "frac":
        q = rng.choice([2, 3, 4, 5, 6, 7, 8, 9, 12])
        value = Fraction(-rng.choice([p for p in range(1, 3 * q) if p % q and math.gcd(p, q) == 1]), q)
        gold = _rational(value, rng.choice(["frac", "frac", "frac", "slash"]))
        equal = [gold]
        for style in ["frac", "dfrac", "slash", "negnum", "negnum", "decimal"]:
            text = _rational(value, style)
            if text != gold:
                equal.append(text)
        misses = [-value, -value, 1 / value, value - Fraction(1, value.denominator), value * 2]
    else:
        value = Fraction(-rng.randint(11, 999), 10)
        while value.denominator == 1:
            value -= Fraction(1, 10)
        gold = _exact_decimal(value)
        equal = [gold, f"{gold}0", f"x = {gold}", _rational(value, "frac")]
        misses = [-value, -value, value - Fraction(1, 10), value + Fraction(1, 10), value * 10]
    style = "frac" if kind == "frac" else "decimal"
    wrong = [_rational(m, style) for m in misses if m != value]
    return _Problem(gold, equal, wrong)


def _percent_values(value: Fraction, has_percent: bool) -> set[Fraction]:
    return {value, value / 100} if has_percent else {value}


def _percent(rng: random.Random) -> _Problem:
    kind = rng.choices(["int", "round", "half"], [0.6, 0.25, 0.15])[0]
    if kind == "int":
        value = Fraction(rng.randint(1, 99))
    elif kind == "round":
        value = Fraction(rng.choice([5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 80, 90, 120, 150, 200]))
    else:
        value = Fraction(rng.randint(0, 99) * 2 + 1, 2)
    text = _exact_decimal(value)
    gold_has_percent = rng.random() < 0.65
    gold = f"{text}\\%" if gold_has_percent else text
    equal = [gold, f"{text}\\%", f"{text}\\%", f"{text} \\%", text]
    if gold_has_percent:
        equal += [_exact_decimal(value / 100), _exact_decimal(value / 100)]
    gold_values = _percent_values(value, gold_has_percent)
    wrong = []
    for miss in [value + 1, value - 1, value + 5, value - 5, 100 - value, value * 2, value + 10]:
        if miss <= 0:
            continue
        has_percent = rng.random() < 0.75
        if _percent_values(miss, has_percent) & gold_values:
            continue
        wrong.append(f"{_exact_decimal(miss)}\\%" if has_percent else _exact_decimal(miss))
    return _Problem(gold, equal, wrong)


def _money_text(value: Fraction, cents: bool) -> str:
    if value.denominator == 1 and not cents:
        return str(value.numerator)
    return f"{float(value):.2f}"


def _money(rng: random.Random) -> _Problem:
    with_cents = rng.random() < 0.5
    value = Fraction(rng.randint(100, 50_000), 100) if with_cents else Fraction(rng.randint(1, 5000))
    if value.denominator == 1:
        with_cents = False
    text = _money_text(value, with_cents)
    gold = rng.choices([text, f"\\${text}"], [0.65, 0.35])[0]
    equal = [gold, f"\\${text}", f"\\${text}", text, f"{text} \\text{{ dollars}}"]
    if not with_cents:
        equal += [f"\\${text}.00", f"{text}.00"]
    elif value * 10 == int(value * 10):
        equal += [f"\\${_exact_decimal(value)}", _exact_decimal(value)]
    if value >= 1000:
        grouped = f"{int(value):,}" + text[len(str(int(value))) :]
        equal += [f"\\${grouped}", grouped]
    misses = [value + 1, value - 1, value * 10, value / 10, value + Fraction(1, 2)]
    if with_cents:
        misses += [value + Fraction(5, 100), value - Fraction(10, 100)]
    wrong = []
    for miss in misses:
        miss_text = _money_text(miss, with_cents or miss.denominator != 1)  # rounds a tenth of a cent value
        if Fraction(miss_text) <= 0 or Fraction(miss_text) == value:
            continue
        wrong.append(rng.choice([miss_text, f"\\${miss_text}"]))
    return _Problem(gold, equal, wrong)


_SQUAREFREE = [2, 2, 2, 3, 3, 3, 5, 5, 6, 7, 10, 11, 13, 14, 15, 17, 19, 21]


def _surd(n: int) -> tuple[int, int]:
    """sqrt(n) = s * sqrt(m) with m squarefree."""
    s, m, f = 1, n, 2
    while f * f <= m:
        while m % (f * f) == 0:
            m //= f * f
            s *= f
        f += 1
    return s, m


def _render_surd(c: Fraction, k: Fraction, m: int, variant: str, rng: random.Random) -> str:
    """LaTeX for c + k*sqrt(m) (k > 0, m squarefree) in one of several equivalent spellings."""
    if m == 1 or k == 0:
        return _rational(c + k * (1 if m == 1 else 0))
    root = f"\\sqrt{{{m}}}"
    if variant == "short" and m < 10:
        root = f"\\sqrt{m}"
    a, d = k.numerator, k.denominator
    coef = "" if a == 1 else str(a)
    if d == 1:
        if variant == "merged" and a > 1 and a * a * m <= 200:
            term = f"\\sqrt{{{a * a * m}}}"
        elif variant == "spaced" and a > 1:
            term = f"{a} {root}"
        else:
            term = f"{coef}{root}"
    elif variant == "coef_first":
        term = f"\\frac{{{a}}}{{{d}}}{root}"
    elif variant == "slash":
        term = f"{coef}{root}/{d}"
    elif variant == "unrationalized" and d % m == 0:
        num = Fraction(a * m, d)  # a*sqrt(m)/d = (a*m/d) / sqrt(m)
        term = f"\\frac{{{num.numerator}}}{{{'' if num.denominator == 1 else num.denominator}{root}}}"
    elif variant == "merged" and (k * k * m).numerator <= 30 and (k * k * m).denominator <= 16:
        inner = k * k * m
        term = f"\\sqrt{{\\frac{{{inner.numerator}}}{{{inner.denominator}}}}}"
    elif variant == "dfrac":
        term = f"\\dfrac{{{coef}{root}}}{{{d}}}"
    else:
        term = f"\\frac{{{coef}{root}}}{{{d}}}"
    if c == 0:
        return term
    if variant in ("reordered", "spaced") or (variant == "short" and rng.random() < 0.5):
        return f"{term} {'+' if c > 0 else '-'} {_rational(abs(c))}"
    return f"{_rational(c)} + {term}"


def _sqrt(rng: random.Random) -> _Problem:
    m = rng.choice(_SQUAREFREE)
    if rng.random() < 0.7:
        k = Fraction(rng.choice([1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9]))
    else:
        d = rng.choice([2, 3, 4, 6, m, m])
        k = Fraction(rng.choice([a for a in range(1, 2 * d) if math.gcd(a, d) == 1]), d)
    c = Fraction(rng.randint(1, 12) * rng.choice([1, 1, -1])) if rng.random() < 0.25 else Fraction(0)
    gold = _render_surd(c, k, m, "canonical", rng)
    equal = [gold]
    for variant in ["spaced", "short", "merged", "merged", "coef_first", "slash", "unrationalized", "unrationalized"]:
        variant = variant if c == 0 or rng.random() < 0.5 else "reordered"
        text = _render_surd(c, k, m, variant, rng)
        if text != gold:
            equal.append(text)
    target = (c, k, m)
    wrong_values: list[tuple[Fraction, Fraction, int]] = []
    if k.denominator == 1:
        wrong_values += [(c, k + 1, m), (c, k + 1, m)]
        if k > 1:
            wrong_values.append((c, k - 1, m))
        s, m2 = _surd(k.numerator * m)  # sqrt(k*m): e.g. sqrt(6) for 2*sqrt(3)
        wrong_values.append((c, Fraction(s), m2))
        if k * k * m <= 200:
            wrong_values.append((c + k * k * m, Fraction(0), 1))  # forgot the square root: 12 for 2*sqrt(3)
    else:
        wrong_values += [(c, Fraction(k.numerator + 1, k.denominator), m), (c, 1 / k, m), (c, k * 2, m)]
    other_m = rng.choice([x for x in _SQUAREFREE if x != m])
    wrong_values.append((c, k, other_m))
    if c != 0:
        wrong_values += [(c + 1, k, m), (-c, k, m)]
    wrong = []
    for wc, wk, wm in wrong_values:
        s, wm = _surd(wm)
        wk = wk * s
        if wm == 1:
            wc, wk = wc + wk, Fraction(0)
        if (wc, wk, wm) == target:
            continue
        wrong.append(_render_surd(wc, wk, wm, "canonical", rng))
    return _Problem(gold, equal, wrong)


def _pi_term(k: Fraction, variant: str) -> str:
    a, d = k.numerator, k.denominator
    coef = "" if a == 1 else str(a)
    if d == 1:
        return f"{a} \\pi" if variant == "spaced" and a != 1 else f"{coef}\\pi"
    if variant == "coef_first":
        return f"\\frac{{{a}}}{{{d}}}\\pi"
    if variant == "slash":
        return f"{coef}\\pi/{d}"
    if variant == "dfrac":
        return f"\\dfrac{{{coef}\\pi}}{{{d}}}"
    return f"\\frac{{{coef}\\pi}}{{{d}}}"


def _render_pi(c: int, k: Fraction, variant: str) -> str:
    if k == 0:
        return str(c)
    term = _pi_term(abs(k), variant)
    if c == 0:
        return ("-" if k < 0 else "") + term
    if variant == "reordered":
        return f"{'-' if k < 0 else ''}{term} + {c}"
    if variant == "factored" and k.denominator == 1 and math.gcd(c, k.numerator) > 1:
        g = math.gcd(c, k.numerator)
        inner = _render_pi(c // g, k / g, "canonical")
        return f"{g}({inner})"
    return f"{c} {'-' if k < 0 else '+'} {term}"


def _pi(rng: random.Random) -> _Problem:
    if rng.random() < 0.5:
        k = Fraction(rng.randint(1, 20))
    else:
        d = rng.choice([2, 3, 4, 6, 8, 12])
        k = Fraction(rng.choice([a for a in range(1, 3 * d) if math.gcd(a, d) == 1]), d)
    c = 0
    if rng.random() < 0.15:
        k = Fraction(rng.randint(1, 8))
        c = rng.randint(int(k) * 4, 40)  # e.g. 16 - 4*pi (a square minus a circle)
        k = -k
    gold_variant = "coef_first" if k.denominator > 1 and rng.random() < 0.3 else "canonical"
    gold = _render_pi(c, k, gold_variant)
    equal = [gold]
    for variant in ["canonical", "spaced", "coef_first", "slash", "dfrac", "reordered", "factored"]:
        text = _render_pi(c, k, variant)
        if text != gold and (c != 0 or variant not in ("reordered", "factored")):
            equal.append(text)
    misses = [(c, k + 1), (c, k * 2), (c, k / 2), (c, k + Fraction(1, k.denominator) if k.denominator > 1 else k - 1)]
    if c:
        misses += [(c + 1, k), (c, -k)]
    wrong = [_render_pi(wc, wk, "canonical") for wc, wk in misses if (wc, wk) != (c, k) and wk != 0]
    if c == 0:
        wrong.append(_rational(k) if k.denominator > 1 else str(k.numerator))  # forgot pi
        wrong.append(f"{float(k) * math.pi:.2f}")  # rounded decimal: unequal under the exact policy
    return _Problem(gold, equal, wrong)


def _poly_terms(coeffs: list[int], var: str) -> list[str]:
    """Signed terms, highest degree first, for integer coefficients (coeffs[i] multiplies var**i)."""
    terms = []
    for power in range(len(coeffs) - 1, -1, -1):
        a = coeffs[power]
        if a == 0:
            continue
        mag = abs(a)
        if power == 0:
            body = str(mag)
        else:
            body = ("" if mag == 1 else str(mag)) + (var if power == 1 else f"{var}^{power}")
        terms.append(("-" if a < 0 else "+") + body)
    return terms or ["+0"]


def _join_terms(terms: list[str], spaced: bool = True) -> str:
    out = terms[0][1:] if terms[0][0] == "+" else terms[0]
    for term in terms[1:]:
        out += f" {term[0]} {term[1:]}" if spaced else term
    return out


def _expand(lead: int, roots: list[int]) -> list[int]:
    coeffs = [lead]
    for r in roots:  # multiply by (x - r)
        coeffs = [
            (coeffs[i - 1] if i > 0 else 0) - r * (coeffs[i] if i < len(coeffs) else 0) for i in range(len(coeffs) + 1)
        ]
    return coeffs


def _factor(root: int, var: str) -> str:
    return var if root == 0 else f"({var} {'-' if root > 0 else '+'} {abs(root)})"


def _factored(lead: int, roots: list[int], var: str, swap: bool = False) -> str:
    prefix = "" if lead == 1 else ("-" if lead == -1 else str(lead))
    if len(roots) == 2 and roots[0] == roots[1]:
        return f"{prefix}{_factor(roots[0], var)}^2"
    ordered = sorted(roots, key=lambda r: r != 0)  # n(n - 1), not (n - 1)n
    ordered = list(reversed(ordered)) if swap and 0 not in roots else ordered
    return prefix + "".join(_factor(r, var) for r in ordered)


def _expression(rng: random.Random) -> _Problem:
    var = rng.choice(["x", "x", "x", "t", "n", "a"])
    if rng.random() < 0.6:
        lead = rng.choice([1, 1, 1, 1, 2, 3, -1])
        r1 = rng.randint(-9, 9)
        r2 = r1 if rng.random() < 0.25 else rng.choice([r for r in range(-9, 10) if r != r1 and r != 0])
        roots = [r1, r2]
        coeffs = _expand(lead, roots)
        terms = _poly_terms(coeffs, var)
        expanded = _join_terms(terms)
        factored = _factored(lead, roots, var)
        gold = expanded if rng.random() < 0.55 else factored
        equal = [gold]
        for text in [expanded, factored, _join_terms(terms, spaced=False), _join_terms(terms[::-1]), factored]:
            if text != gold:
                equal.append(text)
        swapped = _factored(lead, roots, var, swap=True)
        if swapped != factored:
            equal.append(swapped)
        miss_roots = [[-r1, r2], [r1, -r2], [r1 + 1, r2]]  # a root with the wrong sign, a root off by one
        misses: list[tuple[list[int] | None, list[int]]] = [(r, _expand(lead, r)) for r in miss_roots]
        bumped = list(coeffs)
        bumped[1] += rng.choice([1, -1])  # a wrong linear coefficient
        flipped = list(coeffs)
        flipped[0] = -flipped[0]  # a wrong sign on the constant
        misses += [(None, bumped), (None, flipped)]
        wrong = []
        for miss_root, miss in misses:
            if miss == coeffs:
                continue
            if miss_root is not None and gold == factored and rng.random() < 0.6:
                wrong.append(_factored(lead, miss_root, var))
            else:
                wrong.append(_join_terms(_poly_terms(miss, var)))
        return _Problem(gold, equal, wrong)
    slope = rng.choice([s for s in range(-9, 10) if s != 0])
    intercept = rng.choice([b for b in range(-12, 13) if b != 0])
    coeffs = [intercept, slope]
    terms = _poly_terms(coeffs, "x")
    line = rng.random() < 0.5
    lhs = "y = " if line else ""
    gold = lhs + _join_terms(terms)
    equal = [gold, lhs + _join_terms(terms[::-1]), lhs + _join_terms(terms, spaced=False)]
    if line:
        equal.append("y=" + _join_terms(terms, spaced=False))
    misses = [[intercept, -slope], [-intercept, slope], [intercept + 1, slope], [intercept, slope + 1]]
    wrong = [lhs + _join_terms(_poly_terms(m, "x")) for m in misses if m != coeffs]
    return _Problem(gold, equal, wrong)


_Piece = tuple[Fraction | None, bool, Fraction | None, bool]  # (lo, lo_closed, hi, hi_closed); None is infinite


def _render_interval(pieces: list[_Piece], variant: str, rng: random.Random) -> str:
    parts = []
    sep = "," if variant == "tight" else ", "
    for lo, lo_closed, hi, hi_closed in pieces:
        lo_text = "-\\infty" if lo is None else _elem(lo, rng, variant == "alt")
        hi_text = ("+\\infty" if variant == "plus" else "\\infty") if hi is None else _elem(hi, rng, variant == "alt")
        left, right = "[" if lo_closed else "(", "]" if hi_closed else ")"
        if variant == "left_right":
            left, right = f"\\left{left}", f"\\right{right}"
        parts.append(f"{left}{lo_text}{sep}{hi_text}{right}")
    return (" \\cup " if variant != "tight" else "\\cup").join(parts)


def _interval(rng: random.Random) -> _Problem:
    a, b = sorted(rng.sample(range(-10, 11), 2))
    a, b = Fraction(a), Fraction(b)
    if rng.random() < 0.15:
        a -= Fraction(1, 2)
    kind = rng.choices(["bounded", "left", "right", "union"], [0.4, 0.2, 0.2, 0.2])[0]
    closed = [rng.random() < 0.5, rng.random() < 0.5]
    if kind == "bounded":
        pieces = [(a, closed[0], b, closed[1])]
    elif kind == "left":
        pieces = [(None, False, b, closed[1])]
    elif kind == "right":
        pieces = [(a, closed[0], None, False)]
    else:
        pieces = [(None, False, a, closed[0]), (b, closed[1], None, False)]
    gold = _render_interval(pieces, "canonical", rng)
    equal = [gold]
    for variant in ["tight", "left_right", "alt", "plus", "swapped"]:
        if variant == "swapped":
            text = _render_interval(pieces[::-1], "canonical", rng) if len(pieces) == 2 else None
        elif variant == "alt" and all(p.denominator == 1 for p in (a, b)):
            text = None
        elif variant == "plus" and pieces[-1][2] is not None:
            text = None
        else:
            text = _render_interval(pieces, variant, rng)
        if text and text != gold:
            equal.append(text)
    misses: list[list[_Piece]] = []
    for i, (lo, lo_closed, hi, hi_closed) in enumerate(pieces):
        others = pieces[:i] + pieces[i + 1 :]
        if lo is not None:
            misses += [[*others[:i], (lo, not lo_closed, hi, hi_closed), *others[i:]]] * 2
            misses.append([*others[:i], (lo - 1, lo_closed, hi, hi_closed), *others[i:]])
        if hi is not None:
            misses += [[*others[:i], (lo, lo_closed, hi, not hi_closed), *others[i:]]] * 2
            misses.append([*others[:i], (lo, lo_closed, hi + 1, hi_closed), *others[i:]])
    if kind == "union":
        misses += [pieces[:1], pieces[1:]]
    if kind == "left":
        misses.append([(b, closed[1], None, False)])
    if kind == "right":
        misses.append([(None, False, a, closed[0])])
    wrong = [_render_interval(m, "canonical", rng) for m in misses if sorted(m, key=str) != sorted(pieces, key=str)]
    return _Problem(gold, equal, wrong)


def _render_tuple(values: list[Fraction], variant: str, rng: random.Random) -> str:
    sep = "," if variant == "tight" else ", "
    body = sep.join(_elem(v, rng, variant == "alt") for v in values)
    if variant == "left_right":
        return f"\\left({body}\\right)"
    if variant == "set":
        return f"\\{{{body}\\}}"
    return f"({body})"


def _tuple(rng: random.Random) -> _Problem:
    size = 2 if rng.random() < 0.8 else 3
    values = [_small_rational(rng) for _ in range(size)]
    while len(set(values)) < size:
        values = [_small_rational(rng) for _ in range(size)]
    gold = _render_tuple(values, "canonical", rng)
    equal = [gold, _render_tuple(values, "tight", rng), _render_tuple(values, "left_right", rng)]
    if any(v.denominator > 1 for v in values):
        equal.append(_render_tuple(values, "alt", rng))
    misses = [values[::-1], values[::-1]] if size == 2 else [[values[1], values[0], values[2]]]
    i = rng.randrange(size)
    if values[i] != 0:
        misses.append([*values[:i], -values[i], *values[i + 1 :]])
    j = rng.randrange(size)
    misses.append([*values[:j], values[j] + 1, *values[j + 1 :]])
    wrong = [_render_tuple(m, "canonical", rng) for m in misses if m != values]
    wrong.append(_render_tuple(values, "set", rng))  # a set is not an ordered pair
    return _Problem(gold, equal, wrong)


def _render_set(values: list[Fraction], variant: str, rng: random.Random) -> str:
    if variant == "pm":
        return f"\\pm {_rational(abs(values[0]))}"
    sep = "," if variant == "braces_tight" else ", "  # never "3,5" bare: it reads as a decimal comma
    body = sep.join(_elem(v, rng, variant == "alt") for v in values)
    if variant in ("braces", "braces_tight"):
        return f"\\{{{body}\\}}"
    if variant == "solve":
        return ", ".join(f"x = {_elem(v, rng, False)}" for v in values)
    return body


def _set(rng: random.Random) -> _Problem:
    if rng.random() < 0.15:
        r = Fraction(rng.randint(1, 9))
        values = [r, -r]
    else:
        size = 2 if rng.random() < 0.75 else 3
        values = [_small_rational(rng, p_frac=0.2) for _ in range(size)]
        while len(set(values)) < size:
            values = [_small_rational(rng, p_frac=0.2) for _ in range(size)]
    symmetric = len(values) == 2 and values[0] == -values[1]
    gold_variant = rng.choices(["canonical", "braces", "pm"], [0.6, 0.3, 0.1 if symmetric else 0])[0]
    gold = _render_set(values, gold_variant, rng)
    equal = [gold]
    reorders = [values[::-1], values[1:] + values[:1]]
    for variant, order in [
        ("canonical", reorders[0]),
        ("braces", values),
        ("braces", reorders[1]),
        ("braces_tight", reorders[0]),
        ("alt", reorders[1]),
        ("solve", values),
        ("canonical", values),
    ]:
        if variant == "alt" and all(v.denominator == 1 for v in values):
            continue
        text = _render_set(order, variant, rng)
        if text != gold:
            equal.append(text)
    if symmetric:
        equal += [_render_set(values, "pm", rng), _render_set(values, "pm", rng)]
    target = set(values)
    misses = [values[:1], values[1:], [*values[:-1], values[-1] + 1], [*values, Fraction(0)]]
    if values[0] != 0:
        misses.append([-values[0], *values[1:]])
    wrong = []
    for miss in misses:
        if set(miss) == target or len(set(miss)) < len(miss):
            continue
        variant = "braces" if gold_variant == "braces" else "canonical"
        wrong.append(_render_set(miss, variant, rng))
    if symmetric:
        wrong.append(_rational(abs(values[0])))  # \pm 2 vs 2
    return _Problem(gold, equal, wrong)


_WORD_PAIRS = [
    ("east", "west"),
    ("odd", "even"),
    ("yes", "no"),
    ("Tuesday", "Wednesday"),
    ("Evelyn", "Angela"),
    ("clockwise", "counterclockwise"),
    ("Monday", "Friday"),
    ("parabola", "hyperbola"),
    ("increasing", "decreasing"),
    ("Alice", "Bob"),
    ("red", "blue"),
    ("north", "south"),
]


def _letter(letter: str, variant: str) -> str:
    return {
        "bare": letter,
        "paren": f"({letter})",
        "text": f"\\text{{({letter})}}",
        "textbf": f"\\textbf{{({letter})}}",
        "textbare": f"\\text{{{letter}}}",
        "mathrm": f"\\mathrm{{({letter})}}",
    }[variant]


def _word(word: str, variant: str) -> str:
    return {
        "bare": word,
        "text": f"\\text{{{word}}}",
        "title": f"\\text{{{word.capitalize()}}}",
        "lower": word.lower(),
        "upper_bare": word.upper(),
        "textbf": f"\\textbf{{{word}}}",
    }[variant]


def _text(rng: random.Random) -> _Problem:
    if rng.random() < 0.55:
        letter = rng.choice("ABCDE")
        gold_variant = rng.choices(["bare", "paren", "text"], [0.6, 0.25, 0.15])[0]
        gold = _letter(letter, gold_variant)
        equal = [gold] + [_letter(letter, v) for v in ["bare", "paren", "paren", "text", "textbf", "textbare"]]
        equal = [equal[0]] + [t for t in equal[1:] if t != gold]
        others = [x for x in "ABCDE" if x != letter]
        wrong = [_letter(rng.choice(others), rng.choice(["bare", "paren", gold_variant])) for _ in range(4)]
        return _Problem(gold, equal, wrong)
    pair = rng.choice(_WORD_PAIRS)
    word, other = pair if rng.random() < 0.5 else pair[::-1]
    gold_variant = rng.choices(["bare", "text"], [0.6, 0.4])[0]
    gold = _word(word, gold_variant)
    equal = [gold] + [_word(word, v) for v in ["bare", "text", "title", "title", "lower", "textbf"]]
    equal = [equal[0]] + [t for t in equal[1:] if t != gold]
    wrong = [_word(other, v) for v in ["bare", "text", "title", gold_variant]]
    return _Problem(gold, equal, wrong)


def _render_matrix(rows: list[list[Fraction]], variant: str, rng: random.Random) -> str:
    env = "bmatrix" if variant == "bmatrix" else "pmatrix"
    tight = variant == "tight"
    cell_sep, row_sep = ("&", "\\\\") if tight else (" & ", " \\\\ ")
    body = row_sep.join(cell_sep.join(_elem(v, rng, variant == "alt") for v in row) for row in rows)
    return f"\\begin{{{env}}}{body}\\end{{{env}}}" if tight else f"\\begin{{{env}}} {body} \\end{{{env}}}"


def _matrix(rng: random.Random) -> _Problem:
    if rng.random() < 0.6:
        rows = [[_small_rational(rng, p_frac=0.1) for _ in range(2)] for _ in range(2)]
        while rows[0][1] == rows[1][0]:
            rows[1][0] += 1
    else:
        rows = [[_small_rational(rng, p_frac=0.1)] for _ in range(rng.choice([2, 3]))]
    gold = _render_matrix(rows, "canonical", rng)
    equal = [gold, _render_matrix(rows, "bmatrix", rng), _render_matrix(rows, "tight", rng)]
    if any(v.denominator > 1 for row in rows for v in row):
        equal.append(_render_matrix(rows, "alt", rng))
    transposed = [list(col) for col in zip(*rows, strict=True)]
    i, j = rng.randrange(len(rows)), rng.randrange(len(rows[0]))
    bumped = [list(row) for row in rows]
    bumped[i][j] += rng.choice([1, -1])
    flipped = [list(row) for row in rows]
    flipped[i][j] = -flipped[i][j]
    misses = [transposed, bumped, bumped, flipped, rows[::-1]]
    wrong = [_render_matrix(m, "canonical", rng) for m in misses if m != rows]
    return _Problem(gold, equal, wrong)


_CATEGORIES = {
    "integer": _integer,
    "gsm8k": _gsm8k,
    "fraction": _fraction,
    "decimal": _decimal,
    "negative": _negative,
    "percent": _percent,
    "money": _money,
    "sqrt": _sqrt,
    "pi": _pi,
    "expression": _expression,
    "interval": _interval,
    "tuple": _tuple,
    "set": _set,
    "text": _text,
    "matrix": _matrix,
}


# ---------------------------------------------------------------------------------------------------------------------
# Completions
# ---------------------------------------------------------------------------------------------------------------------

_SENTENCES = [
    "Let me set up the problem carefully before computing anything.",
    "First, let $a = {a}$ and $b = {b}$, so that $a + b = {s}$.",
    "Multiplying both sides by ${c}$ gives ${c}x = {cx}$.",
    "We compute $\\frac{{{ab}}}{{{b}}} = {a}$.",
    "The area of the rectangle is ${a} \\times {b} = {ab}$.",
    "Note that \\[ {a}^2 - {b}^2 = ({a} - {b})({a} + {b}) = {d2}. \\]",
    "By the Pythagorean theorem, $c^2 = a^2 + b^2$, so we need $a^2 + b^2 = {sq2}$.",
    "The discriminant is $b^2 - 4ac = {disc}$.",
    "Adding the two equations, we get ${s}y = {sy}$.",
    "So far we have used ${a}$ of the ${ab}$ items, leaving ${rest}$.",
    "Checking: ${a} \\cdot {b} = {ab}$, which matches the condition.",
    "Hmm, I need to be careful with the signs here.",
    "Now substitute $x = {a}$ into the second equation: ${b}({a}) - {c} = {bac}$.",
    "The sum of the first ${a}$ positive integers is $\\frac{{{a}({a}+1)}}{{2}} = {tri}$.",
    "Each box holds {a} items and there are {b} boxes, so there are {ab} items in total.",
    "Since $\\gcd({g1}, {g2}) = {g}$, the fraction can be simplified.",
    "Let's verify this with a quick sanity check.",
    "**Step {step}:** Simplify the expression.",
    "Indeed $\\sqrt{{{sq}}} = {a}$ because ${a}^2 = {sq}$.",
    "The probability of this case is $\\frac{{{a}}}{{{ab}}} = \\frac{{1}}{{{b}}}$.",
    "That gives {s} minutes for the whole trip.",
    "So the remaining amount is ${ab} - {a} = {rest}$.",
    "Using $A = \\pi r^2$ with $r = {a}$, the area of the circle is ${sq}\\pi$.",
    "Therefore $x + y = {s}$ and $xy = {ab}$.",
    "I'll double-check the arithmetic: {a} + {b} = {s}.",
    "We can rewrite the condition as \\[ {c}x + {b} = {cxb}. \\]",
    "This means the expression is minimized when $x = {a}$.",
    "There are $\\binom{{{a}}}{{2}} = {pairs}$ ways to choose the pair.",
    "Dividing, $\\frac{{{cx}}}{{{c}}} = {x}$.",
    "Both conditions are satisfied, so this case works.",
]

_CHECKS = [
    "Wait, let me double-check that.",
    "Hold on, I should verify this.",
    "Hmm, that doesn't look right. Let me recheck the computation.",
    "Actually, let me re-examine the second step.",
]

_BOXED_ENDINGS = [
    "Therefore, the answer is $\\boxed{{{x}}}$.",
    "\n\n**Final Answer**\n\\[\n\\boxed{{{x}}}\n\\]",
    "So the final answer is \\boxed{{{x}}}.",
    "\n\\[\n\\boxed{{{x}}}\n\\]",
    "The final answer is $\\boxed{{{x}}}$. I hope it is correct.",
    "Thus, the answer is $\\boxed{{{x}}}$.",
    "\n\n### Final Answer\n$\\boxed{{{x}}}$",
]

# Answers written without $...$ in prose: numbers (commas only as thousands separators), a/b, letters, words.
_NUMBER = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")
_PLAIN = re.compile(rf"{_NUMBER.pattern}(/\d+)?|\(?[A-E]\)?|[A-Za-z]+")


def _fill(template: str, rng: random.Random, step: int) -> str:
    a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(2, 12)
    x = rng.randint(1, 40)
    g = rng.randint(2, 9)
    values = {
        "a": a,
        "b": b,
        "c": c,
        "s": a + b,
        "ab": a * b,
        "cx": c * x,
        "x": x,
        "d2": a * a - b * b,
        "sq2": a * a + b * b,
        "disc": b * b - 4 * a * c,
        "sy": (a + b) * x,
        "rest": a * b - a,
        "bac": b * a - c,
        "tri": a * (a + 1) // 2,
        "g1": g * a,
        "g2": g * (a + 1),
        "g": g,
        "step": step,
        "sq": a * a,
        "cxb": c * x + b,
        "pairs": a * (a - 1) // 2,
    }
    return template.format(**values)


def _reasoning(rng: random.Random, budget: int) -> str:
    paragraphs, sentences, length, step = [], [], 0, 1
    while length < budget or not paragraphs and not sentences:
        sentence = _fill(rng.choice(_SENTENCES), rng, step)
        step += sentence.startswith("**Step")
        sentences.append(sentence)
        length += len(sentence) + 1
        if len(sentences) >= rng.randint(2, 4):
            paragraphs.append(" ".join(sentences))
            sentences = []
    if sentences:
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def _inline(answer: str) -> str:
    return answer if _PLAIN.fullmatch(answer) else f"${answer}$"


def _final(style: str, answer: str, first_guess: str, rng: random.Random) -> str:
    boxed = rng.choice(_BOXED_ENDINGS).format(x=answer)
    if style == "boxed" or style == "think":
        return boxed
    if style == "answer_is":
        return rng.choice(["The answer is {}.", "So the answer is {}.", "Therefore, the answer is {}."]).format(
            _inline(answer)
        )
    if style == "final_answer":
        return rng.choice(["Final answer: {}", "**Final answer:** {}", "Final Answer: {}"]).format(_inline(answer))
    if style == "hashes":
        return f"\n#### {answer}"
    if style == "corrected":
        guess = rng.choice(_BOXED_ENDINGS[:1] + _BOXED_ENDINGS[2:3] + _BOXED_ENDINGS[5:6]).format(x=first_guess)
        recheck = _fill(rng.choice(_SENTENCES), rng, 1)
        fix = rng.choice(
            [
                "I made an arithmetic slip above. The correct answer is $\\boxed{{{x}}}$.",
                "So my earlier answer was wrong; the final answer is \\boxed{{{x}}}.",
                "Correcting this, the answer is $\\boxed{{{x}}}$.",
            ]
        ).format(x=answer)
        return f"{guess}\n\n{rng.choice(_CHECKS)} {recheck} {fix}"
    raise ValueError(style)


def _completion(rng: random.Random, style: str, answer: str, first_guess: str) -> str:
    length = int(math.exp(rng.uniform(math.log(200), math.log(2000))))
    final = _final(style, answer, first_guess, rng)
    budget = max(60, length - len(final) - (20 if style == "think" else 0))
    reasoning = _reasoning(rng, budget)
    if style != "think":
        sep = "" if final.startswith("\n") else rng.choice([" ", "\n\n"])
        return reasoning + sep + final
    if rng.random() < 0.4:  # the answer is reached inside the thinking block and restated after it
        reasoning += f" So the answer should be {_inline(answer)}."
    return f"<think>\n{reasoning}\n</think>\n\n{final}"


def _style(rng: random.Random, category: str, answer: str) -> str:
    styles = ["boxed", "answer_is", "final_answer", "hashes", "corrected", "think"]
    weights = [0.62, 0.10, 0.07, 0.05, 0.08, 0.08]
    if category == "gsm8k":
        weights = [0.35, 0.1, 0.05, 0.4, 0.05, 0.05]
    style = rng.choices(styles, weights)[0]
    if style == "hashes" and not _NUMBER.fullmatch(answer):
        style = "boxed"
    return style


def _allocate(n: int) -> list[str]:
    """Exact category counts for ``n`` pairs (largest remainder), in CATEGORY_WEIGHTS order."""
    total = sum(CATEGORY_WEIGHTS.values())
    raw = {name: n * weight / total for name, weight in CATEGORY_WEIGHTS.items()}
    counts = {name: int(share) for name, share in raw.items()}
    leftover = n - sum(counts.values())
    for name in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[:leftover]:
        counts[name] += 1
    return [name for name in CATEGORY_WEIGHTS for _ in range(counts[name])]


def generate_pairs(n: int = 2000, seed: int = 0) -> list[dict]:
    """``n`` realistic (gold, completion) pairs, half of each category equal; deterministic given ``seed``.

    Each pair is ``{"gold", "completion", "expected", "category", "prediction", "style"}``; ``expected`` is 1.0 or 0.0
    under the policy in the module docstring.
    """
    rng = random.Random(seed)
    categories = _allocate(n)
    labels = []
    extra_equal = True  # categories with an odd count alternate between one more equal and one more unequal pair
    for name in CATEGORY_WEIGHTS:
        count = categories.count(name)
        equal = count // 2 + (count % 2 if extra_equal else 0)
        if count % 2:
            extra_equal = not extra_equal
        labels += [1.0] * equal + [0.0] * (count - equal)
    order = list(range(n))
    rng.shuffle(order)
    pairs = []
    for index in order:
        category, expected = categories[index], labels[index]
        problem = _CATEGORIES[category](rng)
        wrong = rng.choice(problem.wrong)
        answer = _pick(rng, problem.equal) if expected else wrong
        style = _style(rng, category, answer)
        if expected:
            first_guess = rng.choice(problem.wrong)
        else:  # a model that talks itself out of the right answer, or swaps one wrong answer for another
            others = [w for w in problem.wrong if w != wrong]
            first_guess = problem.equal[0] if rng.random() < 0.35 or not others else rng.choice(others)
        pairs.append(
            {
                "gold": problem.gold,
                "completion": _completion(rng, style, answer, first_guess),
                "expected": expected,
                "category": category,
                "prediction": answer,
                "style": style,
            }
        )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=10, help="print this many pairs (per category with --category)")
    parser.add_argument("--category", default=None, help="show pairs of this category only")
    parser.add_argument("--full", action="store_true", help="print whole completions, not only their endings")
    args = parser.parse_args()
    pairs = generate_pairs(args.n, args.seed)
    counts = Counter(p["category"] for p in pairs)
    equal = Counter(p["category"] for p in pairs if p["expected"])
    print(f"{len(pairs)} pairs, {sum(equal.values())} equal; styles: {dict(Counter(p['style'] for p in pairs))}")
    for name in CATEGORY_WEIGHTS:
        print(f"  {name:<11} {counts[name]:>5} ({counts[name] / len(pairs):.1%}), {equal[name]} equal")
    lengths = sorted(len(p["completion"]) for p in pairs)
    print(f"completion length: min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}")
    shown = [p for p in pairs if args.category in (None, p["category"])][: args.show]
    for pair in shown:
        text = pair["completion"] if args.full else "..." + pair["completion"][-160:]
        print(f"\n[{pair['category']}, expected {pair['expected']}, {pair['style']}] gold: {pair['gold']!r}")
        print(f"  prediction: {pair['prediction']!r}\n  completion: {text!r}")


if __name__ == "__main__":
    main()

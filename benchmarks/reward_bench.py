"""Accuracy and speed of math-answer rewards, side by side: ours, TRL's ``accuracy_reward`` and raw math-verify.

    python benchmarks/reward_bench.py [--n_pairs 2000] [--quick] [--methods ours,trl,math-verify,math-verify-wrapped]
        [--sets cases,pairs] [--incumbent_cap 20] [--serial] [--workers N] [--timeout 1.0] [--output results.json]

Rows (``--methods``):

* ``ours``: ``trl_reasoning.rewards.get_accuracy_reward()`` with default settings (``--workers`` / ``--timeout``
  override them), called in this process as a training script would.
* ``trl``: ``trl.rewards.accuracy_reward`` (conversational completions, as it requires; golds as stored).
* ``math-verify``: ``math_verify.verify(math_verify.parse(gold), math_verify.parse(completion))`` with golds as
  stored (bare LaTeX, as datasets store them).
* ``math-verify-wrapped``: the same with the gold wrapped in ``$...$`` (the fair way to call it: its parser only
  finds LaTeX inside delimiters). Golds that already hold ``$``, ``\\(``, ``\\[`` or ``\\boxed`` are not wrapped.

Sets (``--sets``): ``cases`` is ``tests/data/reward_cases.jsonl`` (the project's verdicts, hostile inputs
included); ``pairs`` is ``benchmarks/reward_pairs.generate_pairs(n_pairs)``: realistic completions, half equal.

Columns:

* accuracy: the fraction of pairs whose score matches ``expected``. A ``None`` score counts as 0.0. For a case with
  ``expected: null`` (empty gold) a method is right iff it skips the pair: returns ``None`` (TRL, ours) or, for the
  math-verify rows, the gold parses to nothing (those rows report such a pair as ``None``). wrong: pairs not right.
  None: pairs scored ``None`` (skipped). Killed pairs score 0.0.
* throughput (pairs/s): pairs per second over the whole set, each method called as its users call it: ours once on
  the whole list (after a warm-up call on four unrelated pairs that starts its workers; that startup is reported
  separately), TRL's function once on the whole list, math-verify in a plain loop (pairs / the sum of the loop's
  per-pair times). The incumbents run in the main thread of a child process (their timeouts need a main thread),
  which first scores the same four warm-up pairs so that first-call imports do not land on the first pair. On the
  case file, whose hostile inputs can hang the incumbents for minutes, every incumbent runs one pair at a time under
  a hard cap (``--incumbent_cap``, default 20 s) and its throughput is pairs / the sum of those times, killed pairs
  counted at the cap (so it is an upper bound, marked "<="). To keep the run to a few minutes, the ``hostile``
  cases run for the three incumbents at the same time (each in its own child; their times are mostly the
  incumbents' own 5-10 s wall-clock timeouts, so sharing the cores changes them little); ``--serial`` runs them
  one method after another.
* median / p99 / max: per-pair latency, from a separate pass calling the method on one pair at a time (ours: a fresh
  reward with the same settings, so its verdict cache does not answer from the batch pass; math-verify: the per-pair
  times of its loop, which is already one pair at a time). A pair killed at the cap reads ">20 s (killed)".
* worst case (case file only): the slowest case and its id.
* ratio: ours' throughput / math-verify's (bare-gold row), per set.

A per-category accuracy table follows for the generated pairs. Notes under each table give ours' worker count,
startup time and path counts (fast path / symbolic / cached), killed pairs, calls that raised, and pairs whose score
differed between the whole-list call and the one-pair calls. ``--output`` writes everything as JSON, including each
method's per-pair scores and latencies and the ids (cases) or indices (pairs) it got wrong.

``--quick`` (CI smoke run, about 30 s on 2 cores): 100 generated pairs, and the case file without its ``hostile``
category for every row (ours included, so the rows stay comparable). Timings depend on the machine and its load;
the JSON records the CPU count and the load average.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


try:
    from reward_pairs import CATEGORY_WEIGHTS, generate_pairs
except ImportError:  # imported as benchmarks.reward_bench
    from benchmarks.reward_pairs import CATEGORY_WEIGHTS, generate_pairs


REPO = Path(__file__).resolve().parent.parent
DEFAULT_CASES = REPO / "tests" / "data" / "reward_cases.jsonl"
METHODS = {
    "ours": "trl_reasoning.rewards",
    "trl": "trl.rewards.accuracy_reward",
    "math-verify": "math-verify",
    "math-verify-wrapped": "math-verify, gold wrapped in $...$",
}
INCUMBENTS = ("trl", "math-verify", "math-verify-wrapped")
HOSTILE_CATEGORIES = {"hostile"}
WARMUP = [  # (gold, completion): warms every method up (ours: starts its workers); none of these occur in the sets
    ("x^2+6x+9", "So the answer is $\\boxed{(x+3)^2}$."),
    ("\\frac{7}{9}", "The answer is $\\boxed{\\dfrac{14}{18}}$."),
    ("[-11, 13)", "Thus $\\boxed{[-11, 13)}$."),
    ("123457", "#### 123,457"),
]


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def load_cases(path: Path) -> list[dict]:
    """The case file as benchmark items (``completion_repeat`` expanded, ``conversational`` applied)."""
    items = []
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028 may sit in a string
        if not line.strip():
            continue
        case = json.loads(line)
        if "completion_repeat" in case:
            r = case["completion_repeat"]
            text = r["prefix"] + r["unit"] * r["times"] + r["suffix"]
        else:
            text = case["completion"]
        items.append(
            {
                "id": case["id"],
                "category": case["category"],
                "gold": case["gold"],
                "text": text,
                "completion": [{"role": "assistant", "content": text}] if case.get("conversational") else text,
                "expected": case["expected"],
            }
        )
    return items


def pair_items(n: int, seed: int) -> list[dict]:
    return [
        {
            "id": str(i),
            "category": p["category"],
            "gold": p["gold"],
            "text": p["completion"],
            "completion": p["completion"],
            "expected": p["expected"],
        }
        for i, p in enumerate(generate_pairs(n, seed))
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Incumbents, run in the main thread of a killable child process
# ---------------------------------------------------------------------------------------------------------------------


def _wrap_gold(gold: str) -> str:
    """``$gold$``, unless the gold already has math delimiters or a box (``\\$`` is a dollar sign, not one)."""
    if re.search(r"(?<!\\)\$|\\\(|\\\[|\\boxed", gold):
        return gold
    return f"${gold}$"


def _incumbent(method: str):
    """``fn(golds, texts) -> scores`` for an incumbent, called exactly as its users would."""
    if method == "trl":
        from trl.rewards import accuracy_reward

        def trl_scores(golds: list[str], texts: list[str]) -> list[float | None]:
            completions = [[{"role": "assistant", "content": text}] for text in texts]
            return accuracy_reward(completions, golds)

        return trl_scores

    from math_verify import parse, verify

    wrap = method == "math-verify-wrapped"

    def math_verify_scores(golds: list[str], texts: list[str]) -> list[float | None]:
        scores: list[float | None] = []
        for gold, text in zip(golds, texts, strict=True):
            gold_parsed = parse(_wrap_gold(gold) if wrap else gold)
            verdict = verify(gold_parsed, parse(text))
            scores.append(float(verdict) if gold_parsed else None)  # a gold that parses to nothing: skipped
        return scores

    return math_verify_scores


def _child_main(conn, method: str) -> None:
    logging.disable(logging.WARNING)  # math-verify logs every timeout and parse failure
    fn = _incumbent(method)
    fn([g for g, _ in WARMUP], [c for _, c in WARMUP])  # first-call imports and caches are not the first pair's cost
    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            return
        kind, golds, texts = message
        if kind == "batch":
            start = time.perf_counter()
            try:
                scores, error = fn(golds, texts), None
            except Exception as exc:  # reported, scored 0
                scores, error = [0.0] * len(golds), f"{type(exc).__name__}: {exc}"[:200]
            conn.send((scores, time.perf_counter() - start, error))
            continue
        for gold, text in zip(golds, texts, strict=True):
            start = time.perf_counter()
            try:
                score, error = fn([gold], [text])[0], None
            except Exception as exc:
                score, error = 0.0, f"{type(exc).__name__}: {exc}"[:200]
            conn.send((score, time.perf_counter() - start, error))


class ChildRunner:
    """One incumbent in a child process; a call that passes its cap kills the child (a fresh one follows).

    The child is ``python reward_bench.py --_child METHOD --_fd N`` talking over a socket pair (not multiprocessing,
    whose spawn start method re-runs the caller's ``__main__``).
    """

    def __init__(self, method: str, cap: float):
        self.method, self.cap = method, cap
        self.process: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.kills = 0

    def _ensure(self) -> None:
        if self.process is not None:
            return
        ours, theirs = socket.socketpair()
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--_child",
            self.method,
            "--_fd",
            str(theirs.fileno()),
        ]
        self.process = subprocess.Popen(command, pass_fds=(theirs.fileno(),))
        theirs.close()
        self.conn = Connection(ours.detach())
        try:
            ready = self.conn.poll(120) and self.conn.recv() == "ready"
        except EOFError:
            ready = False
        if not ready:
            self._stop()
            raise RuntimeError(f"the {self.method} child process did not start (see its error above)")

    def _stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.conn.close()
        self.process = self.conn = None

    def kill(self) -> None:
        if self.process is not None:
            self._stop()
            self.kills += 1

    def close(self) -> None:
        if self.process is not None:
            try:
                self.conn.send(None)
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._stop()

    def batch(self, golds: list[str], texts: list[str], cap: float) -> tuple[list | None, float, str | None]:
        """Scores and seconds of one call on the whole list, or (None, cap, "killed")."""
        self._ensure()
        self.conn.send(("batch", golds, texts))
        if not self.conn.poll(cap):
            self.kill()
            return None, cap, "killed"
        return self.conn.recv()

    def each(self, golds: list[str], texts: list[str], ids: list[str]) -> list[tuple[Any, float, str | None]]:
        """(score, seconds, error) per pair, one call per pair; a pair past the cap is (0.0, cap, "killed")."""
        results: list[tuple[Any, float, str | None]] = []
        while len(results) < len(golds):
            self._ensure()
            start = len(results)
            self.conn.send(("each", golds[start:], texts[start:]))
            while len(results) < len(golds):
                if not self.conn.poll(self.cap):
                    self.kill()
                    results.append((0.0, self.cap, "killed"))
                    _log(f"  {self.method}: {ids[len(results) - 1]} killed after {self.cap:g} s")
                    break
                results.append(self.conn.recv())
        return results


# ---------------------------------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ours_factory(args: argparse.Namespace):
    try:
        from trl_reasoning.rewards import default_workers, get_accuracy_reward
    except ImportError as exc:
        return None, f"not available ({exc})"
    kwargs = {}
    if args.workers is not None:
        kwargs["workers"] = args.workers
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout

    def make():
        reward = get_accuracy_reward(**kwargs)
        workers = getattr(reward, "workers", None) or default_workers()
        return reward, workers

    return make, None


def _warm(reward) -> float:
    start = time.perf_counter()
    reward([c for _, c in WARMUP], [g for g, _ in WARMUP])
    return time.perf_counter() - start


def measure_ours(items: list[dict], make) -> dict:
    golds = [it["gold"] for it in items]
    completions = [it["completion"] for it in items]
    reward, workers = make()
    try:
        startup = _warm(reward)
        start = time.perf_counter()
        scores = reward(completions, golds)
        seconds = time.perf_counter() - start
        stats = dict(getattr(reward, "stats", {}))
    finally:
        reward.close()
    reward, _ = make()  # fresh: the batch pass filled the first one's verdict cache
    try:
        _warm(reward)
        latencies, single = [], []
        for gold, completion in zip(golds, completions, strict=True):
            t0 = time.perf_counter()
            single.append(reward([completion], [gold])[0])
            latencies.append(time.perf_counter() - t0)
    finally:
        reward.close()
    return {
        "scores": scores,
        "seconds": seconds,
        "latencies": latencies,
        "killed": [False] * len(items),
        "errors": [],
        "workers": workers,
        "startup_s": startup,
        "stats": stats,
        "per_pair_disagreements": sum(a != b for a, b in zip(scores, single, strict=True)),
    }


def _each(method: str, items: list[dict], cap: float) -> tuple[list[tuple[Any, float, str | None]], int]:
    """One call per pair in a killable child: (score, seconds, error) per pair, and the number of kills."""
    runner = ChildRunner(method, cap)
    try:
        results = runner.each([it["gold"] for it in items], [it["text"] for it in items], [it["id"] for it in items])
    finally:
        runner.close()
    return results, runner.kills


def _raw_from_each(items: list[dict], results: list[tuple[Any, float, str | None]], kills: int) -> dict:
    killed = [error == "killed" for _, _, error in results]
    latencies = [seconds for _, seconds, _ in results]
    return {
        "scores": [score for score, _, _ in results],
        "seconds": sum(latencies),  # a plain loop; killed pairs count at the cap
        "upper_bound": any(killed),
        "killed": killed,
        "latencies": latencies,
        "errors": [(it["id"], e) for it, (_, _, e) in zip(items, results, strict=True) if e and e != "killed"],
        "kills": kills,
    }


def measure_incumbent(items: list[dict], method: str, args: argparse.Namespace) -> dict:
    """Generated pairs: TRL's function once on the whole list, then one pair at a time; math-verify in a loop."""
    batch = None
    if method == "trl":
        runner = ChildRunner(method, args.incumbent_cap)
        try:
            batch = runner.batch([it["gold"] for it in items], [it["text"] for it in items], args.batch_cap)
        finally:
            runner.close()
    raw = _raw_from_each(items, *_each(method, items, args.incumbent_cap))
    if batch is not None:
        scores, seconds, error = batch
        if scores is not None:
            single = raw["scores"]
            raw.update(scores=scores, seconds=seconds, upper_bound=False)
            raw["per_pair_disagreements"] = sum(a != b for a, b in zip(scores, single, strict=True))
        if error:  # killed or raised: the per-pair pass stands in for it
            raw["errors"].append(("whole-list call", error))
    return raw


def measure_cases_incumbents(items: list[dict], methods: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """The case file, one capped call per pair. Calm cases run one method after another; the hostile ones (whose
    time is the incumbents' own wall-clock timeouts, or the cap) run for all methods at once unless ``--serial``."""
    calm = [i for i, it in enumerate(items) if it["category"] not in HOSTILE_CATEGORIES]
    hostile = [i for i, it in enumerate(items) if it["category"] in HOSTILE_CATEGORIES]
    results: dict[str, dict[int, tuple]] = {m: {} for m in methods}
    kills = dict.fromkeys(methods, 0)

    def run(method: str, indices: list[int]) -> None:
        out, killed = _each(method, [items[i] for i in indices], args.incumbent_cap)
        results[method].update(zip(indices, out, strict=True))
        kills[method] += killed

    for method in methods:
        start = time.perf_counter()
        run(method, calm)
        _log(f"[cases] {METHODS[method]}: {len(calm)} non-hostile cases in {time.perf_counter() - start:.1f} s")
    if hostile:
        start = time.perf_counter()
        if args.serial:
            for method in methods:
                run(method, hostile)
        else:
            threads = [threading.Thread(target=run, args=(m, hostile)) for m in methods]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        how = "one method after another" if args.serial else "all methods at once"
        _log(f"[cases] {len(hostile)} hostile cases, {how}: {time.perf_counter() - start:.1f} s")
    raws = {}
    for method in methods:
        raws[method] = _raw_from_each(items, [results[method][i] for i in range(len(items))], kills[method])
        raws[method]["concurrent_ids"] = [] if args.serial else [items[i]["id"] for i in hostile]
    return raws


def _is_right(score: Any, expected: Any) -> bool:
    if expected is None:
        return score is None
    return (0.0 if score is None else float(score)) == float(expected)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(items: list[dict], method: str, raw: dict, cap: float) -> dict:
    scores = raw["scores"]
    right = [_is_right(s, it["expected"]) for s, it in zip(scores, items, strict=True)]
    latencies = [math.inf if k else s for s, k in zip(raw["latencies"], raw["killed"], strict=True)]
    worst = max(range(len(items)), key=lambda i: latencies[i])
    row = {
        "method": method,
        "label": METHODS[method],
        "available": True,
        "pairs": len(items),
        "accuracy": sum(right) / len(items),
        "wrong": len(items) - sum(right),
        "none": sum(s is None for s in scores),
        "killed": sum(raw["killed"]),
        "throughput": len(items) / raw["seconds"] if raw["seconds"] else None,
        "throughput_upper_bound": bool(raw.get("upper_bound")),
        "seconds": raw["seconds"],
        "median_s": _percentile(latencies, 0.5),
        "p99_s": _percentile(latencies, 0.99),
        "max_s": latencies[worst],
        "worst_id": items[worst]["id"],
        "wrong_ids": [it["id"] for it, ok in zip(items, right, strict=True) if not ok],
        "killed_ids": [it["id"] for it, k in zip(items, raw["killed"], strict=True) if k],
        "errors": raw["errors"],
        "cap_s": cap,
        "per_pair_disagreements": raw.get("per_pair_disagreements"),
    }
    for key in ("workers", "startup_s", "stats", "kills", "concurrent_ids"):
        if key in raw:
            row[key] = raw[key]
    row["scores"] = scores
    row["latencies_s"] = [None if math.isinf(x) else round(x, 6) for x in latencies]  # None: killed at the cap
    row["per_category"] = {}
    for category in dict.fromkeys(it["category"] for it in items):
        flags = [ok for ok, it in zip(right, items, strict=True) if it["category"] == category]
        row["per_category"][category] = {"pairs": len(flags), "accuracy": sum(flags) / len(flags)}
    return row


def run_set(name: str, items: list[dict], args: argparse.Namespace, ours) -> list[dict]:
    make, reason = ours
    incumbents = [m for m in args.methods if m in INCUMBENTS]
    case_raws = measure_cases_incumbents(items, incumbents, args) if name == "cases" and incumbents else {}
    rows = []
    for method in args.methods:
        if method == "ours" and make is None:
            rows.append({"method": method, "label": METHODS[method], "available": False, "reason": reason})
            continue
        if method in case_raws:
            raw = case_raws[method]
        else:
            _log(f"[{name}] {METHODS[method]} on {len(items)} pairs ...")
            start = time.perf_counter()
            raw = measure_ours(items, make) if method == "ours" else measure_incumbent(items, method, args)
            _log(f"[{name}] {METHODS[method]}: {time.perf_counter() - start:.1f} s")
        rows.append(summarize(items, method, raw, args.incumbent_cap))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------------


def _fmt_seconds(seconds: float, cap: float) -> str:
    if math.isinf(seconds):
        return f">{cap:g} s (killed)"
    if seconds < 0.01:
        return f"{seconds * 1e3:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.1f} s"


def format_table(name: str, rows: list[dict]) -> str:
    worst = name == "cases"
    header = "| method | pairs | accuracy | wrong | None | pairs/s | median | p99 | max |" + (
        " worst case |" if worst else ""
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        if not row["available"]:
            lines.append(f"| {row['label']} | {row['reason']} |")
            continue
        label = row["label"] + (f" ({row['workers']} workers)" if "workers" in row else "")
        bound = "<= " if row["throughput_upper_bound"] else ""
        throughput = f"{bound}{_rate(row['throughput'])}" if row["throughput"] else "-"
        cells = [
            label,
            f"{row['pairs']:,}",
            f"{row['accuracy']:.2%}",
            f"{row['wrong']:,}",
            f"{row['none']:,}",
            throughput,
            _fmt_seconds(row["median_s"], row["cap_s"]),
            _fmt_seconds(row["p99_s"], row["cap_s"]),
            _fmt_seconds(row["max_s"], row["cap_s"]),
        ]
        if worst and row["killed"]:
            cells.append(f"{row['worst_id']} (killed at {row['cap_s']:g} s; {row['killed']} killed in all)")
        elif worst:
            cells.append(f"{row['worst_id']} ({_fmt_seconds(row['max_s'], row['cap_s'])})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


def ratio_line(rows: list[dict]) -> str | None:
    by_method = {row["method"]: row for row in rows if row["available"]}
    if "ours" not in by_method or "math-verify" not in by_method:
        return None
    ours, incumbent = by_method["ours"]["throughput"], by_method["math-verify"]["throughput"]
    bound = (
        " (at least: math-verify's is an upper bound)" if by_method["math-verify"]["throughput_upper_bound"] else ""
    )
    return (
        f"ratio: ours {_rate(ours)} pairs/s / math-verify {_rate(incumbent)} pairs/s = {ours / incumbent:.1f}x{bound}"
    )


def notes(rows: list[dict]) -> list[str]:
    out = []
    for row in rows:
        if not row["available"]:
            continue
        if "startup_s" in row:
            stats = row.get("stats") or {}
            out.append(
                f"{row['label']}: {row['workers']} workers; warm-up call (workers starting) {row['startup_s']:.2f} s; "
                f"stats {stats}"
            )
        if row["killed"]:
            out.append(f"{row['label']}: killed at {row['cap_s']:g} s (score 0): {', '.join(row['killed_ids'])}")
        if row["errors"]:
            shown = "; ".join(f"{i}: {e}" for i, e in row["errors"][:5])
            out.append(f"{row['label']}: {len(row['errors'])} calls raised (score 0): {shown}")
        if row.get("concurrent_ids"):
            out.append(
                f"{row['label']}: its {len(row['concurrent_ids'])} hostile cases ran at the same time as the other "
                "incumbents' (their times are mostly the incumbents' own wall-clock timeouts; --serial for clean ones)"
            )
        if row.get("per_pair_disagreements"):
            out.append(f"{row['label']}: {row['per_pair_disagreements']} pairs scored differently one at a time")
    return out


def category_table(rows: list[dict]) -> str:
    rows = [row for row in rows if row["available"]]
    header = "| category | pairs | " + " | ".join(row["label"] for row in rows) + " |"
    lines = [header, "|" + "---|" * (len(rows) + 2)]
    categories = [c for c in CATEGORY_WEIGHTS if c in rows[0]["per_category"]] if rows else []
    for category in categories:
        cells = [f"{row['per_category'][category]['accuracy']:.1%}" for row in rows]
        lines.append(f"| {category} | {rows[0]['per_category'][category]['pairs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """JSON-safe copy: a latency of a killed pair (infinite) becomes None."""
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _methods(values: list[str]) -> list[str]:
    names = [name for value in values for name in value.split(",") if name]
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n_pairs", "--n-pairs", type=int, default=None, help="generated pairs (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated pairs")
    parser.add_argument("--quick", action="store_true", help="100 pairs and the case file without hostile cases")
    parser.add_argument("--methods", nargs="+", default=[",".join(METHODS)], help=f"rows: {', '.join(METHODS)}")
    parser.add_argument("--sets", default="cases,pairs", help="cases, pairs or both (default)")
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="the case file")
    parser.add_argument("--incumbent_cap", "--incumbent-cap", type=float, default=20.0, help="seconds per pair")
    parser.add_argument("--batch_cap", "--batch-cap", type=float, default=600.0, help="seconds for TRL's batch call")
    parser.add_argument(
        "--serial", action="store_true", help="case file: run the incumbents' hostile cases one method at a time"
    )
    parser.add_argument("--workers", type=int, default=None, help="ours: worker processes (default: its own)")
    parser.add_argument(
        "--timeout", type=float, default=None, help="ours: seconds per verification (default: its own)"
    )
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)  # internal: run one incumbent
    parser.add_argument("--_fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        _child_main(Connection(args._fd), args._child)
        return {}
    args.methods = _methods(args.methods)
    n_pairs = args.n_pairs if args.n_pairs is not None else (100 if args.quick else 2000)
    sets = [s for s in args.sets.split(",") if s]

    started = time.perf_counter()
    ours = _ours_factory(args) if "ours" in args.methods else (None, "not requested")
    result: dict[str, Any] = {
        "meta": {
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "python": platform.python_version(),
            "versions": {p: _version(p) for p in ("trl", "math-verify", "latex2sympy2_extended", "sympy")},
            "cpu_count": os.cpu_count(),
            "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "incumbent_cap_s": args.incumbent_cap,
            "quick": args.quick,
            "n_pairs": n_pairs,
            "seed": args.seed,
        },
        "sets": {},
    }
    if "cases" in sets:
        if args.cases.exists():
            items = load_cases(args.cases)
            if args.quick:
                items = [it for it in items if it["category"] not in HOSTILE_CATEGORIES]
            result["sets"]["cases"] = run_set("cases", items, args, ours)
        else:
            _log(f"no case file at {args.cases}; skipping that set")
    if "pairs" in sets:
        result["sets"]["pairs"] = run_set("pairs", pair_items(n_pairs, args.seed), args, ours)
    result["meta"]["seconds"] = time.perf_counter() - started
    result["meta"]["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    titles = {
        "cases": f"Case file ({args.cases.name}{', without hostile cases' if args.quick else ''})",
        "pairs": f"Generated pairs (generate_pairs({n_pairs}, seed={args.seed}))",
    }
    for name, rows in result["sets"].items():
        print(f"\n### {titles[name]}\n")
        print(format_table(name, rows))
        ratio = ratio_line(rows)
        if ratio:
            print(f"\n{ratio}")
        for note in notes(rows):
            print(f"- {note}")
        if name == "pairs" and any(row["available"] for row in rows):
            print("\nPer-category accuracy (generated pairs):\n")
            print(category_table(rows))
    print(f"\n{os.cpu_count()} CPUs; total {result['meta']['seconds']:.0f} s")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(_finite(result), indent=1, default=str), encoding="utf-8")
        _log(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()

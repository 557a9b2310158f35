r"""Math-answer accuracy reward: 1.0 when the completion's final answer equals the gold answer, 0.0 otherwise.

Drop-in for ``trl.rewards.accuracy_reward`` (same signature), built to be right, fast and never stall a run:

1. **Extraction** (:mod:`.extraction`): the *final* answer (the last ``\boxed{}``, "the answer is ...", "Final
   answer: ...", ``#### ...``), and the gold answer as datasets store it (bare LaTeX, plain numbers, GSM8K
   ``#### 42``, MATH solutions with ``\boxed{}``, ``$...$``).
2. **Fast path** in the calling process (:func:`.answers.quick_verdict`): identical answers, plain numbers
   (exact rationals; percent, thousands separators, currency, units, degrees), letters, text, and tuples / sets /
   intervals / matrices of those. Most real answers end here, in microseconds.
3. **Symbolic path** (:mod:`.symbolic`): everything else runs with sympy in a small pool of worker processes
   (:class:`.pool.WorkerPool`). Every verification has a deadline (``timeout``, default 1 s); a worker that
   passes it is killed and replaced, and the answer scores 0.0. That holds from the main thread, a worker thread,
   an asyncio loop or a subprocess: nothing relies on signals.

Scores are exactly 1.0 or 0.0, so ``ReasoningGRPOConfig.correct_threshold=1.0`` reads correctness from them;
``None`` only when the gold answer is empty (the sample is then left out of scoring, as TRL does for ``None``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from .answers import quick_verdict
from .extraction import EXTRACTION_MODES, MAX_ANSWER_CHARS, completion_text, extract_final_answer, extract_gold_answer
from .pool import TaskResult, WorkerPool


logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 1.0
VERIFY_FUNCTION = "trl_reasoning.rewards.symbolic:verify_answers"
_MAX_LOGGED_FAILURES = 20


def default_workers() -> int:
    """The cores this process may use, shared among the processes of a distributed run on this node (1 to 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, min(8, cores // max(local_processes, 1)))


class AccuracyReward:
    """A picklable accuracy reward with its own settings; make one with :func:`get_accuracy_reward`.

    Calling it scores a batch: ``reward(completions, solution, **kwargs) -> list[float | None]``. The worker
    processes start on the first call that needs them and stop with :meth:`close` (or at interpreter exit).
    ``stats`` counts what happened (fast-path answers, symbolic checks, timeouts, errors).
    """

    verify_function = VERIFY_FUNCTION
    """The ``"module:function"`` that decides a pair ``(gold, answer)`` in a worker process."""

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        workers: int | None = None,
        extraction: str = "flexible",
        name: str = "accuracy_reward",
        cache_size: int = 65536,
    ):
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds (e.g. 1.0), got {timeout!r}")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers must be a positive integer, or None for the available cores, got {workers!r}")
        if extraction not in EXTRACTION_MODES:
            raise ValueError(f"extraction must be one of {', '.join(map(repr, EXTRACTION_MODES))}, got {extraction!r}")
        self.timeout = float(timeout)
        self.workers = workers
        self.extraction = extraction
        self.__name__ = name
        self.cache_size = cache_size
        self._reset_runtime_state()

    def _reset_runtime_state(self) -> None:
        self._pool = None
        self._pool_answered = False
        self._lock = threading.Lock()
        self._verdicts: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self.stats = {"scored": 0, "fast_path": 0, "symbolic": 0, "cached": 0, "timeouts": 0, "errors": 0}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for runtime in ("_pool", "_pool_answered", "_lock", "_verdicts", "stats"):
            state.pop(runtime, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_runtime_state()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(timeout={self.timeout}, workers={self.workers}, "
            f"extraction={self.extraction!r}, name={self.__name__!r})"
        )

    def close(self) -> None:
        """Stop the worker processes (a later call starts new ones)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @property
    def pool(self) -> WorkerPool:
        with self._lock:
            if self._pool is None:
                module = self.verify_function.split(":")[0]
                self._pool = WorkerPool(self.workers or default_workers(), preload=(module,))
            return self._pool

    def __call__(
        self,
        completions: Sequence[Any],
        solution: Sequence[str | None],
        log_extra: Callable[[str, list], None] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """Score a batch. TRL passes ``log_extra`` / ``log_metric``: the extracted answers then appear in the
        completions table (``gold_answer``, ``extracted_answer``) and ``<name>/no_answer`` (share of scored
        completions without a final answer), ``<name>/timeouts`` and ``<name>/errors`` (counts) in the logs."""
        if solution is None:
            raise ValueError(
                f"{self.__name__} needs the gold answers: the dataset must have a `solution` column (TRL passes "
                "every dataset column to reward functions as a keyword argument)"
            )
        if len(solution) != len(completions):
            raise ValueError(
                f"{self.__name__}: got {len(completions)} completions but {len(solution)} solutions; they must pair up"
            )
        failures_before = self.stats["timeouts"], self.stats["errors"]
        scores: list[float | None] = [None] * len(completions)
        golds: list[str | None] = [None] * len(completions)
        answers: list[str | None] = [None] * len(completions)
        pending: list[tuple[int, str, str]] = []
        for index, (completion, gold_solution) in enumerate(zip(completions, solution, strict=True)):
            try:
                gold = extract_gold_answer(str(gold_solution)) if gold_solution is not None else None
                golds[index] = gold
                if gold is None:
                    continue
                answer = extract_final_answer(completion_text(completion), self.extraction)
            except Exception as error:  # a bug must cost one sample, never the run
                scores[index] = 0.0
                self._record_failure("errors", f"extraction failed: {error!r}", str(gold_solution), "")
                continue
            answers[index] = answer
            if answer is None or len(answer) > MAX_ANSWER_CHARS:
                scores[index] = 0.0
                continue
            with self._lock:
                cached = self._verdicts.get((gold, answer))
            if cached is not None:
                self.stats["cached"] += 1
                scores[index] = float(cached)
                continue
            try:
                verdict = quick_verdict(gold, answer)
            except Exception:  # the worker decides (and reports) it
                verdict = None
            if verdict is None:
                pending.append((index, gold, answer))
                continue
            self.stats["fast_path"] += 1
            scores[index] = self._remember(gold, answer, verdict)
        if pending:
            self._verify_symbolically(pending, scores)
        scored = sum(score is not None for score in scores)
        self.stats["scored"] += scored
        if log_extra is not None:
            log_extra("gold_answer", [_shorten(gold) for gold in golds])
            log_extra("extracted_answer", [_shorten(answer) for answer in answers])
        if log_metric is not None:
            no_answer = sum(gold is not None and answer is None for gold, answer in zip(golds, answers, strict=True))
            log_metric(f"{self.__name__}/no_answer", no_answer / scored if scored else 0.0)
            log_metric(f"{self.__name__}/timeouts", float(self.stats["timeouts"] - failures_before[0]))
            log_metric(f"{self.__name__}/errors", float(self.stats["errors"] - failures_before[1]))
        return scores

    def _remember(self, gold: str, answer: str, verdict: bool) -> float:
        with self._lock:
            self._verdicts[(gold, answer)] = verdict
            if len(self._verdicts) > self.cache_size:
                self._verdicts.popitem(last=False)
        return float(verdict)

    def _verify_symbolically(self, pending: list[tuple[int, str, str]], scores: list[float | None]) -> None:
        self.stats["symbolic"] += len(pending)
        try:
            results = self.pool.map(
                self.verify_function, [(gold, answer) for _, gold, answer in pending], self.timeout
            )
        except Exception as error:
            if not self._pool_answered:  # a set-up problem: fail at the first step, loudly
                raise
            # Mid-run (e.g. no memory to start a replacement worker): lose these answers, not the run.
            self.close()
            results = [TaskResult("error", error=f"worker pool failed: {error!r}")] * len(pending)
        self._pool_answered = True
        for (index, gold, answer), result in zip(pending, results, strict=True):
            if result.status == "ok":
                scores[index] = self._remember(gold, answer, bool(result.value))
                continue
            scores[index] = 0.0
            kind = "timeouts" if result.status == "timeout" else "errors"
            what = "timed out" if result.status == "timeout" else "failed"
            self._record_failure(kind, f"verification {what} ({result.error})", gold, answer)

    def _record_failure(self, kind: str, what: str, gold: str, answer: str) -> None:
        self.stats[kind] += 1
        failures = self.stats["timeouts"] + self.stats["errors"]
        if failures <= _MAX_LOGGED_FAILURES:
            logger.warning(
                "%s: %s; scored 0.0. gold=%.60r answer=%.60r%s",
                self.__name__,
                what,
                gold,
                answer,
                " (further failures are counted in .stats, not logged)" if failures == _MAX_LOGGED_FAILURES else "",
            )


def _shorten(text: str | None, limit: int = 200) -> str:
    if text is None:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def get_accuracy_reward(
    timeout: float = DEFAULT_TIMEOUT, workers: int | None = None, extraction: str = "flexible"
) -> AccuracyReward:
    """A picklable accuracy reward with the given settings (``__name__ == "accuracy_reward"``).

    Args:
        timeout: seconds one verification may take before it is killed and scored 0.0.
        workers: worker processes for the symbolic path; None uses this process's share of the cores.
        extraction: ``"flexible"`` (default), ``"strict"`` or ``"boxed"``: see :mod:`.extraction`.
    """
    return AccuracyReward(timeout=timeout, workers=workers, extraction=extraction)


_DEFAULT_REWARD: AccuracyReward | None = None
_DEFAULT_LOCK = threading.Lock()


def accuracy_reward(completions: Sequence[Any], solution: Sequence[str | None], **kwargs: Any) -> list[float | None]:
    """1.0 when a completion's final answer equals its gold ``solution``, else 0.0 (None for an empty gold).

    The default-settings instance of :class:`AccuracyReward` (1 s timeout, flexible extraction, workers from the
    available cores); use :func:`get_accuracy_reward` for other settings.
    """
    global _DEFAULT_REWARD
    with _DEFAULT_LOCK:
        if _DEFAULT_REWARD is None:
            _DEFAULT_REWARD = AccuracyReward()
    return _DEFAULT_REWARD(completions, solution, **kwargs)

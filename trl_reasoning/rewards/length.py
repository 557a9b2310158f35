r"""Length rewards: DAPO's soft overlong punishment and a correctness-gated brevity reward.

Both take the completion length ``L = |y|`` in tokens from the ``completion_ids`` keyword argument that TRL's
``GRPOTrainer`` passes to every reward function (a list of token-id lists, without padding).

**Soft overlong punishment** (DAPO, Yu et al. 2025, arXiv 2503.14476, Eq. 13), with ``L_max`` the length limit,
``L_cache`` the punishment buffer and ``f`` the penalty factor::

    R(y) = 0                                          if L <= L_max - L_cache
         = f * ((L_max - L_cache) - L) / L_cache      if L_max - L_cache < L <= L_max
         = -1                                         if L > L_max

It is meant to be added to the correctness reward. As in verl (``overlong_buffer.penalty_factor``, 1.0 in the DAPO
recipe), ``f`` scales the linear middle branch, which reaches ``-f`` at ``L = L_max``; the paper's ``-1`` beyond the
limit is kept as is. Generation stops at ``max_completion_length``, so when ``L_max`` is that limit a truncated
completion gets ``-f`` and the last branch never applies. Example (``L_max = 20480``, ``L_cache = 4096``, the DAPO
recipe): ``L = 16000 -> 0``, ``16384 -> 0``, ``18000 -> -0.39453125``, ``20480 -> -1``, ``21000 -> -1``.

**Its weight against correctness.** DAPO adds it to a ±1 correctness reward (range 2), so a truncated answer loses
half the gap between right and wrong. Added to a 0/1 accuracy reward (range 1) the same punishment weighs twice as
much. ``correctness_range`` (default 2, DAPO's) multiplies the whole punishment by ``correctness_range / 2``: with
``correctness_range=1`` and 0/1 correctness, every total reward is ``(DAPO's total + 1) / 2``, an affine map of
DAPO's, so GRPO's group-normalised advantages are DAPO's (Dr. GRPO's unscaled ones are exactly half).
:func:`get_dapo_soft_overlong_punishment` sets DAPO's proportions for any limit: ``L_cache = L_max / 5``
(4096 of 20480) and the punishment scaled to the correctness reward's range.

**Correctness-gated brevity reward**, with ``C`` the length budget (the generation limit, not the padded width)::

    r(o) = 1 - L / C   (clamped to [0, 1])   if the answer is correct
         = 0                                 if it is wrong
         = None                              if correctness is unknown (the sample is not scored)

This is reward shaping, not DRPO. It belongs with the length penalties that are added to the correctness reward and
only ever reward brevity in a correct answer: Kimi k1.5's (Kimi Team 2025, arXiv 2501.12599: a correct
answer gets ``0.5 - (L - L_min)/(L_max - L_min)`` relative to its group's shortest and longest, a wrong one at most
0) and Arora & Zanette's (2025, arXiv 2502.04463: correctness times a length discount); this one measures length
against the fixed budget C instead of the group. Its values are DRPO's ``r_l(o)`` (Li et al. 2025,
arXiv 2510.04474), but DRPO never adds them to the reward: it only compares correct answers with each other
(``policy_loss="drpo"``, or ``advantage_estimator="drpo_length"`` for GRPO's advantages). Added to GRPO's reward it
can give a long *correct* answer a negative advantage, the failure DRPO was built to fix: a group with correct
answers of 90, 10 and 20 tokens and a wrong one, C = 100, has totals ``1.1, 1.9, 1.8, 0`` (mean 1.2), so the
90-token correct answer gets ``1.1 - 1.2 = -0.1`` before scaling and is pushed down.

A short wrong answer never beats a long right one. Correctness comes from an accuracy reward with TRL's signature
(``trl_reasoning.rewards.accuracy_reward`` by default): a value ``>= correct_threshold`` is correct.

Both factories return instances of small classes rather than closures, so the rewards can be pickled and sent to
reward worker processes.
"""

import importlib
import math
import numbers
from collections.abc import Callable, Sequence


def _check_positive_int(name: str, value, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer number of tokens, got {value!r}; {fix}")


def _lengths(reward_name: str, completion_ids, completions) -> list[int]:
    if completion_ids is None:
        raise ValueError(
            f"{reward_name} needs the `completion_ids` keyword argument (one list of token ids per completion). "
            "TRL's GRPOTrainer passes `completion_ids` to every reward function; when you call the reward yourself, "
            "pass completion_ids=[[...], ...]."
        )
    if isinstance(completion_ids, (str, bytes)) or not isinstance(completion_ids, Sequence):
        raise TypeError(f"completion_ids must be a list of token-id lists, got {type(completion_ids).__name__}")
    if completions is not None and len(completions) != len(completion_ids):
        raise ValueError(
            f"{reward_name} got {len(completions)} completions but {len(completion_ids)} completion_ids; "
            "pass one token-id list per completion"
        )
    return [len(ids) for ids in completion_ids]


DAPO_MAX_RESPONSE_LENGTH = 20480
"""DAPO's generation limit L_max (verl ``recipe/dapo``)."""
DAPO_OVERLONG_BUFFER = 4096
"""DAPO's punishment buffer L_cache: the last fifth of L_max."""


class SoftOverlongPunishment:
    """DAPO's soft overlong punishment as a picklable reward callable; see the module docstring for the formula.

    ``correctness_range`` (DAPO: 2, its ±1 correctness) multiplies the whole punishment by ``correctness_range / 2``,
    so that it keeps DAPO's weight against a correctness reward of another range (1 for 0/1 accuracy).
    """

    def __init__(
        self,
        max_completion_len: int,
        soft_punish_cache: int,
        penalty_factor: float = 1.0,
        correctness_range: float = 2.0,
    ):
        _check_positive_int(
            "max_completion_len",
            max_completion_len,
            "use the generation limit (GRPOConfig.max_completion_length), e.g. 20480",
        )
        if isinstance(soft_punish_cache, bool) or not isinstance(soft_punish_cache, numbers.Integral):
            raise ValueError(f"soft_punish_cache must be an integer number of tokens, got {soft_punish_cache!r}")
        if not 0 < soft_punish_cache <= max_completion_len:
            raise ValueError(
                f"soft_punish_cache must be in (0, max_completion_len] = (0, {max_completion_len}], got "
                f"{soft_punish_cache}; pick the length of the punishment buffer below the limit (DAPO: 4096 of 20480)"
            )
        if isinstance(penalty_factor, bool) or not isinstance(penalty_factor, numbers.Real):
            raise ValueError(f"penalty_factor must be a number, got {penalty_factor!r}")
        if not (math.isfinite(penalty_factor) and penalty_factor > 0):
            raise ValueError(
                f"penalty_factor must be a finite number > 0, got {penalty_factor!r}; DAPO uses 1.0 (to turn the "
                "punishment off, leave the reward function out)"
            )
        if isinstance(correctness_range, bool) or not isinstance(correctness_range, numbers.Real):
            raise ValueError(f"correctness_range must be a number, got {correctness_range!r}")
        if not (math.isfinite(correctness_range) and correctness_range > 0):
            raise ValueError(
                f"correctness_range must be a finite number > 0, got {correctness_range!r}; give the gap between a "
                "right and a wrong answer's correctness reward (DAPO's +1/-1: 2.0, a 0/1 accuracy reward: 1.0)"
            )
        self.max_completion_len = int(max_completion_len)
        self.soft_punish_cache = int(soft_punish_cache)
        self.penalty_factor = float(penalty_factor)
        self.correctness_range = float(correctness_range)
        self.__name__ = "soft_overlong_punishment"

    def punishment(self, length: int) -> float:
        """The punishment of one completion of ``length`` tokens."""
        expected = self.max_completion_len - self.soft_punish_cache
        scale = self.correctness_range / 2.0
        if length <= expected:
            return 0.0
        if length <= self.max_completion_len:
            return scale * self.penalty_factor * (expected - length) / self.soft_punish_cache
        return -scale

    def __call__(self, completions=None, completion_ids=None, **kwargs) -> list[float]:
        return [self.punishment(length) for length in _lengths(self.__name__, completion_ids, completions)]

    def __repr__(self) -> str:
        scaled = "" if self.correctness_range == 2.0 else f", correctness_range={self.correctness_range}"
        return (
            f"SoftOverlongPunishment(max_completion_len={self.max_completion_len}, "
            f"soft_punish_cache={self.soft_punish_cache}, penalty_factor={self.penalty_factor}{scaled})"
        )


def get_soft_overlong_punishment(
    max_completion_len: int, soft_punish_cache: int, penalty_factor: float = 1.0, correctness_range: float = 2.0
) -> SoftOverlongPunishment:
    """DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476, Eq. 13): 0 up to
    ``max_completion_len - soft_punish_cache`` tokens, then a linear penalty reaching ``-penalty_factor`` at
    ``max_completion_len``, and -1 beyond it; all of it times ``correctness_range / 2`` (1 by default, DAPO's ±1).

    Example: ``get_soft_overlong_punishment(20480, 4096)(completion_ids=[[0] * 18000])`` is ``[-0.39453125]``.
    """
    return SoftOverlongPunishment(max_completion_len, soft_punish_cache, penalty_factor, correctness_range)


def dapo_overlong_buffer(max_completion_len: int) -> int:
    """DAPO's buffer for another limit: ``L_max · 4096 / 20480 = L_max / 5`` tokens, rounded, at least 1."""
    _check_positive_int("max_completion_len", max_completion_len, "use the generation limit, e.g. 20480")
    return max(1, round(max_completion_len * DAPO_OVERLONG_BUFFER / DAPO_MAX_RESPONSE_LENGTH))


def get_dapo_soft_overlong_punishment(
    max_completion_len: int, correctness_range: float = 1.0
) -> SoftOverlongPunishment:
    """DAPO's overlong punishment in DAPO's proportions for any limit and correctness reward.

    The buffer is the last fifth of the limit (:func:`dapo_overlong_buffer`, DAPO: 4096 of 20480) and the punishment
    is scaled to the correctness reward's range: ``correctness_range=1`` (the default, a 0/1 accuracy reward) halves
    it, so a truncated answer loses half the gap between right and wrong, as with DAPO's ±1 correctness
    (``correctness_range=2`` is DAPO's reward exactly). Example: ``get_dapo_soft_overlong_punishment(20480)`` gives
    ``0`` at 16384 tokens, ``-0.197265625`` at 18000 and ``-0.5`` at 20480.
    """
    return SoftOverlongPunishment(
        max_completion_len, dapo_overlong_buffer(max_completion_len), correctness_range=correctness_range
    )


def _default_accuracy_reward(completions, **kwargs):
    try:
        rewards = importlib.import_module("trl_reasoning.rewards")
        accuracy_reward = rewards.accuracy_reward
    except (ImportError, AttributeError) as error:
        raise ImportError(
            "correct_length_reward uses trl_reasoning.rewards.accuracy_reward by default, which could not be "
            "imported; pass accuracy_reward=<a reward function (completions, solution, **kwargs) -> list[float]>"
        ) from error
    return accuracy_reward(completions=completions, **kwargs)


class CorrectLengthReward:
    """The correctness-gated brevity reward ``1 - L/C`` (0 when wrong) as a picklable reward callable.

    Reward shaping in the family of Kimi k1.5's length penalty, not DRPO (which never adds a length reward): added to
    GRPO's reward it can give a long correct answer a negative advantage. See the module docstring.
    """

    def __init__(
        self,
        max_completion_len: int,
        accuracy_reward: Callable | None = None,
        correct_threshold: float = 1.0,
    ):
        _check_positive_int(
            "max_completion_len",
            max_completion_len,
            "use the length budget C, usually GRPOConfig.max_completion_length (DRPO: 8192)",
        )
        if accuracy_reward is not None and not callable(accuracy_reward):
            raise TypeError(
                f"accuracy_reward must be a reward function (completions, solution, **kwargs) -> list[float] or "
                f"None for trl_reasoning.rewards.accuracy_reward, got {type(accuracy_reward).__name__}"
            )
        if isinstance(correct_threshold, bool) or not isinstance(correct_threshold, numbers.Real):
            raise ValueError(f"correct_threshold must be a number, got {correct_threshold!r}")
        if not math.isfinite(correct_threshold):
            raise ValueError(
                f"correct_threshold must be finite, got {correct_threshold!r}; use 1.0 for a 0/1 accuracy reward"
            )
        self.max_completion_len = int(max_completion_len)
        self.accuracy_reward = accuracy_reward
        self.correct_threshold = float(correct_threshold)
        self.__name__ = "correct_length_reward"

    def __call__(self, completions, solution=None, completion_ids=None, **kwargs) -> list[float | None]:
        lengths = _lengths(self.__name__, completion_ids, completions)
        accuracy = self.accuracy_reward or _default_accuracy_reward
        # TRL's logging hooks belong to this reward's call: the accuracy reward logs its own when TRL calls it.
        kwargs = {key: value for key, value in kwargs.items() if key not in ("log_extra", "log_metric")}
        scores = accuracy(completions=completions, solution=solution, completion_ids=completion_ids, **kwargs)
        if len(scores) != len(lengths):
            raise ValueError(
                f"the accuracy reward returned {len(scores)} values for {len(lengths)} completions; it must return "
                "one value (or None) per completion"
            )
        rewards: list[float | None] = []
        for score, length in zip(scores, lengths, strict=True):
            if score is None:
                rewards.append(None)
            elif score >= self.correct_threshold:
                rewards.append(min(1.0, max(0.0, 1.0 - length / self.max_completion_len)))
            else:
                rewards.append(0.0)
        return rewards

    def __repr__(self) -> str:
        name = "default" if self.accuracy_reward is None else getattr(self.accuracy_reward, "__name__", "custom")
        return (
            f"CorrectLengthReward(max_completion_len={self.max_completion_len}, accuracy_reward={name}, "
            f"correct_threshold={self.correct_threshold})"
        )


def get_correct_length_reward(
    max_completion_len: int, accuracy_reward: Callable | None = None, correct_threshold: float = 1.0
) -> CorrectLengthReward:
    """A correctness-gated brevity reward: ``1 - L / max_completion_len`` for a correct completion, 0 for a wrong one,
    None when the accuracy reward returns None.

    Not DRPO's method (DRPO, arXiv 2510.04474, uses these values only to weight correct answers among themselves,
    never as an added reward): added to GRPO's reward it can give a long *correct* answer a negative advantage,
    e.g. correct answers of 90, 10 and 20 tokens and a wrong one with C = 100 total ``1.1, 1.9, 1.8, 0`` and the
    90-token one sits below the group mean 1.2. For DRPO's decoupled length signal use ``policy_loss="drpo"`` or
    ``advantage_estimator="drpo_length"``. It resembles Kimi k1.5's length penalty (arXiv 2501.12599), with a fixed
    budget instead of the group's lengths.

    ``accuracy_reward`` has TRL's reward signature and is called with the same arguments as this reward; when None,
    ``trl_reasoning.rewards.accuracy_reward`` is imported at call time. A score ``>= correct_threshold`` is correct.
    """
    return CorrectLengthReward(max_completion_len, accuracy_reward, correct_threshold)

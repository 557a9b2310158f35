r"""Length rewards: DAPO's soft overlong punishment and DRPO's correctness-gated length reward.

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

**Correctness-gated length reward** (DRPO, Li et al. 2025, "Efficient Reasoning via Decoupled Reward Policy
Optimization", arXiv 2510.04474), with ``C`` the length budget (the generation limit, not the padded width)::

    r_l(o) = 1 - L / C   (clamped to [0, 1])   if the answer is correct
           = 0                                 if it is wrong
           = None                              if correctness is unknown (the sample is not scored)

Only correct answers are rewarded for brevity, so a short wrong answer never beats a long right one. Correctness
comes from an accuracy reward with TRL's signature (``trl_reasoning.rewards.accuracy_reward`` by default): a value
``>= correct_threshold`` is correct.

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


class SoftOverlongPunishment:
    """DAPO's soft overlong punishment as a picklable reward callable; see the module docstring for the formula."""

    def __init__(self, max_completion_len: int, soft_punish_cache: int, penalty_factor: float = 1.0):
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
        self.max_completion_len = int(max_completion_len)
        self.soft_punish_cache = int(soft_punish_cache)
        self.penalty_factor = float(penalty_factor)
        self.__name__ = "soft_overlong_punishment"

    def punishment(self, length: int) -> float:
        """The punishment of one completion of ``length`` tokens."""
        expected = self.max_completion_len - self.soft_punish_cache
        if length <= expected:
            return 0.0
        if length <= self.max_completion_len:
            return self.penalty_factor * (expected - length) / self.soft_punish_cache
        return -1.0

    def __call__(self, completions=None, completion_ids=None, **kwargs) -> list[float]:
        return [self.punishment(length) for length in _lengths(self.__name__, completion_ids, completions)]

    def __repr__(self) -> str:
        return (
            f"SoftOverlongPunishment(max_completion_len={self.max_completion_len}, "
            f"soft_punish_cache={self.soft_punish_cache}, penalty_factor={self.penalty_factor})"
        )


def get_soft_overlong_punishment(
    max_completion_len: int, soft_punish_cache: int, penalty_factor: float = 1.0
) -> SoftOverlongPunishment:
    """DAPO's soft overlong punishment: 0 up to ``max_completion_len - soft_punish_cache`` tokens, then a linear
    penalty reaching ``-penalty_factor`` at ``max_completion_len``, and -1 beyond it.

    Example: ``get_soft_overlong_punishment(20480, 4096)(completion_ids=[[0] * 18000])`` is ``[-0.39453125]``.
    """
    return SoftOverlongPunishment(max_completion_len, soft_punish_cache, penalty_factor)


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
    """DRPO's correctness-gated length reward as a picklable reward callable; see the module docstring."""

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
    """DRPO's length reward: ``1 - L / max_completion_len`` for a correct completion, 0 for a wrong one, None when
    the accuracy reward returns None.

    ``accuracy_reward`` has TRL's reward signature and is called with the same arguments as this reward; when None,
    ``trl_reasoning.rewards.accuracy_reward`` is imported at call time. A score ``>= correct_threshold`` is correct.
    """
    return CorrectLengthReward(max_completion_len, accuracy_reward, correct_threshold)

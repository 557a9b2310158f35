"""Named inputs of the methods: the standard ones the trainer always has, and providers that compute the others.

Every registered method (advantage estimator, policy loss, token weighting) declares the inputs it reads by name.
The trainer supplies each from one of two places:

* a **standard input** of the method's family, which the trainer has at hand when it calls the method
  (:data:`STANDARD_INPUTS`: the rewards for an estimator, the log-probs for a loss, ...);
* a registered **input provider**: a function that computes the value from the generation batch, run only when a
  configured method declares that input, once per generation batch (its result is cached and shared).

A provider's ``scope`` says what it returns: ``"sample"``, one value per sample of the *global* batch (gathered over
processes, shape (N,) in TRL's process order; estimators see all of it, token weightings and losses this process's
slice), or ``"token"``, a (B, T) tensor over this process's completion tokens. Providers may read other inputs
(``context.get(name)``) and declare parameters like methods do. Built-ins (``correct``, ``scorable``, ``lengths``,
``positive_fraction``, ``group_accuracy``, ``entropies``, ``critical_token_weights``) are registered in
:mod:`trl_reasoning.trainers.providers`; register your own with :func:`register_input_provider`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .registry import Registry


__all__ = [
    "GENERATION_INPUTS",
    "STANDARD_INPUTS",
    "InputContext",
    "InputProvider",
    "get_input_provider",
    "input_provider_names",
    "register_input_provider",
]

GENERATION_INPUTS: Mapping[str, str] = {
    "rewards": "float (N,): total reward per completion (weighted sum; NaN where every reward function gave None)",
    "rewards_per_func": "float (N, K): every reward function's value (NaN for None)",
    "reward_weights": "float (K,): the configured reward weights",
    "reward_names": "list[str] (K): the reward functions' names (as logged under rewards/<name>/mean)",
    "group_size": "int: completions per prompt; samples [k*G, (k+1)*G) form group k",
    "max_length": "int: the generation budget (max_completion_length)",
}
"""Inputs every method may read: what the trainer has once the rewards of a generation batch are in."""

SAMPLE_INPUTS = frozenset({"rewards", "rewards_per_func"})
"""The generation inputs with one row per sample of the global batch (a loss or token weighting sees its slice)."""

STANDARD_INPUTS: Mapping[str, Mapping[str, str]] = {
    "advantage estimator": dict(GENERATION_INPUTS),
    "token weighting": {
        **GENERATION_INPUTS,
        "advantages": "float (B,): this process's advantages from the estimator",
        "keep": "bool (B,): the samples the estimator keeps",
        "completion_ids": "int (B, T): the completion tokens",
        "completion_mask": "int (B, T): 1 on completion tokens",
        "tool_mask": "int (B, T) or None: 0 on tool-output tokens (multi-turn tool use)",
        "tokenizer": "the processing class's tokenizer",
        "gather": "callable: gathers a tensor over processes (accelerator.gather)",
    },
    "policy loss": {
        **GENERATION_INPUTS,
        "per_token_logps": "float (B, T): log-probs of the completion tokens under the trained policy (grad)",
        "old_per_token_logps": "float (B, T): the same under the policy that generated the batch (no grad)",
        "behavior_per_token_logps": "float (B, T): the sampling engine's log-probs (vLLM's) where reported, else old",
        "mask": "float (B, T): 1 for tokens in the loss (completion, not tool output)",
        "advantages": "float (B,) or (B, T): the estimator's advantages (per token with a token weighting)",
    },
}
"""Per family, the inputs the trainer passes without a provider, and what they hold."""


@dataclass(frozen=True)
class InputProvider:
    """A registered input: how to compute it from an :class:`InputContext`.

    Attributes:
        name: the input's name, as methods declare it.
        compute: ``compute(context) -> value``.
        scope: ``"sample"`` (one value per sample of the global batch, (N,)) or ``"token"`` ((B, T), this process).
        description: one line for the docs and error messages.
        params: a :class:`~trl_reasoning.parameters.MethodParams` class of the provider's own parameters (config
            fields), or None; ``context.params(name)`` gives them.
        setup: ``setup(model, params, args) -> state``, run once when the trainer is built, before TRL wraps the model
            (e.g. to load adapters); ``context.state(name)`` gives the state.
    """

    name: str
    compute: Callable[[InputContext], Any]
    scope: Literal["sample", "token"]
    description: str
    params: type | None = None
    setup: Callable[[Any, Any, Any], Any] | None = None


_PROVIDERS: Registry[InputProvider] = Registry("input provider", "inputs")


def register_input_provider(
    name: str,
    *,
    scope: Literal["sample", "token"],
    description: str,
    params: type | None = None,
    setup: Callable[[Any, Any, Any], Any] | None = None,
) -> Callable[[Callable], Callable]:
    """Register ``compute(context)`` as the provider of the input ``name`` (a decorator; refuses duplicates).

    A name that is a standard input of some family cannot be registered (it would shadow what the trainer passes).
    """
    if scope not in ("sample", "token"):
        raise ValueError(f"An input provider's scope must be 'sample' or 'token', got {scope!r}.")
    for family, names in STANDARD_INPUTS.items():
        if name in names:
            raise ValueError(f"{name!r} is a standard input of the {family} family; pick another provider name.")
    if params is not None:
        params.owner = f"input provider {name!r}"

    def make_entry(fn: Callable) -> InputProvider:
        return InputProvider(name, fn, scope, description, params, setup)

    return _PROVIDERS.decorator(name, make_entry)


def get_input_provider(name: str) -> InputProvider:
    """Look up a provider; an unknown name raises ``ValueError`` listing the registered ones."""
    return _PROVIDERS.get(name)


def input_provider_names() -> list[str]:
    return _PROVIDERS.names()


def available_inputs(family: str) -> set[str]:
    """What a method of ``family`` may declare: its standard inputs and every registered provider."""
    return set(STANDARD_INPUTS[family]) | set(_PROVIDERS.names())


def check_inputs(method: Any, overridden: Iterable[str] = ()) -> None:
    """Raise if ``method`` requires an input that neither its family's standard inputs, a provider nor one of the
    ``overridden`` names (set by a ``*_kwargs`` field) supplies."""
    available = available_inputs(method.family) | set(overridden)
    missing = [name for name in method.required_inputs if name not in available]
    if missing:
        raise ValueError(
            f"{method.family.capitalize()} {method.name!r} reads {missing}, which is neither a standard input of its "
            f"family ({sorted(STANDARD_INPUTS[method.family])}) nor a registered input provider "
            f"({input_provider_names()}). Register a provider with `trl_reasoning.register_input_provider`, or, if "
            "it is a parameter of the method, declare it in the method's `params` class."
        )


@dataclass
class InputContext:
    """What providers compute from: one generation batch, seen by this process.

    Attributes:
        trainer: the trainer (its model, accelerator, args, processing class).
        batch: this process's generation output (TRL's dict: prompt_ids, completion_ids, completion_mask, ...).
        mode: ``"train"`` or ``"eval"``.
        local: the slice of the global batch that is this process's.
        values: inputs computed so far (the standard ones, then cached provider results).
        params_by_provider: the configured parameters of each provider that has some.
        states: each provider's ``setup`` result.
    """

    trainer: Any
    batch: dict[str, Any]
    mode: str
    local: slice
    values: dict[str, Any] = field(default_factory=dict)
    params_by_provider: Mapping[str, Any] = field(default_factory=dict)
    states: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The input ``name``: a value already here, else its provider's result (computed once, then cached)."""
        if name not in self.values:
            self.values[name] = get_input_provider(name).compute(self)
        return self.values[name]

    def local_value(self, name: str) -> Any:
        """The input as this process sees it: the local slice of a sample-scope provider's global values."""
        value = self.get(name)
        per_sample = name in SAMPLE_INPUTS or (name in _PROVIDERS and get_input_provider(name).scope == "sample")
        return value[self.local] if per_sample else value

    def params(self, name: str) -> Any:
        return self.params_by_provider.get(name)

    def state(self, name: str) -> Any:
        return self.states.get(name)

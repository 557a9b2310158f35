"""ReasoningGRPOConfig: TRL's GRPOConfig plus the fields that pick the methods, and each method's parameters.

The fields that *pick* a method (``advantage_estimator``, ``policy_loss``, ``token_weighting``) and the trainer's own
options are declared here. Every method parameter is declared once, in its method's module (a
:class:`~trl_reasoning.parameters.MethodParams` dataclass), and becomes a field of this config from there: a YAML key,
a command-line flag and a line of ``--help``. A method receives only the parameters it declares
(:meth:`ReasoningGRPOConfig.method_params`).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from .. import manifest
from ..inputs import get_input_provider, input_provider_names
from ..losses import TRL_POLICY_LOSS
from ..parameters import add_config_fields, fields_docstring
from ..registry import Method


# TRL loss types that normalise by a token count (so a dropped sample, whose tokens are masked out, leaves the
# denominator). The others average over sequences or divide by a constant.
TOKEN_LEVEL_LOSS_TYPES = ("dapo", "bnpo", "cispo", "vespo")

# Values of `dropped_samples`: how the samples an estimator drops leave the update (see dropped_samples.py).
DROPPED_SAMPLES = ("mask", "remove")

# Old values of `token_weighting`, still accepted with a FutureWarning.
_TOKEN_WEIGHTING_ALIASES = {
    "entropy": (
        "entropy_token_scale",
        "token_weighting='entropy' is the old name of 'entropy_token_scale' (EMPG's scale g on every token, without "
        "its steps, future-clarity bonus or re-centring) and will be removed; for EMPG as the paper defines it use "
        "token_weighting='empg'.",
    )
}

# The TRL options that a registered policy loss replaces, with their defaults.
_TRL_LOSS_OPTIONS = {
    "beta": 0.0,
    "top_entropy_quantile": 1.0,
    "off_policy_mask_threshold": None,
    "use_liger_kernel": False,
    "entropy_coef": 0.0,
    "use_adaptive_entropy": False,
}

# Per family: the field that selects its method and the field of a custom method's parameters.
_FAMILY_FIELDS = {family: (selector, f"{selector}_kwargs") for family, selector in manifest.SELECTOR.items()}


@dataclass
@add_config_fields(manifest.builtin_params())
class ReasoningGRPOConfig(GRPOConfig):
    r"""
    Configuration for [`ReasoningGRPOTrainer`]: every field of `trl.GRPOConfig`, plus the fields that pick the
    advantage estimator, the policy loss and the token weighting, and every built-in method's parameters (one field
    each, declared in the method's module). `ReasoningGRPOConfig.__doc__` and `--help` list them all with their help.
    """

    advantage_estimator: str = field(
        default="grpo",
        metadata={"help": manifest.selector_help("advantage estimator")},
    )
    correctness_reward: str | None = field(
        default=None,
        metadata={
            "help": "Name or index of the reward function whose value decides correctness (the names are those "
            "logged as `rewards/<name>/mean`). Default: the first reward function."
        },
    )
    correct_threshold: float = field(
        default=1.0,
        metadata={"help": "A completion is correct when its correctness reward is >= this value."},
    )
    dropped_samples: str = field(
        default="mask",
        metadata={
            "help": "What happens to samples the estimator drops (PSR's incorrect, NSR's correct ones). 'mask' "
            "(default): they stay in the batch with no loss tokens and every optimizer step is taken. 'remove' (the "
            "official PSR/NSR code): the kept samples are packed into the first ceil(K / M) optimizer steps of the "
            "generation batch (K kept, M samples per step over all processes), the steps left empty are skipped "
            "(no optimizer update; the LR schedule and global_step still advance) and a last partial step is scaled "
            "by its share of a full one. 'remove' needs steps_per_generation to be a multiple of "
            "gradient_accumulation_steps and does not run under DeepSpeed.",
            "choices": list(DROPPED_SAMPLES),
        },
    )
    advantage_estimator_kwargs: dict | str | None = field(
        default=None,
        metadata={
            "help": "Parameters of the advantage estimator by parameter name, as a dict or a JSON string: for a custom "
            "estimator (its `params` class) or to override a built-in's config fields. Only parameters the selected "
            "estimator declares are accepted."
        },
    )
    policy_loss: str = field(
        default=TRL_POLICY_LOSS,
        metadata={"help": manifest.selector_help("policy loss")},
    )
    policy_loss_kwargs: dict | str | None = field(
        default=None,
        metadata={
            "help": "Parameters of the policy loss by parameter name, as a dict or a JSON string (for a custom loss, or "
            "to override a built-in's config fields). Only parameters the selected loss declares are accepted."
        },
    )
    token_weighting: str | None = field(
        default=None,
        metadata={
            "help": manifest.selector_help("token weighting"),
            "choices": [None, *manifest.names("token weighting"), *_TOKEN_WEIGHTING_ALIASES],
        },
    )
    token_weighting_kwargs: dict | str | None = field(
        default=None,
        metadata={
            "help": "Parameters of the token weighting by parameter name, as a dict or a JSON string (for a custom "
            "weighting, or to override a built-in's config fields)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self._post_init_own_fields()

    def _post_init_own_fields(self) -> None:
        """Normalise and check the fields this class adds (also run when a `trl.GRPOConfig` is upgraded)."""
        if self.token_weighting in ("none", "None", ""):
            self.token_weighting = None  # the CLI passes strings
        if self.token_weighting in _TOKEN_WEIGHTING_ALIASES:
            self.token_weighting, message = _TOKEN_WEIGHTING_ALIASES[self.token_weighting]
            warnings.warn(message, FutureWarning, stacklevel=3)
        for name in ("advantage_estimator_kwargs", "policy_loss_kwargs", "token_weighting_kwargs"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, json.loads(getattr(self, name)))
        if isinstance(self.correctness_reward, str) and self.correctness_reward.lstrip("-").isdigit():
            self.correctness_reward = int(self.correctness_reward)  # the CLI passes indices as strings
        if not math.isfinite(self.correct_threshold):
            raise ValueError(f"correct_threshold={self.correct_threshold!r} must be a finite number, e.g. 1.0.")
        if isinstance(self.correctness_reward, int) and self.correctness_reward < 0:
            raise ValueError(
                f"correctness_reward={self.correctness_reward} must be a reward function's name or a non-negative "
                "index into `reward_funcs`."
            )

        estimator, loss, weighting = (self.selected(family) for family in _FAMILY_FIELDS)
        self._check_parameters()
        if estimator.drops_samples and self.loss_type not in TOKEN_LEVEL_LOSS_TYPES:
            raise ValueError(
                f"advantage_estimator={self.advantage_estimator!r} drops samples from the loss, which needs a "
                f"token-level loss_type so they leave the denominator; got loss_type={self.loss_type!r}. Set "
                f"loss_type to one of {list(TOKEN_LEVEL_LOSS_TYPES)} ('dapo', TRL's default, is the token-mean the "
                "paper uses)."
            )
        if estimator.name != "grpo" and self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                f"multi_objective_aggregation={self.multi_objective_aggregation!r} only applies to "
                f"advantage_estimator='grpo'; {self.advantage_estimator!r} reads the rewards directly. Leave "
                "multi_objective_aggregation at 'sum_then_normalize'."
            )
        if loss is not None:
            self._check_policy_loss(loss, estimator)
        if weighting is not None and loss is not None and not (loss.takes("advantages") and loss.token_advantages):
            raise ValueError(
                f"token_weighting={self.token_weighting!r} turns the advantages into per-token ones, but policy_loss="
                f"{self.policy_loss!r} does not train on per-token advantages (it "
                f"{'reads them per sample' if loss.takes('advantages') else 'does not read advantages'}). Use "
                "policy_loss='trl', or a loss registered with token_advantages=True."
            )
        self._check_dropped_samples()

    # ----------------------------------------------------------------------------------------------------------------
    # the configured methods and their parameters

    def selected(self, family: str) -> Method | None:
        """The configured method of ``family`` (``"advantage estimator"``, ``"policy loss"``, ``"token weighting"``),
        or None (``policy_loss="trl"``, no ``token_weighting``); an unknown name raises, listing the valid ones."""
        field_name = _FAMILY_FIELDS[family][0]
        name = getattr(self, field_name)
        if name is None or (family == "policy loss" and name == TRL_POLICY_LOSS):
            return None
        if name not in manifest.names(family):
            valid = manifest.names(family)
            if family == "policy loss":
                valid = [TRL_POLICY_LOSS, *valid]
            register = {"advantage estimator": "register_advantage_estimator", "policy loss": "register_policy_loss"}
            raise ValueError(
                f"{field_name}={name!r} is not a registered {family}. Valid values: {valid} (register your own with "
                f"`trl_reasoning.{register.get(family, 'register_token_weighting')}`)."
            )
        return manifest.get(family, name)

    def method_params(self, family: str) -> Any:
        """The parameters of the configured method of ``family``: its config fields, then its ``*_kwargs``."""
        method = self.selected(family)
        if method is None:
            return None
        kwargs_field = _FAMILY_FIELDS[family][1]
        return method.make_params(self, getattr(self, kwargs_field), source=kwargs_field)

    def provider_params(self, name: str) -> Any:
        """The parameters of the input provider ``name`` (from its config fields), or None if it declares none."""
        provider = get_input_provider(name)
        return provider.params.from_config(self) if provider.params is not None else None

    def _check_parameters(self) -> None:
        # Every built-in method's fields are checked (a wrong value is an error even while its method is not
        # selected); the selected methods' own `*_kwargs` and required settings too.
        for family in _FAMILY_FIELDS:
            selected = self.selected(family)
            for method in manifest.methods(family):
                if method.params is not None:
                    self._store_parsed(method.params.from_config(self))
            if selected is not None:
                self.method_params(family)
                for name in selected.inputs:
                    if name in input_provider_names() and get_input_provider(name).params is not None:
                        self.provider_params(name).validate_selected()

    def _store_parsed(self, params: Any) -> None:
        # A parameter's `parse` (e.g. "\\n" typed on a command line → a newline) applies to the config field too.
        for spec in params.specs():
            if not spec.from_trl and hasattr(self, spec.config_name):
                setattr(self, spec.config_name, getattr(params, spec.name))

    def _check_policy_loss(self, loss: Method, estimator: Method) -> None:
        used = [name for name, default in _TRL_LOSS_OPTIONS.items() if getattr(self, name) != default]
        if used:
            defaults = ", ".join(f"{name}={default!r}" for name, default in _TRL_LOSS_OPTIONS.items())
            raise ValueError(
                f"policy_loss={self.policy_loss!r} replaces TRL's loss, so {used} (options of TRL's loss) would be "
                f"ignored. Leave them at their defaults ({defaults}), or use policy_loss='trl'."
            )
        if not loss.takes("advantages") and estimator.name != "grpo":
            raise ValueError(
                f"policy_loss={self.policy_loss!r} does not use advantages, so advantage_estimator="
                f"{self.advantage_estimator!r} would have no effect. Leave advantage_estimator at 'grpo', or use "
                "policy_loss='trl' with the estimator."
            )
        if loss.needs_whole_groups:
            self._check_whole_groups(loss.name)

    def _check_whole_groups(self, loss_name: str) -> None:
        # Each loss call must see whole groups: the trainer shuffles and splits the generation batch by group, which
        # works when every per-device batch holds whole groups.
        checks = [("per_device_train_batch_size", self.per_device_train_batch_size, self.num_generations)]
        if self.eval_strategy != "no":
            eval_group = self.num_generations_eval or self.num_generations
            checks.append(("per_device_eval_batch_size", self.per_device_eval_batch_size, eval_group))
        for name, batch_size, group_size in checks:
            if batch_size % group_size != 0:
                raise ValueError(
                    f"policy_loss={loss_name!r} couples the completions of a prompt, so each loss call needs whole "
                    f"groups: {name}={batch_size} must be a multiple of the group size {group_size}. Set {name} to "
                    f"a multiple of {group_size} (e.g. {group_size * max(1, batch_size // group_size)})."
                )

    def _check_dropped_samples(self) -> None:
        if self.dropped_samples not in DROPPED_SAMPLES:
            raise ValueError(
                f"dropped_samples={self.dropped_samples!r} is invalid. Valid values: {list(DROPPED_SAMPLES)}."
            )
        if self.dropped_samples != "remove":
            return
        if self.steps_per_generation % self.gradient_accumulation_steps != 0:
            raise ValueError(
                f"dropped_samples='remove' skips whole optimizer steps, so a generation batch must be a whole number "
                f"of them: steps_per_generation={self.steps_per_generation} is not a multiple of "
                f"gradient_accumulation_steps={self.gradient_accumulation_steps}. Set steps_per_generation to a "
                "multiple of gradient_accumulation_steps (or use dropped_samples='mask')."
            )
        if self.deepspeed:
            raise ValueError(
                "dropped_samples='remove' cannot skip an optimizer step under DeepSpeed (the engine steps inside "
                "backward); launch with DDP or FSDP, or use dropped_samples='mask'."
            )

    # ----------------------------------------------------------------------------------------------------------------
    # the old accessors (each now gives the selected method's own parameters only)

    def advantage_kwargs(self) -> dict[str, Any]:
        """The configured estimator's parameters as keyword arguments."""
        params = self.method_params("advantage estimator")
        return params.as_kwargs() if params is not None else {}

    def policy_loss_kwargs_from_config(self) -> dict[str, Any]:
        """The configured policy loss's parameters as keyword arguments (empty for ``policy_loss="trl"``)."""
        params = self.method_params("policy loss")
        return params.as_kwargs() if params is not None else {}


_OWN_FIELDS = [
    name
    for name in ReasoningGRPOConfig.__dataclass_fields__
    if name not in GRPOConfig.__dataclass_fields__ or name in ("advantage_estimator",)
]
ReasoningGRPOConfig.__doc__ = (
    (ReasoningGRPOConfig.__doc__ or "") + "\n" + fields_docstring(ReasoningGRPOConfig, _OWN_FIELDS)
)

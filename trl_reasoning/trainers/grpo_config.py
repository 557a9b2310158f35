"""ReasoningGRPOConfig: TRL's GRPOConfig plus the fields that pick and parameterise an advantage estimator."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from ..advantages import advantage_estimator_names, get_advantage_estimator
from ..losses import TRL_POLICY_LOSS, get_policy_loss, policy_loss_names
from ..losses.topr import RATIO_LEVELS, TAPER_BY


# TRL loss types that normalise by a token count (so a dropped sample, whose tokens are masked out, leaves the
# denominator). The others average over sequences or divide by a constant.
TOKEN_LEVEL_LOSS_TYPES = ("dapo", "bnpo", "cispo", "vespo")

# Values of `dropped_samples`: how the samples an estimator drops leave the update (see dropped_samples.py).
DROPPED_SAMPLES = ("mask", "remove")
# Values of `token_weighting` (besides None). "entropy" is the old name of "entropy_token_scale" (still accepted).
TOKEN_WEIGHTINGS = ("critical_tokens", "empg", "entropy_token_scale")
# How `token_weighting="empg"` splits a completion into steps.
EMPG_STEPS = ("auto", "turns", "delimiter")


@dataclass
class ReasoningGRPOConfig(GRPOConfig):
    r"""
    Configuration for [`ReasoningGRPOTrainer`]: every field of `trl.GRPOConfig`, plus:

    Parameters:
        advantage_estimator (`str`, defaults to `"grpo"`):
            Name of a registered advantage estimator (`trl_reasoning.advantage_estimator_names()`). Built-ins:
            `"grpo"` (TRL's own computation, bit-for-bit), `"psr"`, `"nsr"`, `"w_reinforce"`, `"drpo_length"`,
            `"beta_norm"`.
        positive_weight (`float`, defaults to `0.1`):
            λ of W-REINFORCE: the advantage of a correct sample (incorrect samples get −1). Must be >= 0.
        correctness_reward (`str`, `int` or `None`, defaults to `None`):
            Name (as logged under `rewards/<name>/mean`) or index of the reward function that decides whether a
            completion is correct. `None` means the first reward function.
        correct_threshold (`float`, defaults to `1.0`):
            A completion is correct when its correctness reward is `>= correct_threshold`.
        dropped_samples (`str`, defaults to `"mask"`):
            What happens to the samples an estimator drops (PSR's incorrect, NSR's correct ones): `"mask"` keeps
            them in the batch with no loss tokens, so every optimizer step is taken; `"remove"` (the official
            PSR/NSR code) packs the kept samples of the generation batch into the first `ceil(K / M)` optimizer
            steps (`K` kept samples, `M` per step over all processes), skips the steps left empty (no optimizer
            update; the learning-rate schedule and `global_step` still advance) and scales a last partial step by
            its share of a full one. `"remove"` needs `steps_per_generation` to be a multiple of
            `gradient_accumulation_steps` and does not run under DeepSpeed.
        advantage_estimator_kwargs (`dict` or `None`, defaults to `None`):
            Extra keyword arguments for a custom estimator; they override the built-in fields of the same name.
        policy_loss (`str`, defaults to `"trl"`):
            `"trl"` keeps TRL's own loss (`loss_type`, clipping, KL to a reference model). Otherwise the name of a
            registered policy loss (`trl_reasoning.policy_loss_names()`): `"topr"`, `"drpo"`.
        policy_loss_kwargs (`dict` or `None`, defaults to `None`):
            Extra keyword arguments for a custom policy loss; they override the built-in fields of the same name.
        length_lambda (`float`, defaults to `0.1`):
            DRPO's λ, for `policy_loss="drpo"` and `advantage_estimator="drpo_length"`.
        drpo_tau (`float`, defaults to `10.0`):
            DRPO's temperature τ of the log-mean-exp over incorrect answers.
        drpo_kl_delta (`float`, defaults to `1e-4`):
            DRPO's KL budget δ against the sampling policy.
        drpo_kl_beta (`float`, defaults to `1e3`):
            DRPO's KL penalty weight β.
        topr_baseline (`float`, defaults to `0.0`):
            TOPR's baseline c: the loss uses `R − c`.
        topr_target_positive_fraction (`float` or `None`, defaults to `None`):
            The effective share of positives TOPR's baseline should produce, recomputed per generation batch (with
            `topr_reward_source="reward"`, solved from each loss call's rewards as `Σ[R − c]₊ / Σ|R − c|`).
        topr_reward_source (`str`, defaults to `"signed_correctness"`):
            The rewards TOPR trains on: ±1 correctness (the paper's math experiments) or `"reward"` (the total
            reward; with a baseline it needs `topr_taper_by="coefficient"`).
        topr_ratio_level (`str`, defaults to `"sequence"`):
            One importance ratio per completion (the paper) or per token (`"token"`).
        topr_taper_by (`str`, defaults to `"reward"`):
            Which samples are tapered: `R < 0` (the paper) or `"coefficient"` (`R − c < 0`, required with
            `topr_reward_source="reward"` and a baseline).
        beta_norm_decompose (`bool`, defaults to `False`):
            BNPO's advantage decomposition: one Beta-normalised advantage per reward function, then averaged.
        token_weighting (`str` or `None`, defaults to `None`):
            Per-token advantages for TRL's loss: `"critical_tokens"` (`A_i · w_{i,t}`, incorrect completions' tokens
            weighted by `1 − s_t` from the two contrastive adapters, cDPO's weights brought to GRPO), `"empg"` (EMPG
            as the paper defines it: per step, `g(H_t)·A_i + ζ·f(H_{t+1})`, re-centred to zero mean over the batch's
            steps) or `"entropy_token_scale"` (`A_i · g(H_t)` with every token a step: EMPG's scale alone; `"entropy"`
            is its old name, still accepted with a warning).
        critical_positive_adapter (`str` or `None`, defaults to `None`):
            Path of the positive contrastive LoRA adapter, for `token_weighting="critical_tokens"`.
        critical_negative_adapter (`str` or `None`, defaults to `None`):
            Path of the negative contrastive LoRA adapter, for `token_weighting="critical_tokens"`.
        critical_beta (`float`, defaults to `1.0`):
            β of the contrastive estimation, for `token_weighting="critical_tokens"`.
        entropy_modulation_k (`float`, defaults to `1.0`):
            EMPG's k in the scale `exp(−k·H̃)`, for `token_weighting="empg"` and `"entropy_token_scale"`.
        empg_future_k (`float`, defaults to `1.0`):
            EMPG's k′ in the future-clarity term `exp(−k′·H̃)`, for `token_weighting="empg"`.
        empg_zeta (`float`, defaults to `0.1`):
            EMPG's ζ ≥ 0, the weight of the future-clarity bonus (the authors' pseudocode: 0.1; 0 turns it off).
        empg_steps (`str`, defaults to `"auto"`):
            What a step is for `token_weighting="empg"`: `"turns"` (one assistant turn, the runs of model tokens
            between tool outputs; the paper), `"delimiter"` (reasoning steps split at `empg_step_delimiter`) or
            `"auto"` (turns when the batch has tool output, else the delimiter).
        empg_step_delimiter (`str`, defaults to `"\n\n"`):
            The text that ends a reasoning step for `empg_steps="delimiter"` (a blank line); the escapes `\n` and
            `\t` are decoded (as typed on a command line).
    """

    advantage_estimator: str = field(
        default="grpo",
        metadata={
            "help": "Advantage estimator, by registered name. Built-ins: 'grpo' (TRL's group-normalised advantages, "
            "bit-for-bit; honours `scale_rewards` and `multi_objective_aggregation`), 'psr' (+1 on correct samples, "
            "incorrect ones dropped), 'nsr' (-1 on incorrect samples, correct ones dropped), 'w_reinforce' "
            "(+positive_weight on correct, -1 on incorrect). Register your own with "
            "`trl_reasoning.register_advantage_estimator`."
        },
    )
    positive_weight: float = field(
        default=0.1,
        metadata={
            "help": "W-REINFORCE's lambda: advantage of a correct sample (incorrect samples get -1). Must be >= 0; "
            "0 is NSR, 1 is plain REINFORCE. The paper recommends 0.1."
        },
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
            "help": "Extra keyword arguments passed to the advantage estimator (for custom estimators), as a dict "
            "or a JSON string. They override built-in fields of the same name."
        },
    )

    policy_loss: str = field(
        default=TRL_POLICY_LOSS,
        metadata={
            "help": "Policy loss. 'trl' (default) keeps TRL's own loss, selected by `loss_type`. Built-ins: 'topr' "
            "(Tapered Off-Policy REINFORCE, arXiv 2503.14286), 'drpo' (Decoupled Reward Policy Optimization, arXiv "
            "2510.04474). Register your own with `trl_reasoning.register_policy_loss`."
        },
    )
    policy_loss_kwargs: dict | str | None = field(
        default=None,
        metadata={
            "help": "Extra keyword arguments passed to the policy loss (for custom losses or less common options such "
            "as DRPO's `negative_pooling`/`kl_estimator`), as a dict or a JSON string. They override built-in fields "
            "of the same name."
        },
    )
    length_lambda: float = field(
        default=0.1,
        metadata={
            "help": "DRPO's lambda (> 0), used by policy_loss='drpo' and advantage_estimator='drpo_length': correct "
            "completions are weighted by softmax(-length / (lambda * max_completion_length)) within their group. "
            "Smaller is a stronger preference for short correct answers; the paper uses 0.1."
        },
    )
    drpo_tau: float = field(
        default=10.0,
        metadata={"help": "DRPO's temperature tau (> 0) of the log-mean-exp over a group's incorrect completions."},
    )
    drpo_kl_delta: float = field(
        default=1e-4,
        metadata={"help": "DRPO's KL budget delta (>= 0) against the sampling policy."},
    )
    drpo_kl_beta: float = field(
        default=1e3,
        metadata={"help": "DRPO's penalty weight beta (>= 0) of the squared-hinge KL constraint (0 disables it)."},
    )
    topr_baseline: float = field(
        default=0.0,
        metadata={
            "help": "TOPR's baseline c: the loss uses (R - c). With rewards +1/-1 it sets the effective share of "
            "positives p(1-c)/(1+(1-2p)c). Keep it in (-1, 1)."
        },
    )
    topr_target_positive_fraction: float | None = field(
        default=None,
        metadata={
            "help": "If set (in (0, 1)), TOPR's baseline is recomputed for every generation batch so that the "
            "effective share of positives equals this value (the paper reports its best off-policy results around "
            "0.1-0.2). With topr_reward_source='reward' it is solved from each loss call's rewards as "
            "sum[R - c]_+ / sum|R - c| = target. Exclusive with a non-zero topr_baseline."
        },
    )
    topr_reward_source: str = field(
        default="signed_correctness",
        metadata={
            "help": "Rewards TOPR trains on: 'signed_correctness' (+1 correct, -1 incorrect, as in the paper's math "
            "experiments) or 'reward' (the total reward as given; with a baseline, set topr_taper_by='coefficient' "
            "so that samples with 0 <= R < c are tapered too)."
        },
    )
    topr_ratio_level: str = field(
        default="sequence",
        metadata={
            "help": "'sequence' (the paper: one ratio pi(y)/mu(y) per completion) or 'token' (each token of a "
            "negative tapered by its own ratio, as in third-party implementations)."
        },
    )
    topr_taper_by: str = field(
        default="reward",
        metadata={
            "help": "Which samples TOPR tapers: 'reward' (R < 0, the paper) or 'coefficient' (R - c < 0, which keeps "
            "the loss bounded with 0/1 or shaped rewards (required with topr_reward_source='reward' and a baseline) "
            "or a baseline outside (-1, 1))."
        },
    )
    beta_norm_decompose: bool = field(
        default=False,
        metadata={
            "help": "BNPO's advantage decomposition (advantage_estimator='beta_norm'): one Beta-normalised advantage "
            "per reward function, each with its own alpha and beta, averaged with the reward weights."
        },
    )

    token_weighting: str | None = field(
        default=None,
        metadata={
            "help": "Per-token advantages for TRL's loss (a (B, T) tensor instead of one A_i per completion). None "
            "(default): none. 'critical_tokens': the tokens of incorrect completions get A_i * (1 - s_t), s_t their "
            "contrastive-estimation score under the positive and negative adapters (cDPO, arXiv 2411.19943; needs "
            "critical_positive_adapter and critical_negative_adapter); correct completions keep A_i. 'empg': "
            "Entropy-Modulated Policy Gradients (arXiv 2509.09265) as the paper defines them: each step (see "
            "empg_steps) gets g(H_t) * A_i + zeta * f(H_{t+1}), then the batch's mean over steps is subtracted; H the "
            "step's mean token entropy, min-max normalised over the generation batch. 'entropy_token_scale': every "
            "token gets A_i * exp(-k H~_t) / mean, EMPG's scale alone with each token a step (no bonus, no "
            "re-centring). 'entropy' is the old name of 'entropy_token_scale'.",
            "choices": [None, *TOKEN_WEIGHTINGS, "entropy"],
        },
    )
    critical_positive_adapter: str | None = field(
        default=None,
        metadata={"help": "token_weighting='critical_tokens': path of the positive contrastive LoRA adapter."},
    )
    critical_negative_adapter: str | None = field(
        default=None,
        metadata={"help": "token_weighting='critical_tokens': path of the negative contrastive LoRA adapter."},
    )
    critical_beta: float = field(
        default=1.0,
        metadata={"help": "beta of the contrastive estimation softmax((1+beta) z_pos - beta z_neg); >= 0 (paper: 1)."},
    )
    entropy_modulation_k: float = field(
        default=1.0,
        metadata={
            "help": "EMPG's k > 0 in the scale exp(-k H~), for token_weighting='empg' and 'entropy_token_scale' (the "
            "paper fixes k = 1)."
        },
    )
    empg_future_k: float = field(
        default=1.0,
        metadata={
            "help": "token_weighting='empg': k' > 0 in the future-clarity term f = exp(-k' H~) (the paper fixes 1)."
        },
    )
    empg_zeta: float = field(
        default=0.1,
        metadata={
            "help": "token_weighting='empg': zeta >= 0, weight of the future-clarity bonus zeta * f(H_{t+1}). 0.1 as "
            "in the authors' pseudocode (empgseed-seed.github.io); 0 turns the bonus off."
        },
    )
    empg_steps: str = field(
        default="auto",
        metadata={
            "help": "token_weighting='empg': what a step is. 'turns': one assistant turn (the runs of model tokens "
            "between tool outputs, the paper's agent steps; a single-turn completion is one step). 'delimiter': "
            "reasoning steps ending at each run of empg_step_delimiter (tool outputs also end a step). 'auto' "
            "(default): 'turns' when the batch has tool output (a tool_mask), else 'delimiter'.",
            "choices": list(EMPG_STEPS),
        },
    )
    empg_step_delimiter: str = field(
        default="\n\n",
        metadata={
            "help": "token_weighting='empg': the text that ends a reasoning step (default a blank line). The escapes "
            "\\n and \\t are decoded, so `--empg_step_delimiter '\\n\\n'` on the command line is a blank line."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self._post_init_own_fields()

    def _post_init_own_fields(self) -> None:
        """Normalise and check the fields this class adds (also run when a `trl.GRPOConfig` is upgraded)."""
        if self.token_weighting in ("none", "None", ""):
            self.token_weighting = None  # the CLI passes strings
        if isinstance(self.empg_step_delimiter, str) and "\\" in self.empg_step_delimiter:
            self.empg_step_delimiter = self.empg_step_delimiter.replace("\\n", "\n").replace("\\t", "\t")
        if self.token_weighting == "entropy":
            warnings.warn(
                "token_weighting='entropy' is the old name of 'entropy_token_scale' (EMPG's scale g on every token, "
                "without its steps, future-clarity bonus or re-centring) and will be removed; for EMPG as the paper "
                "defines it use token_weighting='empg'.",
                FutureWarning,
                stacklevel=3,
            )
            self.token_weighting = "entropy_token_scale"
        if isinstance(self.advantage_estimator_kwargs, str):
            self.advantage_estimator_kwargs = json.loads(self.advantage_estimator_kwargs)
        if isinstance(self.policy_loss_kwargs, str):
            self.policy_loss_kwargs = json.loads(self.policy_loss_kwargs)
        if isinstance(self.correctness_reward, str) and self.correctness_reward.lstrip("-").isdigit():
            self.correctness_reward = int(self.correctness_reward)  # the CLI passes indices as strings

        if self.advantage_estimator not in advantage_estimator_names():
            raise ValueError(
                f"advantage_estimator={self.advantage_estimator!r} is not a registered advantage estimator. "
                f"Valid values: {advantage_estimator_names()} (register your own with "
                "`trl_reasoning.register_advantage_estimator`)."
            )
        if not (isinstance(self.positive_weight, int | float) and self.positive_weight >= 0):
            raise ValueError(
                f"positive_weight={self.positive_weight!r} is invalid: W-REINFORCE's lambda must be a number >= 0 "
                "(the paper uses 0.1; 0 is NSR, 1 is plain REINFORCE)."
            )
        if not math.isfinite(self.correct_threshold):
            raise ValueError(f"correct_threshold={self.correct_threshold!r} must be a finite number, e.g. 1.0.")
        if isinstance(self.correctness_reward, int) and self.correctness_reward < 0:
            raise ValueError(
                f"correctness_reward={self.correctness_reward} must be a reward function's name or a non-negative "
                "index into `reward_funcs`."
            )

        estimator = get_advantage_estimator(self.advantage_estimator)
        if estimator.drops_samples and self.loss_type not in TOKEN_LEVEL_LOSS_TYPES:
            raise ValueError(
                f"advantage_estimator={self.advantage_estimator!r} drops samples from the loss, which needs a "
                f"token-level loss_type so they leave the denominator; got loss_type={self.loss_type!r}. Set "
                f"loss_type to one of {list(TOKEN_LEVEL_LOSS_TYPES)} ('dapo', TRL's default, is the token-mean the "
                "paper uses)."
            )
        if self.advantage_estimator != "grpo" and self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                f"multi_objective_aggregation={self.multi_objective_aggregation!r} only applies to "
                f"advantage_estimator='grpo'; {self.advantage_estimator!r} reads the rewards directly. Leave "
                "multi_objective_aggregation at 'sum_then_normalize'."
            )

        self._check_policy_loss()
        self._check_token_weighting()
        self._check_dropped_samples()

    def _check_dropped_samples(self) -> None:
        _check_choice("dropped_samples", self.dropped_samples, DROPPED_SAMPLES)
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

    def _check_token_weighting(self) -> None:
        if self.token_weighting is None:
            return
        _check_choice("token_weighting", self.token_weighting, TOKEN_WEIGHTINGS)
        if self.policy_loss != TRL_POLICY_LOSS:
            raise ValueError(
                f"token_weighting={self.token_weighting!r} weights the advantages of TRL's loss; policy_loss="
                f"{self.policy_loss!r} computes its own. Use policy_loss='trl' with token weighting."
            )
        adapters = (self.critical_positive_adapter, self.critical_negative_adapter)
        if self.token_weighting == "critical_tokens" and None in adapters:
            raise ValueError(
                "token_weighting='critical_tokens' scores tokens with the two contrastive adapters: set "
                "critical_positive_adapter and critical_negative_adapter (trained with "
                "trl_reasoning.critical_tokens.train_contrastive_adapters)."
            )
        if not (math.isfinite(self.critical_beta) and self.critical_beta >= 0):
            raise ValueError(f"critical_beta={self.critical_beta} must be a finite number >= 0 (paper: 1.0).")
        if not (math.isfinite(self.entropy_modulation_k) and self.entropy_modulation_k > 0):
            raise ValueError(
                f"entropy_modulation_k={self.entropy_modulation_k} must be a finite number > 0 (EMPG: 1)."
            )
        if not (math.isfinite(self.empg_future_k) and self.empg_future_k > 0):
            raise ValueError(f"empg_future_k={self.empg_future_k} must be a finite number > 0 (EMPG: 1).")
        if not (math.isfinite(self.empg_zeta) and self.empg_zeta >= 0):
            raise ValueError(
                f"empg_zeta={self.empg_zeta} must be a finite number >= 0 (the authors' pseudocode uses 0.1; 0 turns "
                "the future-clarity bonus off)."
            )
        _check_choice("empg_steps", self.empg_steps, EMPG_STEPS)
        if not (isinstance(self.empg_step_delimiter, str) and self.empg_step_delimiter):
            raise ValueError(
                f"empg_step_delimiter={self.empg_step_delimiter!r} must be a non-empty string, e.g. '\\n\\n' (a blank "
                "line)."
            )

    def _check_policy_loss(self) -> None:
        if self.policy_loss != TRL_POLICY_LOSS and self.policy_loss not in policy_loss_names():
            raise ValueError(
                f"policy_loss={self.policy_loss!r} is not a registered policy loss. Valid values: "
                f"{[TRL_POLICY_LOSS, *policy_loss_names()]} (register your own with "
                "`trl_reasoning.register_policy_loss`)."
            )
        _check_choice("topr_reward_source", self.topr_reward_source, ("signed_correctness", "reward"))
        _check_choice("topr_ratio_level", self.topr_ratio_level, RATIO_LEVELS)
        _check_choice("topr_taper_by", self.topr_taper_by, TAPER_BY)
        for name in ("length_lambda", "drpo_tau"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0 (the paper uses {_DEFAULTS[name]}).")
        for name in ("drpo_kl_delta", "drpo_kl_beta"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0 (the paper uses {_DEFAULTS[name]}).")
        has_baseline = self.topr_baseline != 0.0 or self.topr_target_positive_fraction is not None
        if self.topr_reward_source == "reward" and self.topr_taper_by == "reward" and has_baseline:
            # With 0/1 (or shaped) rewards a sample with 0 <= R < c has a negative coefficient R - c: tapering only
            # R < 0 would push it down untapered, i.e. naive off-policy REINFORCE (TOPR, arXiv 2503.14286, §3).
            raise ValueError(
                "topr_reward_source='reward' with a baseline (topr_baseline="
                f"{self.topr_baseline}, topr_target_positive_fraction={self.topr_target_positive_fraction}) needs "
                "topr_taper_by='coefficient': topr_taper_by='reward' tapers only R < 0, so with 0/1 rewards every "
                "wrong answer (R = 0 < c) would be pushed down without the taper (naive off-policy REINFORCE). Set "
                "topr_taper_by='coefficient', or use topr_reward_source='signed_correctness' (the paper's +1/-1)."
            )
        if not -1 < self.topr_baseline < 1 and self.topr_taper_by == "reward":
            raise ValueError(
                f"topr_baseline={self.topr_baseline} is outside (-1, 1): with +1/-1 rewards some coefficients R - c "
                "change sign and are no longer tapered. Use a baseline in (-1, 1), or topr_taper_by='coefficient'."
            )
        target = self.topr_target_positive_fraction
        if target is not None and not 0 < target < 1:
            raise ValueError(f"topr_target_positive_fraction={target} must be in (0, 1), e.g. 0.15, or None.")
        if target is not None and self.topr_baseline != 0.0:
            raise ValueError(
                f"topr_target_positive_fraction={target} computes the baseline for every batch, so "
                f"topr_baseline={self.topr_baseline} would be ignored: set only one of them."
            )
        if self.policy_loss == TRL_POLICY_LOSS:
            return

        loss = get_policy_loss(self.policy_loss)
        unsupported = {
            "beta": self.beta != 0.0,
            "top_entropy_quantile": self.top_entropy_quantile < 1.0,
            "off_policy_mask_threshold": self.off_policy_mask_threshold is not None,
            "use_liger_kernel": self.use_liger_kernel,
            "entropy_coef": self.entropy_coef != 0.0,
            "use_adaptive_entropy": self.use_adaptive_entropy,
        }
        if any(unsupported.values()):
            names = [name for name, used in unsupported.items() if used]
            raise ValueError(
                f"policy_loss={self.policy_loss!r} replaces TRL's loss, so {names} (options of TRL's loss) would be "
                f"ignored. Leave them at their defaults (beta=0.0, top_entropy_quantile=1.0, "
                "off_policy_mask_threshold=None, use_liger_kernel=False, entropy_coef=0.0, "
                "use_adaptive_entropy=False), or use policy_loss='trl'."
            )
        if not loss.takes("advantages") and self.advantage_estimator != "grpo":
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

    def policy_loss_kwargs_from_config(self) -> dict[str, Any]:
        """Policy-loss parameters taken from this config (each loss ignores the ones it does not use)."""
        kwargs = {
            "length_lambda": self.length_lambda,
            "tau": self.drpo_tau,
            "kl_delta": self.drpo_kl_delta,
            "kl_beta": self.drpo_kl_beta,
            "baseline": self.topr_baseline,
            "target_positive_fraction": self.topr_target_positive_fraction,
            "reward_source": self.topr_reward_source,
            "ratio_level": self.topr_ratio_level,
            "taper_by": self.topr_taper_by,
        }
        kwargs.update(self.policy_loss_kwargs or {})
        return kwargs

    def advantage_kwargs(self) -> dict[str, Any]:
        """Estimator parameters taken from this config (each estimator ignores the ones it does not use)."""
        kwargs = {
            "scale": self.scale_rewards,
            "aggregation": self.multi_objective_aggregation,
            "positive_weight": self.positive_weight,
            "max_length": self.max_completion_length,
            "length_lambda": self.length_lambda,
            "decompose": self.beta_norm_decompose,
        }
        kwargs.update(self.advantage_estimator_kwargs or {})
        return kwargs


_DEFAULTS = {"length_lambda": 0.1, "drpo_tau": 10.0, "drpo_kl_delta": 1e-4, "drpo_kl_beta": 1e3}


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is invalid. Valid values: {list(choices)}.")

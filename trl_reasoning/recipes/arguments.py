"""The dataset and embedded-task flags every recipe shares (a dataclass for ``TrlParser``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DatasetArguments:
    """Where prompts and gold answers come from.

    With no ``dataset_name`` the recipe uses the embedded task: every ``a+b`` with a two-digit ``a`` and a one-digit
    ``b`` (:func:`trl_reasoning.embedded.arithmetic_split`), split into disjoint training and held-out problems, and
    a tiny in-process model warmed up on it first.
    """

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub name or local path of the dataset (`datasets.load_dataset`). Default: the embedded task."
        },
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Dataset configuration name, if it has several."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str | None = field(
        default=None,
        metadata={
            "help": "Split for the held-out accuracy before and after training. Default: the last `num_eval_prompts` "
            "rows of the training split, which are then left out of training."
        },
    )
    prompt_column: str = field(
        default="prompt", metadata={"help": "Column holding the prompt: text, or a list of chat messages."}
    )
    answer_column: str = field(
        default="answer",
        metadata={"help": "Column holding the gold answer (passed to the rewards as `solution`; e.g. `answer`)."},
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message put before every prompt (chat prompts only)."}
    )
    apply_chat_template: bool = field(
        default=True,
        metadata={
            "help": "Turn plain-text prompts into one user message so the tokenizer's chat template applies. False "
            "feeds them to the model as raw text (base models without a chat template)."
        },
    )
    num_train_prompts: int | None = field(
        default=None,
        metadata={"help": "Use at most this many training prompts (default: all; the embedded task has 800)."},
    )
    num_eval_prompts: int = field(
        default=200,
        metadata={"help": "Held-out prompts for greedy accuracy before and after training; 0 skips the evaluation."},
    )
    eval_max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Generation budget of the greedy evaluation. Default: the trainer's completion budget."},
    )
    # The embedded task and its warm-up (used only without --dataset_name / --model_name_or_path).
    task_max_first_operand: int = field(
        default=99, metadata={"help": "Embedded task: the first operand is drawn from 0..task_max_first_operand."}
    )
    task_max_second_operand: int = field(
        default=9, metadata={"help": "Embedded task: the second operand is drawn from 0..task_max_second_operand."}
    )
    task_operations: str = field(default="+", metadata={"help": "Embedded task: the operations, from '+-*'."})
    warmup_target_accuracy: float = field(
        default=0.3,
        metadata={
            "help": "Embedded model: the supervised warm-up stops once greedy accuracy on 64 training prompts "
            "reaches this, so training starts from a policy that is sometimes right and sometimes wrong, like a "
            "real base model (checked every 50 steps). 0 stops at the first check."
        },
    )
    warmup_max_steps: int = field(
        default=2000,
        metadata={
            "help": "Embedded model: at most this many warm-up steps (cached in <output_dir>/warmup); 0 starts from "
            "the random model."
        },
    )

    def __post_init__(self):
        if self.num_train_prompts is not None and self.num_train_prompts < 1:
            raise ValueError(f"num_train_prompts={self.num_train_prompts} must be >= 1 (or unset for all rows).")
        if self.num_eval_prompts < 0:
            raise ValueError(f"num_eval_prompts={self.num_eval_prompts} must be >= 0 (0 skips the evaluation).")
        if not 0.0 <= self.warmup_target_accuracy <= 1.0:
            raise ValueError(f"warmup_target_accuracy={self.warmup_target_accuracy} must be in [0, 1].")
        if not self.task_operations or set(self.task_operations) - set("+-*"):
            raise ValueError(f"task_operations={self.task_operations!r} must be a non-empty string of '+', '-', '*'.")
        if min(self.task_max_first_operand, self.task_max_second_operand) < 1:
            raise ValueError("task_max_first_operand and task_max_second_operand must be >= 1.")

    @property
    def embedded(self) -> bool:
        return self.dataset_name is None

"""Console output and held-out evaluation for the recipes: a progress bar, one table row per step, greedy accuracy."""

from __future__ import annotations

import math

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback


class QuietProgress(ProgressCallback):
    """The progress bar without the raw log dicts (the :class:`MetricsTable` prints the numbers that matter)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


class MetricsTable(TrainerCallback):
    """Print one row per logging step on the main process: the step, then ``columns`` (header → log key).

    A row is printed when the log has at least one of the keys; missing ones show as ``nan``.
    """

    def __init__(self, columns: dict[str, str]):
        self.columns = columns
        self._header_printed = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or not any(key in logs for key in self.columns.values()):
            return
        if not self._header_printed:
            tqdm.write(" ".join([f"{'step':>6}", *(f"{header:>10}" for header in self.columns)]))
            self._header_printed = True
        values = (float(logs.get(key, math.nan)) for key in self.columns.values())
        tqdm.write(" ".join([f"{state.global_step:>6}", *(f"{value:>10.3f}" for value in values)]))


def use_table_logging(trainer, table: MetricsTable) -> None:
    """Replace the trainer's raw log-dict printing with ``table`` (keeping a progress bar when one is shown)."""
    trainer.pop_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress)
    trainer.add_callback(table)


class GreedyAccuracy(TrainerCallback):
    """Greedy accuracy on held-out prompts when training begins (``before``) and ends (``after``).

    Runs on the model the trainer prepared (DDP, DeepSpeed ZeRO-2/3 with parameters gathered, FSDP2), on every
    process over the same prompts, so the sharded engines' collective calls line up; the result is the same number
    everywhere. The evaluation leaves the training random state untouched. Add it with ``trainer.add_callback``.
    """

    def __init__(self, trainer, dataset, reward_func, *, max_new_tokens: int, answer_extractor=None, batch_size=64):
        self.trainer = trainer
        self.dataset = dataset
        self.reward_func = reward_func
        self.max_new_tokens = max_new_tokens
        self.answer_extractor = answer_extractor
        self.batch_size = batch_size
        self.before: float | None = None
        self.after: float | None = None

    def evaluate(self) -> float:
        from trl.models.utils import unwrap_model_for_generation

        from ..generation import sample_completions

        trainer = self.trainer
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
            samples = sample_completions(
                model,
                trainer.processing_class,
                self.dataset,
                self.reward_func,
                num_samples=1,
                max_new_tokens=self.max_new_tokens,
                temperature=0,
                batch_size=self.batch_size,
                answer_extractor=self.answer_extractor,
            )
        return sum(samples["correct"]) / max(len(samples), 1)

    def on_train_begin(self, args, state, control, **kwargs):
        if len(self.dataset) and self.before is None:
            self.before = self.evaluate()
            if state.is_world_process_zero:
                tqdm.write(
                    f"held-out greedy accuracy before training: {self.before:.3f} ({len(self.dataset)} prompts)"
                )

    def on_train_end(self, args, state, control, **kwargs):
        if len(self.dataset):
            self.after = self.evaluate()
            if state.is_world_process_zero:
                tqdm.write(f"held-out greedy accuracy after training:  {self.after:.3f} ({len(self.dataset)} prompts)")


def add_greedy_accuracy(trainer, task, *, max_new_tokens: int) -> GreedyAccuracy:
    """Attach a :class:`GreedyAccuracy` on ``task``'s held-out prompts (a :class:`~trl_reasoning.recipes.Task`)."""
    callback = GreedyAccuracy(
        trainer, task.evaluation, task.accuracy, max_new_tokens=max_new_tokens, answer_extractor=task.answer_extractor
    )
    trainer.add_callback(callback)
    return callback

"""Periodic pass@k / maj@k evaluation during training, logged as ``eval/pass@k`` next to the training metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from transformers import TrainerCallback

from .evaluate import EvaluationResult, evaluate


class PassAtKCallback(TrainerCallback):
    """Every ``eval_steps`` optimizer steps (and at the last step), sample ``n`` completions per held-out problem
    with the model being trained and log ``eval/pass@k``, ``eval/maj@k``, ``eval/accuracy`` and the mean lengths of
    correct and incorrect answers, through the trainer's own logging (so every ``report_to`` tracker gets them).

    Every process evaluates the same problems on the prepared model (parameters gathered under ZeRO-3 / FSDP), so
    collective calls line up and all get the same numbers; the training random state is left untouched. Results are
    kept in :attr:`history` as ``(step, EvaluationResult)``; ``eval_on_start`` adds one at step 0.

        trainer.add_callback(PassAtKCallback(trainer, held_out, accuracy_reward, n=16, eval_steps=100))
    """

    def __init__(
        self,
        trainer,
        dataset,
        reward: Callable,
        *,
        n: int = 8,
        ks: Iterable[int] | None = None,
        eval_steps: int = 100,
        eval_on_start: bool = False,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        batch_size: int = 64,
        answer_extractor: Callable[[str], str | None] | None = None,
        seed: int = 0,
    ):
        if eval_steps < 1:
            raise ValueError(f"PassAtKCallback: eval_steps={eval_steps} must be >= 1.")
        if len(dataset) == 0:
            raise ValueError("PassAtKCallback: the evaluation dataset is empty; pass at least one problem.")
        self.trainer = trainer
        self.dataset = dataset
        self.reward = reward
        self.n = n
        self.ks = list(ks) if ks is not None else None
        if self.ks is not None and any(not 1 <= k <= n for k in self.ks):
            raise ValueError(f"PassAtKCallback: every k in ks={self.ks} must be between 1 and n={n}.")
        self.eval_steps = eval_steps
        self.eval_on_start = eval_on_start
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.batch_size = batch_size
        self.answer_extractor = answer_extractor
        self.seed = seed
        self.history: list[tuple[int, EvaluationResult]] = []

    def run(self, step: int) -> EvaluationResult:
        """Evaluate the trainer's current model now; the result is appended to :attr:`history`."""
        from trl.models.utils import unwrap_model_for_generation

        trainer = self.trainer
        max_new_tokens = self.max_new_tokens or getattr(trainer.args, "max_completion_length", None) or 256
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
            result = evaluate(
                model,
                self.dataset,
                self.reward,
                self.n,
                self.ks,
                tokenizer=trainer.processing_class,
                max_new_tokens=max_new_tokens,
                temperature=self.temperature,
                batch_size=self.batch_size,
                answer_extractor=self.answer_extractor,
                seed=self.seed,
                backend="transformers",
            )
        self.history.append((step, result))
        return result

    def _log(self, metrics: dict[str, float]) -> None:
        buffer = getattr(self.trainer, "_metrics", None)
        if isinstance(buffer, dict) and "train" in buffer:
            # TRL's trainers average their metric buffer into the next log row (GRPOTrainer.log), at this step.
            for key, value in metrics.items():
                buffer["train"][key].append(value)
        else:
            self.trainer.log(metrics)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.eval_on_start and not self.history:
            self.run(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.eval_steps == 0 or state.global_step == state.max_steps:
            if self.history and self.history[-1][0] == state.global_step:
                return control
            result = self.run(state.global_step)
            self._log(result.metrics("eval/"))
            control.should_log = True
        return control

"""Sample ``n`` answers per problem from a model and score them: pass@k, maj@k, accuracy and answer lengths.

:func:`evaluate` generates with ``transformers`` (any model object or a path / hub id), or with vLLM when the model
is given by name, vLLM is installed and a GPU is present (``backend="auto"``), and returns an
:class:`EvaluationResult`. The scoring is the same for both: ``reward`` (TRL's reward signature) marks each sample
correct when it returns at least ``correct_threshold``, ``answer_extractor`` gives the answer that votes in maj@k.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .metrics import mean_length_by_correctness, mean_maj_at_k, mean_pass_at_k


BACKENDS = ("auto", "transformers", "vllm")


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured. ``samples`` holds one row per sample: the problem's columns (``prompt``, the
    gold answer, ...), ``problem`` (its index), ``completion``, ``reward``, ``correct``, ``extracted_answer`` and
    ``completion_tokens``; :meth:`metrics` gives the flat, loggable numbers."""

    num_problems: int
    samples_per_problem: int
    pass_at_k: dict[int, float]
    maj_at_k: dict[int, float]
    accuracy: float
    mean_correct_length: float | None
    mean_incorrect_length: float | None
    backend: str
    samples: list[dict] = field(default_factory=list, repr=False)

    def metrics(self, prefix: str = "eval/") -> dict[str, float]:
        """``{prefix}pass@k``, ``{prefix}maj@k``, ``{prefix}accuracy`` and the two mean lengths (when defined)."""
        out = {f"{prefix}pass@{k}": value for k, value in self.pass_at_k.items()}
        out.update({f"{prefix}maj@{k}": value for k, value in self.maj_at_k.items()})
        out[f"{prefix}accuracy"] = self.accuracy
        for name in ("mean_correct_length", "mean_incorrect_length"):
            if getattr(self, name) is not None:
                out[f"{prefix}{name}"] = getattr(self, name)
        return out

    def to_dict(self) -> dict:
        """Everything but the samples, JSON-ready."""
        return {
            "num_problems": self.num_problems,
            "samples_per_problem": self.samples_per_problem,
            "backend": self.backend,
            "accuracy": self.accuracy,
            "pass@k": {str(k): v for k, v in self.pass_at_k.items()},
            "maj@k": {str(k): v for k, v in self.maj_at_k.items()},
            "mean_correct_length": self.mean_correct_length,
            "mean_incorrect_length": self.mean_incorrect_length,
        }


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, and ``n`` itself."""
    ks = [1]
    while ks[-1] * 2 <= n:
        ks.append(ks[-1] * 2)
    return ks if ks[-1] == n else [*ks, n]


def vllm_available() -> bool:
    """vLLM is installed and a CUDA GPU is visible."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _resolve_backend(backend: str, model) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"evaluate: backend={backend!r} is not one of {list(BACKENDS)}.")
    if backend == "auto":
        return "vllm" if isinstance(model, str) and vllm_available() else "transformers"
    if backend == "vllm":
        if not isinstance(model, str):
            raise ValueError(
                "evaluate: backend='vllm' needs the model as a path or hub id (vLLM loads its own copy); save the "
                "model with save_pretrained and pass the directory, or use backend='transformers'."
            )
        if importlib.util.find_spec("vllm") is None:
            raise ValueError("evaluate: backend='vllm' needs vLLM: pip install 'trl-reasoning[vllm]'.")
    return backend


def _prompt_texts(tokenizer, prompts: list) -> list[str]:
    return [
        prompt
        if isinstance(prompt, str)
        else tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        for prompt in prompts
    ]


def _sample_vllm(model: str, tokenizer, dataset, *, n, max_new_tokens, temperature, top_p, seed, vllm_kwargs):
    """``n`` completions per prompt from vLLM: (rows, completion texts, completion token counts), row-major."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=model, seed=seed, **(vllm_kwargs or {}))
    rows = list(dataset)
    # One seed per prompt (seed + its index): a single seeded SamplingParams would give every prompt the same random
    # stream, so prompts with similar logits would get the same samples. Still reproducible from `seed`.
    params = [
        SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed + index)
        for index in range(len(rows))
    ]
    outputs = llm.generate(_prompt_texts(tokenizer, [row["prompt"] for row in rows]), params)
    texts, lengths, expanded = [], [], []
    for row, output in zip(rows, outputs, strict=True):
        if len(output.outputs) != n:
            raise RuntimeError(f"vLLM returned {len(output.outputs)} completions for a prompt, expected n={n}.")
        for completion in output.outputs:
            expanded.append(row)
            texts.append(completion.text)
            lengths.append(len(completion.token_ids))
    return expanded, texts, lengths


def _score_vllm_samples(rows, texts, lengths, reward, *, answer_extractor, correct_threshold, batch_size):
    from ..generation import label_completions

    samples = []
    for start in range(0, len(rows), batch_size):
        labelled = label_completions(
            rows[start : start + batch_size],
            texts[start : start + batch_size],
            reward,
            answer_extractor=answer_extractor,
            correct_threshold=correct_threshold,
        )
        for row, count in zip(labelled, lengths[start : start + batch_size], strict=True):
            samples.append({**row, "completion_tokens": count})
    return samples


def evaluate(
    model,
    dataset,
    reward: Callable,
    n: int,
    ks: Iterable[int] | None = None,
    *,
    tokenizer=None,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    answer_extractor: Callable[[str], str | None] | None = None,
    correct_threshold: float = 1.0,
    maj_ks: Iterable[int] | None = None,
    seed: int = 0,
    backend: str = "auto",
    vllm_kwargs: dict | None = None,
    synced_gpus: bool | None = None,
) -> EvaluationResult:
    """Sample ``n`` completions for every problem of ``dataset`` and measure pass@k and maj@k for each k in ``ks``.

    Args:
        model: a ``transformers`` causal LM, or a path / hub id (loaded here, or by vLLM).
        dataset: rows with a ``prompt`` (text or chat messages) and the columns ``reward`` reads (e.g. ``solution``).
        reward: the correctness reward, TRL's reward signature (e.g. :func:`trl_reasoning.rewards.accuracy_reward`).
        n: samples per problem.
        ks: the pass@k budgets (each <= n); default 1, 2, 4, ... up to n.
        tokenizer: required with a model object; loaded from the name otherwise.
        max_new_tokens: the longest completion, in tokens.
        temperature: sampling temperature (``temperature=0`` decodes greedily; then use n=1).
        top_p: nucleus sampling (1 keeps every token).
        batch_size: sequences generated (and scored) at once.
        answer_extractor: the final answer that votes in maj@k; default
            :func:`trl_reasoning.rewards.extract_final_answer`.
        correct_threshold: a sample is correct when its reward is at least this.
        maj_ks: the maj@k budgets; default ``ks``.
        seed: seeds the sampling (and maj@k's subsets when there are too many to enumerate).
        backend: ``"transformers"``, ``"vllm"``, or ``"auto"`` (vLLM for a named model when vLLM and a GPU exist).
        vllm_kwargs: extra ``vllm.LLM`` arguments (``gpu_memory_utilization``, ``tensor_parallel_size``, ...).
        synced_gpus: passed to ``generate`` (None: on by itself under ZeRO-3 / FSDP with several processes, which
            then must all call ``evaluate`` on the same problems; pass False when only this process evaluates).
    """
    if n < 1:
        raise ValueError(f"evaluate: n={n} must be >= 1 (samples per problem).")
    if len(dataset) == 0:
        raise ValueError("evaluate: the dataset is empty; pass at least one problem.")
    if "prompt" not in dataset.column_names:
        raise ValueError(f"evaluate: the dataset needs a 'prompt' column; it has {dataset.column_names}.")
    ks = sorted({int(k) for k in (ks if ks is not None else default_ks(n))})
    maj_ks = sorted({int(k) for k in (maj_ks if maj_ks is not None else ks)})
    too_big = sorted({k for k in ks + maj_ks if not 1 <= k <= n})
    if too_big:
        raise ValueError(f"evaluate: every k must be between 1 and n={n} (got {too_big}); raise n or drop those k.")
    if temperature == 0 and n > 1:
        raise ValueError("evaluate: temperature=0 (greedy) gives n identical samples; use n=1 or temperature > 0.")
    if answer_extractor is None:
        from ..rewards import extract_final_answer

        answer_extractor = extract_final_answer
    backend = _resolve_backend(backend, model)
    if tokenizer is None:
        if not isinstance(model, str):
            raise ValueError("evaluate: pass tokenizer= with a model object (it is loaded only from a model name).")
        from ..embedded import load_pretrained_tokenizer

        tokenizer = load_pretrained_tokenizer(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    if backend == "vllm":
        rows, texts, lengths = _sample_vllm(
            model,
            tokenizer,
            dataset,
            n=n,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            vllm_kwargs=vllm_kwargs,
        )
        samples = _score_vllm_samples(
            rows,
            texts,
            lengths,
            reward,
            answer_extractor=answer_extractor,
            correct_threshold=correct_threshold,
            batch_size=batch_size,
        )
    else:
        from ..generation import sample_completions

        if isinstance(model, str):
            import torch
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(model, dtype="auto")
            if torch.cuda.is_available():
                model = model.to("cuda")
        sampled = sample_completions(
            model,
            tokenizer,
            dataset,
            reward,
            num_samples=n,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            batch_size=batch_size,
            answer_extractor=answer_extractor,
            correct_threshold=correct_threshold,
            seed=seed,
            synced_gpus=synced_gpus,
        )
        samples = list(sampled)
    for index, sample in enumerate(samples):
        sample["problem"] = index // n
    correct = [sample["correct"] for sample in samples]
    per_problem = [range(i, i + n) for i in range(0, len(samples), n)]
    counts = [sum(correct[j] for j in block) for block in per_problem]
    answers = [[samples[j]["extracted_answer"] for j in block] for block in per_problem]
    verdicts = [[correct[j] for j in block] for block in per_problem]
    mean_correct, mean_incorrect = mean_length_by_correctness([s["completion_tokens"] for s in samples], correct)
    return EvaluationResult(
        num_problems=len(per_problem),
        samples_per_problem=n,
        pass_at_k=mean_pass_at_k(counts, n, ks),
        maj_at_k=mean_maj_at_k(answers, verdicts, maj_ks, seed=seed),
        accuracy=sum(correct) / len(correct),
        mean_correct_length=mean_correct,
        mean_incorrect_length=mean_incorrect,
        backend=backend,
        samples=samples,
    )

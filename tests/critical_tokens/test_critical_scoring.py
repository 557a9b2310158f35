"""Scoring rejected completions with the contrastive adapters, and the whole cDPO pipeline end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from support import adapter_logits

from trl_reasoning import CriticalTokenDPOConfig, CriticalTokenDPOTrainer
from trl_reasoning.critical_tokens import ContrastiveScorer, score_preference_dataset, tokenize_preference
from trl_reasoning.embedded import build_tiny_model, build_tokenizer


ROOT = Path(__file__).parents[2]


def pairs(conversational=False):
    rows = [("3+4=", "7", "8"), ("9+9=", "18", "81"), ("0+5=", "5", "15")]
    if conversational:
        return Dataset.from_list(
            [
                {
                    "prompt": [{"role": "user", "content": p}],
                    "chosen": [{"role": "assistant", "content": c}],
                    "rejected": [{"role": "assistant", "content": r}],
                }
                for p, c, r in rows
            ]
        )
    return Dataset.from_list([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in rows])


def reference_weights(positive, negative, prompt_ids, completion_ids):
    """1 - softmax(2 z_pos - z_neg)[y_t] from the two adapted models' full logits (float64)."""
    ids = torch.tensor([prompt_ids + completion_ids])
    mask = torch.ones_like(ids)
    combined = 2 * adapter_logits(positive, ids, mask) - adapter_logits(negative, ids, mask)
    start = len(prompt_ids)
    probs = combined[0, start - 1 : -1].softmax(-1)
    return (1 - probs[torch.arange(len(completion_ids)), torch.tensor(completion_ids)]).tolist()


def test_scorer_weights_match_full_logit_reference(random_adapters):
    positive, negative = random_adapters
    tokenizer = build_tokenizer()
    scorer = ContrastiveScorer.from_policy(build_tiny_model(tokenizer), positive, negative)
    prompts = [tokenizer("12+30=")["input_ids"], tokenizer("7*8=")["input_ids"]]
    completions = [tokenizer("42")["input_ids"] + [tokenizer.eos_token_id], tokenizer("56")["input_ids"]]
    weights = scorer.completion_weights(prompts, completions, pad_token_id=tokenizer.pad_token_id, batch_size=2)
    for prompt, completion, got in zip(prompts, completions, weights, strict=True):
        expected = reference_weights(positive, negative, prompt, completion)
        assert len(got) == len(completion)
        assert got == pytest.approx(expected, abs=1e-5)
    assert any(abs(w - weights[0][0]) > 1e-3 for w in weights[0][1:])  # weights vary: the adapters disagree


def test_scorer_leaves_the_policy_untouched_and_rejects_missing_adapters(random_adapters):
    from peft import LoraConfig, get_peft_model

    tokenizer = build_tokenizer()
    policy = get_peft_model(build_tiny_model(tokenizer), LoraConfig(r=2, target_modules=["q_proj"]))
    before = {name: p.clone() for name, p in policy.named_parameters()}
    scorer = ContrastiveScorer.from_policy(policy, *random_adapters)
    assert set(scorer.model.peft_config) == {"positive", "negative"}
    assert list(policy.peft_config) == ["default"]
    assert all(torch.equal(before[name], p) for name, p in policy.named_parameters())
    with pytest.raises(ValueError, match=r"no adapter named \['nope'\]"):
        ContrastiveScorer(scorer.model, negative_adapter="nope")


@pytest.mark.parametrize("conversational", [False, True], ids=["text", "conversational"])
def test_tokenize_preference_matches_the_trainer_and_weights_from_adapters(tmp_path, random_adapters, conversational):
    positive, negative = random_adapters
    tokenizer = build_tokenizer()
    dataset = pairs(conversational)
    scorer = ContrastiveScorer.from_policy(build_tiny_model(tokenizer), positive, negative)
    scored = score_preference_dataset(dataset, scorer, tokenizer)
    config = CriticalTokenDPOConfig(
        output_dir=str(tmp_path),
        critical_positive_adapter=positive,
        critical_negative_adapter=negative,
        use_cpu=True,
        bf16=False,
        report_to="none",
    )
    trainer = CriticalTokenDPOTrainer(
        model=build_tiny_model(tokenizer),
        ref_model=build_tiny_model(tokenizer),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    prepared = trainer.train_dataset
    for row, example in enumerate(dataset):
        ours = tokenize_preference(example, tokenizer)
        for key in ("prompt_ids", "chosen_ids", "rejected_ids"):
            assert ours[key] == prepared[row][key]
        # the trainer's on-the-fly weights equal the saved column, and both equal the full-logit reference
        assert prepared[row]["rejected_token_weights"] == pytest.approx(scored[row]["rejected_token_weights"])
        expected = reference_weights(positive, negative, ours["prompt_ids"], ours["rejected_ids"])
        assert scored[row]["rejected_token_weights"] == pytest.approx(expected, abs=1e-5)


def test_eos_weight_one_also_applies_to_weights_from_adapters(tmp_path, random_adapters):
    """docs/methods/cdpo.md, implementation detail 5: with eos_weight="one" the scored EOS weight becomes 1."""
    positive, negative = random_adapters
    tokenizer = build_tokenizer()
    rules = {}
    for rule in ("score", "one"):
        config = CriticalTokenDPOConfig(
            output_dir=str(tmp_path / rule),
            critical_positive_adapter=positive,
            critical_negative_adapter=negative,
            eos_weight=rule,
            use_cpu=True,
            bf16=False,
            report_to="none",
        )
        trainer = CriticalTokenDPOTrainer(
            model=build_tiny_model(tokenizer),
            ref_model=build_tiny_model(tokenizer),
            args=config,
            train_dataset=pairs(),
            processing_class=tokenizer,
        )
        rules[rule] = trainer.train_dataset
    for score_row, one_row in zip(rules["score"], rules["one"], strict=True):
        assert score_row["rejected_ids"][-1] == tokenizer.eos_token_id
        scored, ones = score_row["rejected_token_weights"], one_row["rejected_token_weights"]
        expected = reference_weights(positive, negative, score_row["prompt_ids"], score_row["rejected_ids"])
        assert scored == pytest.approx(expected, abs=1e-5) and scored[-1] < 1 - 1e-3  # 1 - s_EOS, not 1
        assert ones == pytest.approx([*expected[:-1], 1.0], abs=1e-5) and ones[-1] == 1.0


@pytest.mark.slow
def test_cdpo_pipeline_end_to_end(tmp_path):
    """sample -> label -> two adapters -> score -> cDPO, on the tiny warmed-up model (recipes/cdpo.py)."""
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / "cdpo.py"),
        "--config",
        str(ROOT / "recipes" / "configs" / "cdpo_demo.yaml"),
        "--output_dir",
        str(tmp_path),
        "--num_train_epochs",
        "1",
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]

    for stage in ("warmup/config.json", "samples", "adapters/positive", "adapters/negative", "pairs"):
        assert (tmp_path / stage).exists(), stage
    stats = json.loads(result.stdout.split("selection: ")[1].splitlines()[0])
    assert stats["pairs"] > 0 and stats["positive"] > 0 and stats["negative"] > 0

    weighted = Dataset.load_from_disk(str(tmp_path / "pairs"))
    weights = [w for row in weighted["rejected_token_weights"] for w in row]
    assert len(weighted) == stats["pairs"] and all(0.0 <= w <= 1.0 for w in weights)
    assert 0.0 < sum(w < 0.5 for w in weights) < len(weights)  # some tokens are critical, not all

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] > 0 and summary["pairs"] == stats["pairs"]
    logged = {key for row in summary["log_history"] for key in row}
    assert {"critical/weight_mean", "critical/frac_below_0.5"} <= logged
    assert 0.0 <= summary["accuracy_before"] <= 1.0 and 0.0 <= summary["accuracy_after"] <= 1.0

    # the policy moved away from the warmed-up base
    base = load_file(str(tmp_path / "warmup" / "model.safetensors"))
    trained = load_file(str(tmp_path / "model.safetensors"))
    assert any(not torch.equal(base[name], trained[name]) for name in base)

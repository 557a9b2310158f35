"""The method families on a real pretrained model: SmolLM2-135M-Instruct (trl_reasoning.pretrained) on the
instruct-phrased arithmetic task, scored by accuracy_reward (CPU, float32).

Each family runs two steps of 2 prompts x 4 completions of up to 40 tokens and must log its own metrics as finite
numbers and move the weights. The prompts are single-digit problems the model answers right about half the time
when sampling, so a group of four is rarely all right or all wrong (which would give the group-normalised estimators
a zero gradient: with p = 0.5, all 4 groups of a run uniform has probability (1/8)^4 < 0.03 %).
"""

import math

import pytest
import torch
from datasets import Dataset


pytestmark = pytest.mark.slow

STEPS = 2
GRPO_ARGS = dict(
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=40,
    max_steps=STEPS,
    learning_rate=1e-5,
    beta=0.0,
    temperature=1.0,
    logging_steps=1,
    report_to="none",
    use_cpu=True,
    bf16=False,
    seed=0,
    save_strategy="no",
    disable_tqdm=True,
)


@pytest.fixture(scope="module")
def model_dir():
    from trl_reasoning.pretrained import smollm2_model_dir

    return smollm2_model_dir()


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def load_model(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def snapshot(model):
    """A few tensors spread over the network (the embeddings, the first and last layers' projections)."""
    names = [name for name, _ in model.named_parameters()]
    picked = [names[0], names[1], names[len(names) // 2], names[-2]]
    params = dict(model.named_parameters())
    return {name: params[name].detach().clone() for name in picked}


def moved(before, model):
    params = dict(model.named_parameters())
    return [name for name, value in before.items() if not torch.equal(value, params[name].detach())]


def train_dataset():
    from trl_reasoning.embedded.instruct_task import instruct_dataset

    return instruct_dataset(16, seed=7, max_operand=6)


FAMILIES = {
    "w_reinforce": ({"advantage_estimator": "w_reinforce"}, ("advantage/mean_abs",)),
    "drpo": ({"policy_loss": "drpo"}, ("drpo/weight_entropy", "drpo/length_correct", "drpo/kl")),
    "topr": ({"policy_loss": "topr"}, ("topr/frac_truncated", "topr/positive_fraction", "topr/baseline")),
    "beta_norm": ({"advantage_estimator": "beta_norm"}, ("beta_norm/alpha", "beta_norm/beta")),
    "entropy_token_scale": (
        {"token_weighting": "entropy_token_scale"},
        ("token_weight/entropy_mean", "token_weight/scale_min", "token_weight/scale_max"),
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_grpo_family_trains_the_real_model(tmp_path, model_dir, tokenizer, family):
    from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
    from trl_reasoning.rewards import accuracy_reward

    settings, metrics = FAMILIES[family]
    model = load_model(model_dir)
    trainer = ReasoningGRPOTrainer(
        model=model,
        reward_funcs=accuracy_reward,
        args=ReasoningGRPOConfig(output_dir=str(tmp_path), **GRPO_ARGS, **settings),
        train_dataset=train_dataset(),
        processing_class=tokenizer,
    )
    before = snapshot(trainer.model)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == STEPS
    for entry in logs:
        for name in ("loss", "reward", *metrics):
            assert name in entry and math.isfinite(entry[name]), (family, name, entry.get(name))
        # accuracy_reward scores 0 or 1, so the share of correct completions is the mean reward
        assert entry["advantage/frac_correct"] == pytest.approx(entry["reward"])
        if family == "w_reinforce":  # A = lambda for a right answer, -1 for a wrong one (no group normalisation)
            if "advantage/mean_correct" in entry:
                assert entry["advantage/mean_correct"] == pytest.approx(trainer.args.positive_weight)
            if "advantage/mean_incorrect" in entry:
                assert entry["advantage/mean_incorrect"] == pytest.approx(-1.0)
    assert any(entry["reward_std"] > 0 for entry in logs), "no step had both right and wrong answers"
    assert moved(before, trainer.model), f"{family}: no weight changed"


def test_offline_topr_trains_the_real_model(tmp_path, model_dir, tokenizer):
    from trl_reasoning import OfflineTOPRConfig, OfflineTOPRTrainer

    rows = []
    for a, b in ((3, 4), (6, 2), (5, 5)):
        prompt = [{"role": "user", "content": f"What is {a} + {b}?\nGive the answer in \\boxed{{}}."}]
        for answer, reward in ((a + b, 1.0), (a + b + 2, -1.0)):
            completion = [
                {"role": "assistant", "content": f"{a} + {b} = {answer}. The answer is \\boxed{{{answer}}}."}
            ]
            rows.append({"prompt": prompt, "completion": completion, "reward": reward})
    config = OfflineTOPRConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=6,
        max_steps=2,
        learning_rate=1e-5,
        max_length=128,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = OfflineTOPRTrainer(
        model=load_model(model_dir),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    before = snapshot(trainer.model)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        for name in ("loss", "topr/completion_logp_positive", "topr/completion_logp_negative"):
            assert name in entry and math.isfinite(entry[name]), (name, entry.get(name))
        # the right answers are likelier than the wrong ones under the pretrained model
        assert entry["topr/completion_logp_positive"] > entry["topr/completion_logp_negative"]
    assert moved(before, trainer.model)


def test_converted_model_matches_the_gguf_model(model_dir, tokenizer):
    """The saved float32 folder gives the logits transformers' own GGUF loading gives (the same dequantised weights)."""
    from transformers import AutoModelForCausalLM

    from trl_reasoning.pretrained import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    converted = load_model(model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        expected = reference(**ids).logits
        actual = converted(**ids).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)
    assert tokenizer.eos_token == "<|im_end|>" and converted.config.eos_token_id == tokenizer.eos_token_id
    assert converted.config.tie_word_embeddings and converted.lm_head.weight is converted.model.embed_tokens.weight

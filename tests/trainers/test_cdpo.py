"""cDPO: the loss against its worked example and hand formulas, and CriticalTokenDPOTrainer against trl.DPOTrainer."""

import math
import random

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from trl_reasoning import CriticalTokenDPOConfig, CriticalTokenDPOTrainer
from trl_reasoning.embedded import build_tiny_model, build_tokenizer
from trl_reasoning.losses import cdpo_loss


# docs/methods/cdpo.md, Worked example: weights 1 - s_t of the worked example's rejected tokens and the per-token log-ratios.
WEIGHTS = [0.1562052655, 0.9099694268, 0.9841237600]
CHOSEN = [0.10, -0.05, 0.02, 0.03]
REJECTED = [-0.20, 0.10, 0.05]


def worked_example(dtype=torch.float64):
    chosen = torch.tensor([CHOSEN], dtype=dtype, requires_grad=True)
    rejected = torch.tensor([REJECTED + [0.0]], dtype=dtype, requires_grad=True)
    weights = torch.tensor([WEIGHTS + [0.0]], dtype=dtype)
    chosen_mask = torch.ones(1, 4, dtype=dtype)
    rejected_mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=dtype)
    return chosen, rejected, weights, chosen_mask, rejected_mask


@pytest.mark.parametrize(
    "gamma, loss, chosen_grad, rejected_grad",
    [
        (1.0, 0.6976382592, -0.5022405044, [0.0784526113, 0.4570235039, 0.4942668136]),
        (0.1, 0.6935953848, -0.0500224052, [0.0078137631, 0.0455188594, 0.0492282375]),
    ],
)
def test_sequence_form_matches_worked_example(gamma, loss, chosen_grad, rejected_grad):
    chosen, rejected, weights, chosen_mask, rejected_mask = worked_example()
    value = cdpo_loss(chosen, rejected, weights, chosen_mask, rejected_mask, beta=gamma)
    value.backward()
    assert value.item() == pytest.approx(loss, abs=1e-9)
    torch.testing.assert_close(chosen.grad, torch.full((1, 4), chosen_grad, dtype=torch.float64), atol=1e-9, rtol=0)
    expected = torch.tensor([rejected_grad + [0.0]], dtype=torch.float64)
    torch.testing.assert_close(rejected.grad, expected, atol=1e-9, rtol=0)


def test_per_position_form_matches_official_code_example():
    chosen, rejected, weights, chosen_mask, rejected_mask = worked_example()
    value = cdpo_loss(chosen, rejected, weights, chosen_mask, rejected_mask, beta=0.1, form="per_position")
    # cdpo.md, Worked example: per-position losses [0.6866066580, 0.7002218777, 0.6946085562, 0.6916483056], mean 0.6932713494
    assert value.item() == pytest.approx(0.6932713494, abs=1e-9)


def test_per_position_form_skips_positions_where_neither_response_has_a_token():
    chosen, rejected, weights, chosen_mask, rejected_mask = worked_example()
    pad = torch.zeros(1, 3, dtype=torch.float64)
    padded = [torch.cat([t, pad], dim=1) for t in (chosen, rejected, weights, chosen_mask, rejected_mask)]
    value = cdpo_loss(*padded, beta=0.1, form="per_position")
    assert value.item() == pytest.approx(0.6932713494, abs=1e-9)


def test_unit_weights_are_dpo_and_zero_weights_ignore_the_rejected_response():
    torch.manual_seed(0)
    chosen, rejected = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    chosen_mask = (torch.rand(3, 5) > 0.2).double()
    rejected_mask = (torch.rand(3, 6) > 0.2).double()
    margin = (chosen * chosen_mask).sum(1) - (rejected * rejected_mask).sum(1)
    dpo = -F.logsigmoid(0.5 * margin).mean()
    ones = torch.ones_like(rejected)
    assert cdpo_loss(chosen, rejected, ones, chosen_mask, rejected_mask, beta=0.5).item() == pytest.approx(dpo.item())
    zeros = torch.zeros_like(rejected)
    only_chosen = -F.logsigmoid(0.5 * (chosen * chosen_mask).sum(1)).mean()
    value = cdpo_loss(chosen, rejected, zeros, chosen_mask, rejected_mask, beta=0.5)
    assert value.item() == pytest.approx(only_chosen.item())


def test_loss_rejects_bad_input():
    chosen, rejected, weights, chosen_mask, rejected_mask = worked_example()
    with pytest.raises(ValueError, match="form='nope'"):
        cdpo_loss(chosen, rejected, weights, chosen_mask, rejected_mask, form="nope")
    with pytest.raises(ValueError, match="rejected_weights"):
        cdpo_loss(chosen, rejected, weights[:, :3], chosen_mask, rejected_mask)
    with pytest.raises(ValueError, match="same width"):
        cdpo_loss(chosen, rejected[:, :3], weights[:, :3], chosen_mask, rejected_mask[:, :3], form="per_position")


# ----------------------------------------------------------------------------------------------------- trainer
def preference_dataset(size=8, seed=0, weights="random"):
    """Arithmetic prompts with a right and a wrong answer; one weight per rejected character (EOS left out)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        wrong = a + b + rng.choice([-10, -1, 1, 10])
        rejected = f"{wrong}"
        rows.append(
            {
                "prompt": f"{a}+{b}=",
                "chosen": f"{a + b}",
                "rejected": rejected,
                "rejected_token_weights": [1.0 if weights == "ones" else rng.random() for _ in rejected],
            }
        )
    return Dataset.from_list(rows)


DPO_ARGS = dict(
    per_device_train_batch_size=4,
    max_steps=2,
    learning_rate=0.05,
    optim="sgd",
    lr_scheduler_type="constant",
    beta=0.5,
    logging_steps=1,
    report_to="none",
    use_cpu=True,
    bf16=False,  # TRL defaults to bf16, which autocasts the reference model's forward even on a CPU
    save_strategy="no",
    disable_tqdm=True,
    seed=0,
)


def cdpo_trainer(tmp_path, dataset=None, ref_model=None, model=None, **args):
    """A cDPO trainer on the tiny model (float64); the reference is a copy of the initial policy unless given."""
    tokenizer = build_tokenizer()
    if ref_model is None and not args.get("precompute_ref_log_probs"):
        ref_model = build_tiny_model(tokenizer).double()  # passed explicitly: TRL would load it from the hub
    config = CriticalTokenDPOConfig(output_dir=str(tmp_path), **{**DPO_ARGS, **args})
    return CriticalTokenDPOTrainer(
        model=model if model is not None else build_tiny_model(tokenizer).double(),
        ref_model=ref_model,
        args=config,
        train_dataset=dataset if dataset is not None else preference_dataset(),
        processing_class=tokenizer,
    )


def losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


@pytest.mark.slow
def test_unit_weights_train_exactly_like_trl_dpo(tmp_path):
    tokenizer = build_tokenizer()
    dataset = preference_dataset(weights="ones")
    ours = cdpo_trainer(tmp_path / "ours", dataset, ref_model=build_tiny_model(tokenizer).double())
    theirs = DPOTrainer(
        model=build_tiny_model(tokenizer).double(),
        ref_model=build_tiny_model(tokenizer).double(),
        args=DPOConfig(output_dir=str(tmp_path / "trl"), **DPO_ARGS),
        train_dataset=dataset.remove_columns("rejected_token_weights"),
        processing_class=tokenizer,
    )
    ours.train()
    theirs.train()
    assert losses(ours) == pytest.approx(losses(theirs), abs=1e-12)
    assert losses(ours)[1] != pytest.approx(losses(ours)[0])  # the policy moved
    for (name, p), q in zip(ours.model.named_parameters(), theirs.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12, msg=name)


def per_token_logps(model, input_ids, attention_mask):
    """log p(x_t | x_<t) of every token but the first, straight from the logits (independent of TRL)."""
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    return torch.log_softmax(logits.double(), dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)


@pytest.mark.parametrize("form", ["sequence", "per_position"])
def test_trainer_loss_equals_hand_formula(tmp_path, form):
    tokenizer = build_tokenizer()
    reference = build_tiny_model(tokenizer, seed=1).double()
    trainer = cdpo_trainer(tmp_path, ref_model=reference, cdpo_form=form)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    loss = trainer.compute_loss(trainer.model, batch)

    mask = batch["completion_mask"][:, 1:].double()
    delta = per_token_logps(trainer.model, batch["input_ids"], batch["attention_mask"]) - per_token_logps(
        reference, batch["input_ids"], batch["attention_mask"]
    )
    chosen_delta, rejected_delta = (delta * mask).chunk(2)
    chosen_mask, rejected_mask = mask.chunk(2)
    rejected_weights = batch["token_weights"][:, 1:].double().chunk(2)[1]
    # The weights line up with the rejected completion tokens, EOS weight 1 appended by the trainer.
    for row in range(4):
        given = preference_dataset()[row]["rejected_token_weights"]  # the same rows cdpo_trainer trains on
        got = rejected_weights[row][rejected_mask[row].bool()]
        torch.testing.assert_close(got, torch.tensor([*given, 1.0], dtype=torch.float64))
    if form == "sequence":
        margin = chosen_delta.sum(1) - (rejected_weights * rejected_delta).sum(1)
        expected_loss = -F.logsigmoid(0.5 * margin).mean()
    else:
        positions = ((chosen_mask + rejected_mask) > 0).double()
        per_position = -F.logsigmoid(0.5 * (chosen_delta - rejected_weights * rejected_delta))
        expected_loss = (per_position * positions).sum() / positions.sum()
    assert abs(expected_loss.item() - math.log(2)) > 1e-3  # the two models differ: not the trivial log 2
    assert loss.item() == pytest.approx(expected_loss.item(), abs=1e-6)


def test_weight_metrics_are_the_rejected_token_weights(tmp_path):
    dataset = preference_dataset(size=4)
    trainer = cdpo_trainer(tmp_path, dataset)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    trainer.compute_loss(trainer.model, batch)
    flat = [w for row in dataset["rejected_token_weights"] for w in row + [1.0]]  # EOS weight 1
    metrics = trainer._metrics["train"]
    assert metrics["critical/weight_mean"][-1] == pytest.approx(sum(flat) / len(flat))
    assert metrics["critical/frac_below_0.5"][-1] == pytest.approx(sum(w < 0.5 for w in flat) / len(flat))


@pytest.mark.parametrize(
    ("eos_weight", "expected"),
    [("score", [0.1562052655, 0.9099694268, 0.9841237600]), ("one", [0.1562052655, 0.9099694268, 1.0])],
)
def test_eos_weight_follows_the_paper_or_the_official_code(tmp_path, eos_weight, expected):
    """docs/methods/cdpo.md, implementation detail 5: the rejected answer "12" is the tokens 1, 2, EOS; its weights
    are the docs/methods/cdpo.md Worked example ones, scored by `critical_token_weights`, so the EOS has 1 − s_EOS = 0.98412376.
    "score" (the paper) keeps it; "one" (the official code) replaces it by 1. Weight means 0.6834328174 / 0.6887248974.
    """
    from trl_reasoning.token_weights import critical_token_weights

    positive = torch.tensor([[[2.0, 1, 0], [0, 0.5, 1], [1, 0, 0]]], dtype=torch.float64)
    negative = torch.tensor([[[1.0, 1, 0], [0, 0, 3], [0, 2, 0]]], dtype=torch.float64)
    scored = critical_token_weights(positive, negative, torch.tensor([[0, 2, 1]]))[0].tolist()
    assert scored == pytest.approx(WEIGHTS, abs=1e-10)
    dataset = Dataset.from_list(
        [{"prompt": "2+3=", "chosen": "5", "rejected": "12", "rejected_token_weights": scored}]
    )
    tokenizer = build_tokenizer()
    trainer = cdpo_trainer(tmp_path, dataset, eos_weight=eos_weight)
    row = trainer.train_dataset[0]
    assert row["rejected_ids"][-1] == tokenizer.eos_token_id and len(row["rejected_ids"]) == 3
    assert row["rejected_token_weights"] == pytest.approx(expected, abs=1e-10)

    batch = trainer.data_collator([row])
    rejected_weights = batch["token_weights"][1][batch["completion_mask"][1].bool()]
    assert rejected_weights.tolist() == pytest.approx(expected, abs=1e-7)
    trainer.compute_loss(trainer.model, batch)
    mean = {"score": 0.6834328174, "one": 0.6887248974}[eos_weight]
    assert trainer._metrics["train"]["critical/weight_mean"][-1] == pytest.approx(mean, abs=1e-7)


def test_eos_weight_one_short_column_and_bad_values(tmp_path):
    # A column without the EOS weight gives the EOS 1 under either rule; an unknown rule names the valid ones.
    dataset = Dataset.from_list(
        [{"prompt": "2+3=", "chosen": "5", "rejected": "12", "rejected_token_weights": [0.3, 0.2]}]
    )
    for rule in ("score", "one"):
        trainer = cdpo_trainer(tmp_path / rule, dataset, eos_weight=rule)
        assert trainer.train_dataset[0]["rejected_token_weights"] == pytest.approx([0.3, 0.2, 1.0])
    with pytest.raises(ValueError, match=r"eos_weight='last' is not valid.*\['score', 'one'\]"):
        CriticalTokenDPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", eos_weight="last")


@pytest.mark.slow
def test_precomputed_reference_gives_the_same_losses(tmp_path):
    tokenizer = build_tokenizer()
    runs = {}
    for precompute in (False, True):
        trainer = cdpo_trainer(
            tmp_path / str(precompute),
            ref_model=build_tiny_model(tokenizer, seed=1).double(),
            precompute_ref_log_probs=precompute,
        )
        trainer.train()
        runs[precompute] = losses(trainer)
    assert runs[True] == pytest.approx(runs[False], abs=1e-9)
    assert abs(runs[False][0] - math.log(2)) > 1e-3


@pytest.mark.slow
def test_peft_policy_with_precomputed_reference(tmp_path):
    from peft import LoraConfig

    runs = {}
    for precompute in (False, True):
        tokenizer = build_tokenizer()
        config = CriticalTokenDPOConfig(
            output_dir=str(tmp_path / str(precompute)),
            **{**DPO_ARGS, "max_steps": 3, "learning_rate": 0.5, "precompute_ref_log_probs": precompute},
        )
        trainer = CriticalTokenDPOTrainer(
            model=build_tiny_model(tokenizer).double(),
            args=config,
            train_dataset=preference_dataset(),
            processing_class=tokenizer,
            peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
        )
        trainer.train()
        runs[precompute] = losses(trainer)
        assert any(entry.get("critical/weight_mean") for entry in trainer.state.log_history)
    assert runs[True] == pytest.approx(runs[False], abs=1e-9)
    assert (
        abs(runs[False][0] - math.log(2)) > 1e-4
    )  # init_lora_weights=False: the adapter moves the policy off the base


def test_missing_or_misaligned_weights_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no 'rejected_token_weights' column"):
        cdpo_trainer(tmp_path, preference_dataset().remove_columns("rejected_token_weights"))
    bad = preference_dataset().map(lambda row: {"rejected_token_weights": row["rejected_token_weights"] + [0.5, 0.5]})
    with pytest.raises(
        ValueError, match="rejected_token_weights has 5 weights but the rejected completion has 4 tokens"
    ):
        cdpo_trainer(tmp_path, bad)
    nan = preference_dataset().map(lambda row: {"rejected_token_weights": [float("nan")] * len(row["rejected"])})
    with pytest.raises(ValueError, match="NaN"):
        cdpo_trainer(tmp_path, nan)


def test_config_rejects_incompatible_options(tmp_path):
    def config(**kwargs):
        return CriticalTokenDPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)

    assert config().beta == 1.0  # the paper's gamma
    with pytest.raises(ValueError, match="precompute_ref_log_probs=False"):
        config(cdpo_form="per_position", precompute_ref_log_probs=True)
    with pytest.raises(ValueError, match="loss_type"):
        config(cdpo_form="per_position", loss_type=["ipo"])
    with pytest.raises(ValueError, match="cdpo_form='other' is not valid"):
        config(cdpo_form="other")
    with pytest.raises(ValueError, match="critical_negative_adapter"):
        config(critical_positive_adapter="pos")
    with pytest.raises(ValueError, match="use_weighting=False"):
        config(use_weighting=True)
    with pytest.raises(ValueError, match="critical_beta"):
        config(critical_beta=-1.0)


def test_recipe_defaults_are_one_cited_set():
    """recipes/cdpo.py defaults to the paper's training set (docs/methods/cdpo.md, implementation detail 6): γ = 1.0
    with learning rate 4e-5 (not TRL's 1e-6), 3 epochs, a LoRA of rank 16, α 32, dropout 0 on every linear layer, the
    code's warm-up ratio 0.1 and weight decay 0.01; a config file and flags still override them."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parents[2] / "recipes" / "cdpo.py"
    spec = importlib.util.spec_from_file_location("_cdpo_recipe_defaults", path)
    recipe = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = recipe  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(recipe)
        cpu = ["--output_dir", "out", "--use_cpu", "--bf16", "false"]
        _, training, model = recipe.make_parser().parse_args_and_config(cpu)
        assert (training.beta, training.learning_rate, training.num_train_epochs) == (1.0, 4e-5, 3)
        assert (training.warmup_steps, training.weight_decay, training.eos_weight) == (0.1, 0.01, "score")
        assert model.use_peft and (model.lora_r, model.lora_alpha, model.lora_dropout) == (16, 32, 0.0)
        assert model.lora_target_modules == "all-linear"
        _, training, model = recipe.make_parser().parse_args_and_config(
            [*cpu, "--beta", "0.1", "--use_peft", "false", "--eos_weight", "one"]
        )
        assert (training.beta, training.learning_rate, model.use_peft, training.eos_weight) == (
            0.1,
            4e-5,
            False,
            "one",
        )
        demo = str(path.parent / "configs" / "cdpo_demo.yaml")
        _, training, model = recipe.make_parser().parse_args_and_config(["--config", demo, "--output_dir", "out"])
        assert (training.learning_rate, training.warmup_steps, training.weight_decay) == (1e-4, 0, 0.0)
        assert not model.use_peft
    finally:
        del sys.modules[spec.name]

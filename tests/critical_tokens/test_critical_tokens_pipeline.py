"""cDPO pipeline: data selection for the contrastive models and pairs, and the two LoRA adapters on one base."""

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

from trl_reasoning.critical_tokens import ContrastiveData, select_contrastive_data
from trl_reasoning.embedded import arithmetic_problems, build_tiny_model, build_tokenizer


def rows(prompt, correct=(), wrong=()):
    """Rows for one prompt: ``correct`` answers, then ``wrong`` (answer, count) in this order of appearance.

    Completions are ``"<answer>#<i>"`` so a test can tell which group (and which sample) was picked.
    """
    out = [
        {"prompt": prompt, "completion": f"{a}#{i}", "correct": True, "extracted_answer": a}
        for i, a in enumerate(correct)
    ]
    for answer, count in wrong:
        out += [
            {"prompt": prompt, "completion": f"{answer}#{i}", "correct": False, "extracted_answer": answer}
            for i in range(count)
        ]
    return out


def groups(dataset, column="completion"):
    return [c.split("#")[0] for c in dataset[column]]


# ---------------------------------------------------------------- selection


@pytest.mark.parametrize(
    "wrong, top_p, kept",
    [
        ([("A", 5), ("B", 3), ("C", 1), ("D", 1)], 0.5, ["A"]),  # 5/10 >= 0.5
        ([("A", 4), ("B", 3), ("C", 3)], 0.5, ["A", "B"]),  # 4/10 < 0.5 <= 7/10; B beats C by first appearance
        ([("A", 4), ("C", 3), ("B", 3)], 0.5, ["A", "C"]),  # the tie goes to the answer seen first
        ([("A", 3), ("B", 3), ("C", 2)], 1.0, ["A", "B", "C"]),  # top_p 1 keeps every answer
        ([("A", 4), ("B", 3), ("C", 2), ("D", 1)], 0.7, ["A", "B"]),  # 7/10 reaches 0.7 (no float round-up to 8)
        ([("A", 1), ("B", 1), ("C", 1), ("D", 1)], 0.5, ["A", "B"]),
        ([("A", 1)], 0.01, ["A"]),
        ([("B", 1), ("A", 2)], 0.5, ["A"]),  # frequency first, then order
    ],
)
def test_negative_top_p_coverage(wrong, top_p, kept):
    data = select_contrastive_data(rows("q", ["7"], wrong), negative_top_p=top_p)
    assert groups(data.negative) == kept
    assert groups(data.pairs, "rejected") == kept[:1]  # the most frequent wrong answer
    assert data.negative["prompt"] == ["q"] * len(kept)


def test_negative_skip_singletons_is_the_official_code_variant():
    wrong = [("A", 3), ("B", 1), ("C", 1), ("D", 1), ("E", 1), ("F", 1)]  # 8 wrong, need 4
    assert groups(select_contrastive_data(rows("q", ["7"], wrong)).negative) == ["A", "B"]
    code = select_contrastive_data(rows("q", ["7"], wrong), negative_skip_singletons=True)
    assert groups(code.negative) == ["A"]  # the singletons after the first answer are never kept
    only_singletons = select_contrastive_data(rows("q", [], [("A", 1), ("B", 1)]), negative_skip_singletons=True)
    assert groups(only_singletons.negative) == ["A"]  # ... but the first answer is kept even when seen once
    larger = select_contrastive_data(rows("q", [], [("A", 2), ("B", 2), ("C", 2)]), negative_skip_singletons=True)
    assert groups(larger.negative) == ["A", "B"]


def test_one_positive_per_question_drawn_among_correct_and_paired_with_it():
    samples = []
    for q in range(20):
        samples += rows(f"q{q}", ["7", "7", "7", "7"], [("A", 2), ("B", 1)])
    data = select_contrastive_data(samples)
    assert isinstance(data, ContrastiveData)
    assert data.positive["prompt"] == [f"q{q}" for q in range(20)]
    assert set(data.positive["completion"]) <= {"7#0", "7#1", "7#2", "7#3"}
    assert len(set(data.positive["completion"])) > 1  # random among the correct ones, not always the first
    assert data.pairs["chosen"] == data.positive["completion"]  # the pair reuses the positive trajectory
    assert data.pairs["rejected"] == data.negative["completion"]  # ... and the most frequent wrong answer's
    assert set(data.negative["completion"]) <= {"A#0", "A#1"}
    assert data.pairs.column_names == ["prompt", "chosen", "rejected"]
    assert data.positive.column_names == data.negative.column_names == ["prompt", "completion"]


def test_positive_from_most_frequent_answer_is_the_official_code_variant():
    samples = []
    for q in range(10):
        samples += rows(f"q{q}", ["12", "12.0", "12.0", "12.0"], [("A", 1)])
    assert "12" in groups(select_contrastive_data(samples).positive)  # paper: any correct trajectory
    code = select_contrastive_data(samples, positive_from_most_frequent_answer=True)
    assert groups(code.positive) == ["12.0"] * 10


def test_questions_without_both_sides_give_no_pair_and_stats():
    samples = (
        rows("both", ["7"], [("A", 2)])
        + rows("all_correct", ["7", "7"])
        + rows("all_wrong", [], [("A", 1), ("B", 3)])
        + rows("no_answer_wrong", ["7"], [(None, 2), ("", 1)])
    )
    data = select_contrastive_data(samples)
    assert data.pairs["prompt"] == ["both"]
    assert data.positive["prompt"] == ["both", "all_correct", "no_answer_wrong"]
    assert data.negative["prompt"] == ["both", "all_wrong"]
    assert groups(data.negative) == ["A", "B"]
    assert data.stats == {
        "questions": 4,
        "samples": 13,
        "correct": 4,
        "wrong": 9,
        "wrong_no_answer": 3,
        "all_correct": 1,
        "all_wrong": 1,
        "only_no_answer_wrong": 1,
        "with_pair": 1,
        "positive": 3,
        "negative": 2,
        "pairs": 1,
    }


def test_no_answer_wrong_samples_are_left_out_of_coverage_and_selection():
    samples = rows("q", ["7"], [(None, 5), ("A", 1), ("  ", 2), ("B", 1)])
    data = select_contrastive_data(samples)
    # 2 wrong samples with an answer -> need 1 -> just A; with the 7 no-answer ones counted it would need 5
    assert groups(data.negative) == ["A"]
    assert data.stats["wrong_no_answer"] == 7
    # a correct sample is trusted whatever its extracted answer
    assert select_contrastive_data(rows("q", [None], [("A", 1)])).pairs["chosen"] == ["None#0"]


def test_answers_are_compared_as_stripped_strings():
    samples = rows("q", ["7"], [("12", 1), ("13", 1), (" 12 ", 1), (12, 1), ("14", 1)])
    data = select_contrastive_data(samples)  # 12 x3, 13, 14: need 3 -> the "12" group alone
    assert len(data.negative) == 1 and data.negative["completion"][0].strip().startswith("12")


def test_conversational_prompts_and_dataset_input():
    messages = [[{"role": "user", "content": f"{q}+1="}] for q in range(3)]
    samples = []
    for m in messages:
        samples += rows(m, ["x"], [("A", 2), ("B", 1)])
    for completion_row in samples:  # conversational completions too
        completion_row["completion"] = [{"role": "assistant", "content": completion_row["completion"]}]
    from_list = select_contrastive_data(samples, seed=3)
    from_dataset = select_contrastive_data(Dataset.from_list(samples), seed=3)
    assert from_list.pairs["prompt"] == messages
    assert from_list.positive["completion"][0][0]["role"] == "assistant"
    for name in ("positive", "negative", "pairs"):
        assert getattr(from_list, name).to_list() == getattr(from_dataset, name).to_list()
    assert from_list.stats == from_dataset.stats


def test_deterministic_under_seed_and_custom_columns():
    samples = []
    for q in range(30):
        samples += rows(f"q{q}", ["7"] * 5, [("A", 3), ("B", 3), ("C", 2)])
    renamed = [
        {"p": r["prompt"], "c": r["completion"], "ok": r["correct"], "ans": r["extracted_answer"]} for r in samples
    ]
    kwargs = dict(prompt_column="p", completion_column="c", correct_column="ok", answer_column="ans")
    first = select_contrastive_data(renamed, seed=1, **kwargs)
    again = select_contrastive_data(renamed, seed=1, **kwargs)
    other = select_contrastive_data(renamed, seed=2, **kwargs)
    assert first.positive.to_list() == again.positive.to_list()
    assert first.negative.to_list() == again.negative.to_list()
    assert first.pairs.to_list() == again.pairs.to_list()
    assert first.positive.to_list() != other.positive.to_list()
    assert groups(first.negative) == groups(other.negative) == ["A", "B"] * 30  # the seed picks trajectories only


@pytest.mark.parametrize("column", ["prompt", "completion", "correct", "extracted_answer"])
def test_missing_column_is_named(column):
    samples = rows("q", ["7"], [("A", 1)])
    with pytest.raises(ValueError, match=repr(column)):
        select_contrastive_data([{k: v for k, v in r.items() if k != column} for r in samples])
    with pytest.raises(ValueError, match=repr(column)):
        select_contrastive_data(Dataset.from_list(samples).remove_columns(column))


@pytest.mark.parametrize("top_p", [0, -0.1, 1.01, 2, True, "0.5"])
def test_top_p_outside_unit_interval(top_p):
    with pytest.raises(ValueError, match="negative_top_p"):
        select_contrastive_data(rows("q", ["7"], [("A", 1)]), negative_top_p=top_p)


def test_empty_and_none_correct():
    empty = select_contrastive_data([])
    assert len(empty.pairs) == 0 and empty.pairs.column_names == ["prompt", "chosen", "rejected"]
    with pytest.raises(ValueError, match="'correct'"):
        select_contrastive_data([{"prompt": "q", "completion": "c", "correct": None, "extracted_answer": "1"}])


# ---------------------------------------------------------------- adapters


def arithmetic_samples(n=8):
    """Conversational samples per problem: the gold answer (correct), gold+1 twice and gold+2 (wrong)."""
    samples = []
    for problem in arithmetic_problems(n):
        prompt = [{"role": "user", "content": f"{problem['question']}="}]
        gold = int(problem["answer"])
        for value, correct in ((gold, True), (gold + 1, False), (gold + 1, False), (gold + 2, False)):
            completion = [{"role": "assistant", "content": str(value)}]
            samples.append({"prompt": prompt, "completion": completion, "correct": correct, "extracted_answer": value})
    return samples


class ParameterSnapshots(TrainerCallback):
    """Records every parameter at the start and the end of each training run."""

    def __init__(self):
        self.runs = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.runs.append({"begin": {n: p.detach().clone() for n, p in model.named_parameters()}})

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.runs[-1]["end"] = {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from trl_reasoning.critical_tokens import contrastive_sft_config, train_contrastive_adapters

    tmp = tmp_path_factory.mktemp("cdpo_adapters")
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer)
    data = select_contrastive_data(arithmetic_samples())
    config = contrastive_sft_config(
        str(tmp / "sft"),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        warmup_steps=0,
        gradient_checkpointing=False,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    snapshots = ParameterSnapshots()
    peft_model = train_contrastive_adapters(
        model, tokenizer, data.positive, data.negative, output_dir=str(tmp), sft_config=config, callbacks=[snapshots]
    )
    batch = tokenizer(["3+4=7", "12*2=24"], return_tensors="pt", padding=True)
    return dict(peft_model=peft_model, base=model, tokenizer=tokenizer, snapshots=snapshots, out=tmp, batch=batch)


def test_default_configs_follow_the_official_code(tmp_path):
    from trl_reasoning.critical_tokens import contrastive_lora_config, contrastive_sft_config

    lora = contrastive_lora_config()
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 16, 0.1)
    assert set(lora.target_modules) == {"gate_proj", "up_proj", "down_proj"}
    config = contrastive_sft_config(str(tmp_path), max_steps=2)
    assert (config.learning_rate, config.num_train_epochs, config.warmup_steps) == (3e-4, 1, 100)
    assert config.max_steps == 2 and config.report_to in ("none", [], ["none"])
    if not torch.cuda.is_available():
        assert config.use_cpu and not config.bf16


def changed(before, after, marker):
    names = [n for n in before if marker in n]
    assert names, marker
    return {n: not torch.equal(before[n], after[n]) for n in names}


@pytest.mark.slow
def test_only_the_active_adapter_trains_and_the_base_is_shared(trained):
    peft_model, runs = trained["peft_model"], trained["snapshots"].runs
    assert sorted(peft_model.peft_config) == ["negative", "positive"]
    assert peft_model.get_base_model() is trained["base"]  # LoRA injected in place: one copy of the base weights
    assert len(runs) == 2
    positive_run, negative_run = runs
    assert any(changed(positive_run["begin"], positive_run["end"], ".lora_B.positive.").values())
    assert all(changed(positive_run["begin"], positive_run["end"], ".lora_A.positive.").values())
    assert not any(changed(positive_run["begin"], positive_run["end"], ".negative.").values())
    assert all(changed(negative_run["begin"], negative_run["end"], ".lora_A.negative.").values())
    assert not any(changed(negative_run["begin"], negative_run["end"], ".positive.").values())
    base_names = [n for n in positive_run["begin"] if "lora_" not in n]
    assert all(torch.equal(positive_run["begin"][n], negative_run["end"][n]) for n in base_names)
    assert not any(p.requires_grad for p in peft_model.parameters())
    assert not peft_model.training and peft_model.active_adapter == "positive"


@pytest.mark.slow
def test_hidden_states_differ_per_adapter_and_restore_state(trained):
    from trl_reasoning.critical_tokens import adapter_hidden_states, lm_head

    peft_model, batch = trained["peft_model"], trained["batch"]
    gate = peft_model.get_base_model().model.layers[0].mlp.gate_proj
    pointer = gate.base_layer.weight.data_ptr()
    peft_model.set_adapter("negative")
    peft_model.train()
    flags = {n: p.requires_grad for n, p in peft_model.named_parameters()}
    hidden = {name: adapter_hidden_states(peft_model, name, **batch) for name in ("positive", "negative", None)}
    assert peft_model.active_adapter == "negative" and peft_model.training
    assert flags == {n: p.requires_grad for n, p in peft_model.named_parameters()}
    assert gate.base_layer.weight.data_ptr() == pointer  # both adapters run on the same base tensor
    assert hidden["positive"].shape == (2, batch["input_ids"].shape[1], 64)
    assert not hidden["positive"].requires_grad
    assert not torch.allclose(hidden["positive"], hidden["negative"])
    assert not torch.allclose(hidden["positive"], hidden[None])
    with pytest.raises(ValueError, match="unknown"):
        adapter_hidden_states(peft_model, "unknown", **batch)

    peft_model.set_adapter("positive")
    peft_model.eval()
    weight, bias = lm_head(peft_model)
    assert bias is None and weight.shape == (len(trained["tokenizer"]), 64)
    with torch.no_grad():
        logits = peft_model(**batch).logits
    torch.testing.assert_close(hidden["positive"] @ weight.T, logits, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_saved_adapters_reload_to_the_same_outputs(trained):
    from trl_reasoning.critical_tokens import adapter_hidden_states, load_contrastive_adapters

    out, batch = trained["out"], trained["batch"]
    for name in ("positive", "negative"):
        assert (out / name / "adapter_config.json").is_file()
    reloaded = load_contrastive_adapters(
        build_tiny_model(trained["tokenizer"]), str(out / "positive"), str(out / "negative")
    )
    assert sorted(reloaded.peft_config) == ["negative", "positive"] and reloaded.active_adapter == "positive"
    for name in ("positive", "negative"):
        torch.testing.assert_close(
            adapter_hidden_states(reloaded, name, **batch), adapter_hidden_states(trained["peft_model"], name, **batch)
        )


def test_package_and_selection_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import trl_reasoning.critical_tokens as cdpo\n"
        "row = {'prompt': 'q', 'completion': 'c', 'correct': True, 'extracted_answer': '1'}\n"
        "print(cdpo.select_contrastive_data([row]).stats['positive'])\n"
        "print(sorted(name for name in ('torch', 'trl', 'peft', 'transformers') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["1", "[]"], result.stderr

"""recipes/evaluate.py on a model trained by recipes/grpo.py, and benchmarks/methods_toy.py's smoke run."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from test_recipes import ROOT, load_recipe, run_grpo


def run_evaluate(*flags: str) -> dict:
    recipe = load_recipe("evaluate")
    return recipe.main(*recipe.make_parser().parse_args_and_config(args=list(flags)))


@pytest.mark.slow
def test_evaluate_recipe_scores_a_trained_model_on_its_held_out_problems(tmp_path, capsys):
    run_grpo(tmp_path / "train")
    summary = run_evaluate(
        "--model_name_or_path", str(tmp_path / "train"), "--num_eval_prompts", "16", "--n", "8",
        "--output_dir", str(tmp_path / "eval"),
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "pass@k" in printed and "maj@k" in printed and "16 problems x 8 samples (transformers)" in printed
    written = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert written == summary
    assert written["num_problems"] == 16 and written["samples_per_problem"] == 8
    assert list(written["pass@k"]) == ["1", "2", "4", "8"] == list(written["maj@k"])
    assert written["pass@k"]["1"] == pytest.approx(written["accuracy"])
    values = list(written["pass@k"].values())
    assert values == sorted(values)
    samples = [json.loads(line) for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 128 and sum(s["correct"] for s in samples) / 128 == pytest.approx(written["accuracy"])
    # the evaluated problems are the training recipe's held-out ones, which it never trained on
    from trl_reasoning.recipes import DatasetArguments, load_task

    task = load_task(DatasetArguments(num_eval_prompts=16))
    held_out = {row["prompt"][-1]["content"] for row in task.evaluation}
    trained = {row["prompt"][-1]["content"] for row in task.train}
    assert held_out.isdisjoint(trained)
    assert {s["answer"] for s in samples} == {row["answer"] for row in task.evaluation}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "0"], "use a temperature > 0"),
        (["--n", "0"], "draw at least one sample"),
        (["--num_eval_prompts", "0"], "evaluate at least one problem"),
    ],
)
def test_evaluate_recipe_refuses_bad_flags(flags, message):
    recipe = load_recipe("evaluate")
    with pytest.raises(ValueError, match=message):
        recipe.make_parser().parse_args_and_config(args=flags)


def test_evaluate_recipe_needs_a_model_for_a_dataset(tmp_path):
    with pytest.raises(ValueError, match="--dataset_name needs --model_name_or_path"):
        run_evaluate("--dataset_name", "some/dataset", "--dataset_test_split", "test", "--output_dir", str(tmp_path))


@pytest.mark.slow
def test_methods_toy_smoke_runs_every_method_and_the_plots_read_it(tmp_path):
    data_json = tmp_path / "data" / "methods_toy.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "methods_toy.py"), "--smoke", "--seeds", "0", "1"]
    command += ["--out-dir", str(tmp_path / "work"), "--data-json", str(data_json)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| method | pass@1 | pass@2 | pass@4 | maj@4 | correct len | train s |" in result.stdout
    data = json.loads(data_json.read_text())
    labels = ["start (warm-up)", "GRPO", "PSR", "NSR", "W-REINFORCE", "DRPO", "drpo_length", "BNPO", "TOPR"]
    assert [row["label"] for row in data["summary"]] == labels
    assert all(row["seeds"] == 2 for row in data["summary"])
    assert len(data["runs"]) == 2 * len(labels) and data["ks"] == [1, 2, 4] and data["steps"] == 2
    # each method trains with its recipe config's settings, and nothing else differs between methods
    settings = {run["label"]: run["settings"] for run in data["runs"] if "settings" in run}
    expected = {
        "GRPO": {"advantage_estimator": "grpo", "policy_loss": "trl", "loss_type": "grpo"},
        "PSR": {"advantage_estimator": "psr", "loss_type": "dapo"},
        "NSR": {"advantage_estimator": "nsr", "loss_type": "dapo"},
        "W-REINFORCE": {"advantage_estimator": "w_reinforce", "positive_weight": 0.1, "loss_type": "dapo"},
        "DRPO": {"policy_loss": "drpo", "length_lambda": 0.1, "drpo_kl_beta": 1000.0},
        "drpo_length": {"advantage_estimator": "drpo_length", "length_lambda": 0.1},
        "BNPO": {"advantage_estimator": "beta_norm", "loss_type": "luspo"},
        "TOPR": {"policy_loss": "topr", "topr_target_positive_fraction": 0.15},
    }
    for label, keys in expected.items():
        assert keys.items() <= settings[label].items(), label
    for label, config in (("NSR", "nsr"), ("TOPR", "topr")):
        on_disk = yaml.safe_load((ROOT / "recipes" / "configs" / f"{config}.yaml").read_text())
        assert all(on_disk[key] == value for key, value in settings[label].items())
    assert data["shared_settings"]["learning_rate"] == 1e-3 and data["shared_settings"]["num_iterations"] == 1

    # the plots render from the smoke run's data (the other figures' data from the checked-in files)
    for other in (ROOT / "docs" / "figures" / "data").glob("*.json"):
        if other.name != "methods_toy.json":
            shutil.copy(other, data_json.parent)
    plots = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "figures" / "plot.py"), "--data-dir", str(data_json.parent),
         "--out-dir", str(tmp_path / "png")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert plots.returncode == 0, plots.stderr
    assert (tmp_path / "png" / "methods_toy_pass_at_k.png").exists() and (
        tmp_path / "png" / "methods_toy_length.png"
    ).exists()


def test_grpo_recipe_logs_pass_at_k_during_training(tmp_path):
    summary = run_grpo(tmp_path, "--pass_at_k_samples", "4", "--pass_at_k_steps", "1")
    rows = [row for row in summary["log_history"] if "eval/pass@1" in row]
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert set(row) >= {"eval/pass@1", "eval/pass@2", "eval/pass@4", "eval/maj@4", "eval/accuracy", "reward"}
        assert 0.0 <= row["eval/pass@1"] <= row["eval/pass@2"] <= row["eval/pass@4"] <= 1.0

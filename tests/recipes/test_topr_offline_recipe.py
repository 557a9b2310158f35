"""recipes/topr_offline.py end to end on the embedded default, with a small budget.

Every run happens in this process (``main`` of the imported recipe): a subprocess per run would cost ~14 s of
``import trl`` each. One module-scoped run warms the tiny model up and samples (``--sampling_only``); the tests then
train on those cached samples, read them back as a ``--completions_dataset``, and check the multi-process guard.
"""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk

from trl_reasoning.embedded import last_integer


ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "recipes" / "configs" / "topr_offline.yaml"
# A small budget: 32 prompts x 4 samples, a few steps, a small held-out set. The warm-up runs to the config's target
# (30 % greedy accuracy, reached in 650 to 1150 steps depending on the seed and the CPU's kernels): cut at 400 steps
# it was right on as few as 3 of the 128 samples (seed 2), so a path with none would fail the +1/-1 check below.
QUICK = [
    *("--warmup_max_steps", "2000", "--num_train_prompts", "32", "--num_samples", "4"),
    *("--num_eval_prompts", "16", "--per_device_train_batch_size", "16", "--max_steps", "3"),
    *("--logging_steps", "1", "--disable_tqdm", "true"),
]
TOPR_METRICS = {"topr/alpha_negative_mean", "topr/frac_truncated", "topr/positive_fraction", "topr/baseline"}

pytestmark = pytest.mark.slow


def load_recipe():
    name = "recipe_topr_offline"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "recipes" / "topr_offline.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def run(recipe, output_dir: Path, *flags: str):
    args = ["--config", str(CONFIG), "--output_dir", str(output_dir), *QUICK, *flags]
    return recipe.main(*recipe.make_parser().parse_args_and_config(args=args))


def logged_keys(summary: dict) -> set[str]:
    return {key for row in summary["log_history"] for key in row}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """An output dir after ``--sampling_only``: the warmed-up model and the labelled samples, no training."""
    output_dir = tmp_path_factory.mktemp("topr_offline")
    result = run(load_recipe(), output_dir, "--sampling_only", "true")
    return output_dir, result


def test_sampling_only_writes_samples_labelled_plus_minus_one(sampled):
    output_dir, result = sampled
    samples_dir = output_dir / "samples"
    assert (samples_dir / "dataset_info.json").exists() and (samples_dir / "sampling.json").exists()
    assert not (output_dir / "summary.json").exists()  # stopped before training
    samples = load_from_disk(str(samples_dir))
    assert len(samples) == result["samples"] == 32 * 4
    assert set(samples["reward"]) == {-1.0, 1.0}  # the paper's rewards; the warmed-up model is sometimes right
    # Each reward is the correctness of the completion text against the gold answer, checked independently.
    for row in samples:
        text = row["completion"][0]["content"]
        expected = 1.0 if last_integer(text) == row["answer"] else -1.0
        assert row["reward"] == expected, row
    share = sum(r > 0 for r in samples["reward"]) / len(samples)
    assert result["positive_fraction"] == pytest.approx(share)


def test_training_reuses_the_cached_samples(sampled, monkeypatch):
    output_dir, _ = sampled
    recipe = load_recipe()

    def no_sampling(*args, **kwargs):
        raise AssertionError("the samples are cached: the recipe must not sample again")

    monkeypatch.setattr(recipe, "sample_completions", no_sampling)
    summary = run(recipe, output_dir)
    assert summary["steps"] == 3 and summary["completions"] == 32 * 4
    assert summary["method"] == "TOPR" and summary["eval_prompts"] == 16
    assert 0.0 <= summary["accuracy_before"] <= 1.0 and 0.0 <= summary["accuracy_after"] <= 1.0
    assert 0.0 < summary["positive_fraction"] < 1.0
    assert TOPR_METRICS | {"loss"} <= logged_keys(summary), sorted(logged_keys(summary))
    on_disk = json.loads((output_dir / "summary.json").read_text())
    assert on_disk["steps"] == 3 and on_disk["accuracy_after"] == summary["accuracy_after"]
    assert (output_dir / "model.safetensors").exists() and (output_dir / "reward_curve.png").exists()
    # Samples made with other settings are not reused.
    with pytest.raises(AssertionError, match="must not sample again"):
        run(recipe, output_dir, "--num_samples", "2")


def test_completions_dataset_with_binary_rewards(sampled, tmp_path):
    """The samples read back as a --completions_dataset, their 0/1 `accuracy` column mapped to -1/+1."""
    output_dir, result = sampled
    shutil.copytree(output_dir / "warmup", tmp_path / "warmup")  # the same settings: the warm-up cache is reused
    flags = ["--completions_dataset", str(output_dir / "samples"), "--reward_column", "accuracy"]
    summary = run(load_recipe(), tmp_path, *flags, "--map_binary_rewards", "true", "--max_steps", "2")
    assert summary["steps"] == 2 and summary["completions"] == 32 * 4
    assert summary["positive_fraction"] == pytest.approx(result["positive_fraction"])
    assert TOPR_METRICS <= logged_keys(summary)
    assert not (tmp_path / "samples").exists()


def test_multi_process_run_without_samples_exits(tmp_path, monkeypatch):
    recipe = load_recipe()

    class TwoProcesses:
        num_processes = 2
        is_main_process = True

    monkeypatch.setattr(recipe, "PartialState", TwoProcesses)
    with pytest.raises(SystemExit, match="--sampling_only"):
        run(recipe, tmp_path)


def test_hub_model_needs_its_own_prompts(tmp_path):
    recipe = load_recipe()
    with pytest.raises(ValueError, match="--dataset_name"):
        run(recipe, tmp_path, "--model_name_or_path", "some/model")
    with pytest.raises(ValueError, match="--num_eval_prompts 0"):
        run(recipe, tmp_path, "--model_name_or_path", "some/model", "--completions_dataset", str(tmp_path))

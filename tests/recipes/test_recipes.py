"""recipes/grpo.py end to end on the embedded default: the demo learns, every method runs, the outputs are complete.

The method runs happen in this process (``main`` of the imported recipe): a subprocess per run would cost ~14 s of
``import trl`` each. The demo itself runs as ``make demo`` does, in a subprocess.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).parents[2]
DEMO = ROOT / "recipes" / "configs" / "demo.yaml"
# A short run: a small warm-up, 2 steps, a small held-out set.
QUICK = ["--max_steps", "2", "--logging_steps", "1", "--warmup_max_steps", "100", "--num_eval_prompts", "16"]


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_grpo(output_dir: Path, *flags: str) -> dict:
    recipe = load_recipe("grpo")
    args = ["--config", str(DEMO), "--output_dir", str(output_dir), *QUICK, *flags]
    return recipe.main(*recipe.make_parser().parse_args_and_config(args=args))


@pytest.mark.slow
@pytest.mark.parametrize(
    "seed, kernels",
    [(None, None), (1, "avx2"), (2, "default")],
    ids=["make-demo", "seed1-avx2-kernels", "seed2-portable-kernels"],
)
def test_demo_learns_and_writes_its_outputs(tmp_path, seed, kernels):
    """`make demo`'s command: held-out greedy accuracy clearly rises, and the summary, plot and table are there.

    Also with two other seeds, each on other kernels (torch's AVX2 ones, as on a CPU without AVX-512, and its
    portable ones), one thread: both change the floating-point trajectory the way another CPU does, so one lucky
    path cannot carry the test. The bound is the same for all three, on the same 200 held-out problems;
    benchmarks/demo_seeds.py measures 8 seeds on 4 paths (docs/recipes.md), these two runs included.
    """
    config = yaml.safe_load(DEMO.read_text())
    cmd = [sys.executable, str(ROOT / "recipes" / "grpo.py"), "--config", str(DEMO), "--output_dir", str(tmp_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if seed is not None:
        cmd += ["--seed", str(seed)]
        env |= {"ATEN_CPU_CAPABILITY": kernels, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    steps, every = config["max_steps"], config["logging_steps"]
    assert summary["steps"] == steps and summary["num_processes"] == 1 and summary["eval_prompts"] == 200
    assert summary["wall_seconds"] > 0
    # The warmed-up model is right on some held-out problems and wrong on others; RL makes it clearly better.
    assert 0.1 <= summary["accuracy_before"] <= 0.7
    assert summary["accuracy_after"] >= summary["accuracy_before"] + 0.15, summary
    assert (tmp_path / "reward_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one table row per logging step (step, reward, correct, length), and both accuracies stated
    rows = [line.split() for line in result.stderr.splitlines() + result.stdout.splitlines()]
    logged = [int(row[0]) for row in rows if len(row) == 4 and row[0].isdigit()]
    assert logged == list(range(every, steps + 1, every))
    assert f"{summary['accuracy_before']:.3f} before -> {summary['accuracy_after']:.3f} after" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, method, metric",
    [
        (["--advantage_estimator", "grpo"], "GRPO", "advantage/frac_correct"),
        (["--advantage_estimator", "nsr"], "GRPO with NSR", "advantage/mean_incorrect"),
        (["--advantage_estimator", "grpo", "--policy_loss", "drpo", "--length_lambda", "0.1"], "DRPO", "drpo/"),
        (["--advantage_estimator", "grpo", "--policy_loss", "topr", "--num_iterations", "2"], "TOPR", "topr/"),
        (["--advantage_estimator", "beta_norm", "--beta_norm_decompose", "true"], "GRPO with BNPO", "beta_norm/"),
    ],
    ids=["grpo", "nsr", "drpo", "topr", "beta_norm"],
)
def test_grpo_recipe_runs_every_method(tmp_path, flags, method, metric):
    summary = run_grpo(tmp_path, *flags)
    assert summary["method"] == method and summary["steps"] == 2
    logged = {key for row in summary["log_history"] for key in row}
    assert any(key.startswith(metric) for key in logged), sorted(logged)
    assert 0.0 <= summary["accuracy_before"] <= 1.0 and 0.0 <= summary["accuracy_after"] <= 1.0
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["steps"] == 2 and on_disk["accuracy_after"] == summary["accuracy_after"]
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "reward_curve.png").exists()


def test_grpo_recipe_trains_a_model_given_by_path(tmp_path):
    """--model_name_or_path as for a hub model (here a local directory): tokenizer and model load from it, the
    trainer gets its name plus model_init_kwargs (a regression: TRL 1.16's ModelConfig has no trust_remote_code)."""
    from trl_reasoning.embedded import build_tiny_model, build_tokenizer

    tokenizer = build_tokenizer()
    build_tiny_model(tokenizer).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    summary = run_grpo(tmp_path / "run", "--model_name_or_path", str(tmp_path / "model"), "--dtype", "float32")
    assert summary["steps"] == 2 and (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.slow
def test_warmup_is_cached_under_the_output_dir(tmp_path, monkeypatch):
    run_grpo(tmp_path)
    record = json.loads((tmp_path / "warmup" / "warmup.json").read_text())
    assert record["settings"]["warmup_max_steps"] == 100 and record["probe_accuracy_every_50_steps"]

    import trl_reasoning.embedded

    def no_second_warm_up(*args, **kwargs):
        raise AssertionError("the cached warm-up should have been reused")

    monkeypatch.setattr(trl_reasoning.embedded, "warm_up", no_second_warm_up)
    run_grpo(tmp_path)  # same settings: loads warmup/
    with pytest.raises(AssertionError, match="reused"):
        run_grpo(tmp_path, "--warmup_target_accuracy", "0.5")  # other settings: warms up again


def test_reward_funcs_by_name_and_import_path():
    from trl_reasoning.embedded import arithmetic_reward
    from trl_reasoning.recipes import DatasetArguments, load_task
    from trl_reasoning.recipes.task import build_rewards
    from trl_reasoning.rewards import boxed_format_reward, think_format_reward
    from trl_reasoning.testing import length_reward

    task = load_task(DatasetArguments(num_eval_prompts=8))
    rewards = build_rewards(["accuracy", "think_format", "boxed_format", "trl_reasoning.testing.length_reward"], task)
    assert rewards == [arithmetic_reward, think_format_reward, boxed_format_reward, length_reward]
    (overlong,) = build_rewards(["soft_overlong"], task, max_completion_length=8)
    # DAPO's proportions: a cache of 8/5 → 2 tokens, and half DAPO's punishment (0/1 accuracy, not ±1): 0 up to
    # 6 tokens, then 0.5·(6 − L)/2
    assert overlong(completion_ids=[[1] * 6, [1] * 7, [1] * 8]) == [0.0, -0.25, -0.5]
    (overlong,) = build_rewards(["soft_overlong"], task, max_completion_length=20480)
    # DAPO's own limit: L_cache = 4096, and docs/rewards.md's Worked example values halved
    lengths = [16000, 16384, 18000, 20480]
    assert overlong(completion_ids=[[1] * n for n in lengths]) == [0.0, 0.0, -0.197265625, -0.5]
    with pytest.raises(ValueError, match="unknown reward 'acuracy'.*Valid names"):
        build_rewards(["acuracy"], task)
    with pytest.raises(ValueError, match="cannot import"):
        build_rewards(["no_such_module.reward"], task)


def test_embedded_task_is_split_into_disjoint_problems():
    from trl_reasoning.recipes import DatasetArguments, load_task

    task = load_task(DatasetArguments(num_eval_prompts=50))
    assert task.embedded and len(task.evaluation) == 50 and len(task.train) == 1000 - 50
    train_prompts = {row["prompt"][0]["content"] for row in task.train}
    held_out = [row["prompt"][0]["content"] for row in task.evaluation]
    assert not train_prompts & set(held_out)
    row = task.evaluation[0]
    a, b = row["prompt"][0]["content"].rstrip("=").split("+")
    assert row["answer"] == str(int(a) + int(b)) and int(a) <= 99 and int(b) <= 9
    assert {r["difficulty"] for r in task.train} == {1, 2, 3, 4}  # 3+4, 13+4, 18+4 (carry), 98+4
    assert task.accuracy(["12", "13"], answer=["12", "12"]) == [1.0, 0.0]


def test_dataset_column_mapping_chat_template_and_held_out_rows(tmp_path):
    """A local dataset folder with other column names: mapped, turned into chat prompts, the last rows held out."""
    from trl_reasoning.recipes import DatasetArguments, load_task

    rows = [{"question": f"What is {i}+1?", "final": str(i + 1), "extra": i} for i in range(10)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    args = DatasetArguments(
        dataset_name=str(tmp_path),
        prompt_column="question",
        answer_column="final",
        system_prompt="Put the answer in \\boxed{}.",
        num_eval_prompts=3,
        num_train_prompts=4,
    )
    task = load_task(args)
    assert not task.embedded and len(task.train) == 4 and len(task.evaluation) == 3
    assert task.train[0]["prompt"] == [
        {"role": "system", "content": "Put the answer in \\boxed{}."},
        {"role": "user", "content": "What is 0+1?"},
    ]
    assert task.train[0]["solution"] == "1" and task.train[0]["extra"] == 0  # other columns reach the rewards
    assert [row["solution"] for row in task.evaluation] == ["8", "9", "10"]
    assert task.accuracy(["The answer is \\boxed{8}."], solution=["8"]) == [1.0]

    raw = load_task(
        DatasetArguments(
            dataset_name=str(tmp_path),
            prompt_column="question",
            answer_column="final",
            apply_chat_template=False,
            num_eval_prompts=0,
        )
    )
    assert raw.train[0]["prompt"] == "What is 0+1?" and len(raw.evaluation) == 0

    with pytest.raises(ValueError, match="no column 'problem'.*--prompt_column"):
        load_task(DatasetArguments(dataset_name=str(tmp_path), prompt_column="problem"))
    with pytest.raises(ValueError, match="num_eval_prompts=10 would hold out the whole"):
        load_task(
            DatasetArguments(
                dataset_name=str(tmp_path), prompt_column="question", answer_column="final", num_eval_prompts=10
            )
        )

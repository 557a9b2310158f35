"""Run TRL's own GRPO trainer tests twice, with stock ``trl.GRPOTrainer`` and with ``ReasoningGRPOTrainer`` swapped in.

TRL's tests are not in its wheel. This script reads them from a git checkout of huggingface/trl (``--trl-repo``, a
work tree or a bare git dir, at ``--commit``) into a scratch folder, never into this repository, and runs them
offline against local stand-ins of the hub models and datasets they name (``standins.py``: tiny random models with
a tiny BPE tokenizer in a fake hub cache, procedurally generated ``zen`` datasets). With the swap, a conftest rebinds
``trl.GRPOTrainer`` to ``trl_reasoning.ReasoningGRPOTrainer`` before the test module imports it; ``trl.GRPOConfig``
stays TRL's, so the tests pass TRL's own config to our trainer.

    python scripts/trl_compat/run_trl_grpo_tests.py --trl-repo ../trl --commit HEAD

prints passed / failed / skipped / error counts of both runs and every test whose outcome differs, and writes the
JUnit XML files and a ``summary.json`` into ``--work-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path


HERE = Path(__file__).resolve().parent
TEST_FILES = (
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/testing_utils.py",
    "tests/testing_constants.py",
    "tests/test_grpo_trainer.py",
)
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")

ROOT_CONFTEST = '''"""Written by trl-reasoning's scripts/trl_compat/run_trl_grpo_tests.py: offline stand-ins and the optional swap."""

import os
import sys

sys.path.insert(0, os.environ["TRL_COMPAT_STANDINS_DIR"])

import datasets  # noqa: E402
import standins  # noqa: E402

datasets.load_dataset = standins.patched_load_dataset(datasets.load_dataset, os.environ["TRL_COMPAT_DATA"])
standins.shim_import_utils()  # `is_<package>_available` helpers the tests import but this trl no longer has

if os.environ.get("TRL_COMPAT_SWAP") == "1":
    import trl  # noqa: E402
    from trl_reasoning import ReasoningGRPOTrainer  # noqa: E402

    trl.GRPOTrainer = ReasoningGRPOTrainer  # the test module's `from trl import GRPOTrainer` now gets ours


def pytest_report_collectionfinish(config, start_path, items):
    """Name the trainer class the collected test module uses, and refuse to run if it is not the intended one."""
    module = sys.modules.get("tests.test_grpo_trainer")
    if module is None:
        return None
    trainer = module.GRPOTrainer
    expected = "ReasoningGRPOTrainer" if os.environ.get("TRL_COMPAT_SWAP") == "1" else "GRPOTrainer"
    if trainer.__name__ != expected:
        raise RuntimeError(f"the tests would run {trainer!r}, not {expected}")
    return f"trainer under test: {trainer.__module__}.{trainer.__qualname__}"
'''

PYTEST_INI = """[pytest]
markers =
    slow: marks tests as slow
    low_priority: marks tests as low priority
    invariant: training-invariant checks
"""


def git_show(repo: Path, commit: str, path: str) -> str | None:
    result = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True, check=False
    )
    return result.stdout if result.returncode == 0 else None


def extract_tests(repo: Path, commit: str, destination: Path) -> str:
    """Write TRL's test files at ``commit`` under ``destination/tests`` (plus our conftest); returns the full hash."""
    full = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", f"{commit}^{{commit}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (destination / "tests").mkdir(parents=True, exist_ok=True)
    for path in TEST_FILES:
        text = git_show(repo, full, path)
        if text is None:
            if path.endswith("test_grpo_trainer.py"):
                raise SystemExit(f"{path} does not exist at {full} in {repo}")
            continue
        (destination / path).write_text(text)
    (destination / "conftest.py").write_text(ROOT_CONFTEST)
    (destination / "pytest.ini").write_text(PYTEST_INI)
    return full


def build_standins(work: Path, qwen_vocab: bool) -> Path:
    """Build the fake hub cache and the datasets once per version of ``standins.py``; returns the hub cache."""
    sys.path.insert(0, str(HERE))
    import standins

    hub = work / ("hub-qwen-vocab" if qwen_vocab else "hub")
    marker = work / f"standins-{standins.BUILD_VERSION}-{hub.name}.json"
    if not marker.exists():
        print(f"building local stand-ins of the hub models in {hub} ...", flush=True)
        shutil.rmtree(hub, ignore_errors=True)
        marker.write_text(json.dumps(standins.build_hub_cache(hub, qwen_vocab=qwen_vocab), indent=2))
    datasets_marker = work / f"standins-{standins.BUILD_VERSION}-datasets"
    if not datasets_marker.exists():
        shutil.rmtree(work / "datasets", ignore_errors=True)
        standins.build_datasets(work / "datasets")
        datasets_marker.write_text("")
    return hub


def run_pytest(work: Path, hub: Path, label: str, swap: bool, args) -> tuple[Path, float]:
    junit = work / f"junit-{label}.xml"  # label: "stock" or "swapped", plus "-qwen-vocab" with --qwen-vocab
    env = dict(os.environ)
    env.update(
        HF_HUB_CACHE=str(hub),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TRL_COMPAT_DATA=str(work / "datasets"),
        TRL_COMPAT_STANDINS_DIR=str(HERE),
        TRL_COMPAT_SWAP="1" if swap else "0",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        TOKENIZERS_PARALLELISM="false",
        WANDB_DISABLED="true",
        CUDA_VISIBLE_DEVICES=env.get("CUDA_VISIBLE_DEVICES", ""),
    )
    env.pop("PYTEST_ADDOPTS", None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_grpo_trainer.py",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rN",
        f"--timeout={args.timeout}",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit2",
    ]
    if args.k:
        command += ["-k", args.k]
    print(f"\n=== {label}: {' '.join(command[3:])}", flush=True)
    start = time.time()
    log = work / f"pytest-{label}.log"
    with open(log, "w") as handle:
        subprocess.run(command, cwd=work / "src", env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)
    elapsed = time.time() - start
    print(f"    {label}: {elapsed / 60:.1f} min, log {log}", flush=True)
    return junit, elapsed


def read_junit(path: Path) -> dict[str, tuple[str, str]]:
    """``{test id: (outcome, first line of the message)}`` from a pytest JUnit XML file."""
    outcomes: dict[str, tuple[str, str]] = {}
    if not path.exists():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                message = (child.get("message") or child.text or "").strip().splitlines()[:1]
                message = message[0][:160] if message else ""
                if child.tag == "skipped":
                    outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                elif child.tag == "error":
                    outcome = "error"
                else:
                    outcome = "xpassed" if "[XPASS(strict)]" in message else "failed"
                break
        if name in outcomes and outcome == "passed":
            continue  # a setup/teardown record of a test already recorded
        outcomes[name] = (outcome, message)
    return outcomes


def counts(results: dict[str, tuple[str, str]]) -> dict[str, int]:
    table = dict.fromkeys(OUTCOMES, 0)
    for outcome, _ in results.values():
        table[outcome] += 1
    return table


def report(stock: dict, swapped: dict, times: dict) -> dict:
    rows = {"stock": counts(stock), "swapped": counts(swapped)}
    header = "| run | " + " | ".join(OUTCOMES) + " | total | minutes |"
    print("\n" + header)
    print("|" + "---|" * (len(OUTCOMES) + 3))
    for label, row in rows.items():
        if label == "stock" and not stock or label == "swapped" and not swapped:
            continue
        total = sum(row.values())
        cells = " | ".join(str(row[o]) for o in OUTCOMES)
        print(f"| {label} | {cells} | {total} | {times.get(label, 0):.1f} |")
    differ = []
    if stock and swapped:
        for name in sorted(set(stock) | set(swapped)):
            a, b = stock.get(name, ("absent", "")), swapped.get(name, ("absent", ""))
            if a[0] != b[0]:
                differ.append({"test": name, "stock": a[0], "swapped": b[0], "message": b[1] or a[1]})
        print(f"\n{len(differ)} tests with a different outcome:")
        for row in differ:
            print(f"  {row['test']}: stock {row['stock']}, swapped {row['swapped']}  {row['message']}")
    return {"counts": rows, "differ": differ}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trl-repo", type=Path, required=True, help="a git checkout (or bare git dir) of huggingface/trl"
    )
    parser.add_argument("--commit", default="HEAD", help="the commit whose tests to run (default HEAD)")
    parser.add_argument("--mode", choices=("both", "stock", "swapped"), default="both")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/trl_compat"), help="scratch folder (not the repo)")
    parser.add_argument("-k", default=None, help="a pytest -k expression to run a subset")
    parser.add_argument("--timeout", type=int, default=300, help="per-test timeout in seconds (pytest-timeout)")
    parser.add_argument(
        "--qwen-vocab",
        action="store_true",
        help="stand-ins with Qwen2.5's vocabulary size and special-token ids (for the few tests that hard-code them; "
        "several times slower)",
    )
    args = parser.parse_args(argv)

    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    commit = extract_tests(args.trl_repo.resolve(), args.commit, work / "src")
    print(f"TRL tests from {args.trl_repo} at {commit}")
    hub = build_standins(work, args.qwen_vocab)
    import trl

    print(f"installed trl {trl.__version__}")
    tag = "-qwen-vocab" if args.qwen_vocab else ""
    summary_path = work / f"summary{tag}.json"
    earlier = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    times, results = dict(earlier.get("minutes", {})), {"stock": {}, "swapped": {}}
    for label, swap in (("stock", False), ("swapped", True)):
        junit = work / f"junit-{label}{tag}.xml"
        if args.mode in ("both", label):
            junit, seconds = run_pytest(work, hub, label + tag, swap, args)
            times[label] = seconds / 60
        if junit.exists():  # also an earlier run of the other mode, for the comparison
            results[label] = read_junit(junit)
    summary = report(results["stock"], results["swapped"], times)
    summary.update(
        commit=commit,
        trl_version=trl.__version__,
        k=args.k,
        qwen_vocab=args.qwen_vocab,
        minutes=times,
        outcomes=results,
    )
    summary_path.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

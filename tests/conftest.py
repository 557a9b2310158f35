"""Shared fixtures: offline mode, no telemetry, the tiny model/tokenizer and small trainer configs."""

import os


os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from trl_reasoning.embedded import build_tiny_model, build_tokenizer  # noqa: E402


@pytest.fixture
def bf16_gpu(monkeypatch):
    """Configs and docs are written for GPUs (TRL defaults to bf16): on a CPU-only machine let them build as on one."""
    monkeypatch.setattr("transformers.training_args.is_torch_bf16_gpu_available", lambda: True)


@pytest.fixture
def no_global_deepspeed_config():
    """DeepSpeedPlugin registers its config in a transformers global (is_deepspeed_zero3_enabled): reset it after."""
    yield
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def random_adapters(tmp_path_factory):
    """Two randomly initialised LoRA adapters of the tiny model, saved like trained contrastive adapters."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("adapters")
    tokenizer = build_tokenizer()
    paths = []
    for name, seed in (("positive", 1), ("negative", 2)):
        torch.manual_seed(seed)
        config = LoraConfig(r=4, lora_alpha=8, target_modules=["gate_proj", "up_proj", "down_proj"])
        config.init_lora_weights = False  # random A and B: the adapter changes the model
        peft_model = get_peft_model(build_tiny_model(tokenizer), config)
        peft_model.save_pretrained(root / name)
        paths.append(str(root / name))
    return paths


def pytest_terminal_summary(terminalreporter):
    """How many documentation code blocks ran (tests/docs/test_docs.py) and commands were checked (test_docs_commands)."""
    import sys

    docs = sys.modules.get("test_docs")
    if docs is not None and docs.BLOCKS_RUN:
        blocks = sum(n for n, _ in docs.BLOCKS_RUN.values())
        swaps = sum(s for _, s in docs.BLOCKS_RUN.values())
        pages = sum(1 for n, _ in docs.BLOCKS_RUN.values() if n)
        terminalreporter.write_line(
            f"docs: ran {blocks} python blocks on {pages} pages ({swaps} lines swapped for the tiny model)"
        )
    commands = sys.modules.get("test_docs_commands")
    if commands is not None and commands.CHECKED:
        terminalreporter.write_line(f"docs: checked {len(commands.CHECKED)} shell commands")

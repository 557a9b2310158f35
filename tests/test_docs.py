"""Every ```python block under docs/ runs, page by page, in page order (blocks of one page share a namespace)."""

import re
from pathlib import Path

import pytest


DOCS = sorted((Path(__file__).parents[1] / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.fixture
def isolated_registry():
    from trl_reasoning.advantages.base import _ESTIMATORS
    from trl_reasoning.losses.base import _POLICY_LOSSES

    before = {registry: set(registry._entries) for registry in (_ESTIMATORS, _POLICY_LOSSES)}
    yield
    for registry, names in before.items():
        for name in set(registry._entries) - names:
            del registry._entries[name]


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_python_blocks_run(page, isolated_registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Docs are written for GPU users (TRL configs default to bf16); on this CPU, let configs build as on a GPU.
    monkeypatch.setattr("transformers.training_args.is_torch_bf16_gpu_available", lambda: True)
    blocks = BLOCK.findall(page.read_text())
    namespace = {"__name__": f"docs.{page.stem}"}
    for index, code in enumerate(blocks):
        exec(compile(code, f"{page.name}[block {index}]", "exec"), namespace)


def test_docs_have_python_blocks():
    assert sum(len(BLOCK.findall(p.read_text())) for p in DOCS) >= 3

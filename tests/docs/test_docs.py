"""Every ```python block of README.md and the docs site runs, page by page in reading order.

Blocks of one page run in order in one namespace, in a fresh working directory, offline, on a CPU. Code written
for a GPU or a real model swaps lines for the tiny model with a ``# docs-test:`` marker (docs/testing.md); nothing
is skipped. The namespace provides ``TINY_MODEL`` (a saved tiny Qwen2 model and its tokenizer), ``TINY_DATASET``
(``problem`` and ``solution`` columns, as MATH has) and ``TINY_TRAINING`` (GRPO settings for one CPU step).
"""

import re

import pytest
from support.docs_pages import DOCS, ROOT, nav_pages, page_id, python_blocks, reading_order, with_swaps

from trl_reasoning.manifest import DOCS_SECTIONS


PAGES = reading_order()
BLOCKS_RUN: dict[str, tuple[int, int]] = {}  # page -> (python blocks run, lines swapped); reported by conftest

TINY_TRAINING = dict(
    max_steps=1,
    per_device_train_batch_size=4,
    num_generations=4,
    max_completion_length=8,
    use_cpu=True,
    bf16=False,
    report_to="none",
    save_strategy="no",
    logging_steps=1,
)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from trl_reasoning.embedded import build_tiny_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny-model")
    tokenizer = build_tokenizer()
    build_tiny_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def tiny_dataset():
    """Eight additions shaped like MATH (`problem`, `solution`), so the docs' column handling runs as written."""
    from datasets import Dataset

    problems = [(a, b) for a in range(2, 6) for b in range(3, 5)]
    return Dataset.from_dict(
        {"problem": [f"{a}+{b}=" for a, b in problems], "solution": [str(a + b) for a, b in problems]}
    )


@pytest.fixture
def isolated_registry():
    from trl_reasoning.advantages.base import _ESTIMATORS
    from trl_reasoning.inputs import _PROVIDERS
    from trl_reasoning.losses.base import _POLICY_LOSSES
    from trl_reasoning.token_weighting.base import _TOKEN_WEIGHTINGS

    registries = (_ESTIMATORS, _POLICY_LOSSES, _TOKEN_WEIGHTINGS, _PROVIDERS)
    before = {registry: set(registry._entries) for registry in registries}
    yield
    for registry, names in before.items():
        for name in set(registry._entries) - names:
            del registry._entries[name]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_python_blocks_run(page, isolated_registry, tiny_model_dir, tmp_path, monkeypatch, bf16_gpu):
    monkeypatch.chdir(tmp_path)  # TINY_TRAINING turns bf16 off where a block actually trains
    namespace = {
        "__name__": f"docs.{page.stem}",
        "TINY_MODEL": tiny_model_dir,
        "TINY_DATASET": tiny_dataset(),
        "TINY_TRAINING": dict(TINY_TRAINING),
    }
    blocks = python_blocks(page)
    for block in blocks:
        code = with_swaps(block)
        exec(compile(code, block.name, "exec"), namespace)
    BLOCKS_RUN[page_id(page)] = (len(blocks), sum(block.swaps for block in blocks))


def test_every_docs_page_is_in_the_nav():
    in_nav = set(nav_pages())
    missing = [p.relative_to(ROOT) for p in DOCS.rglob("*.md") if p not in in_nav]
    assert not missing, f"pages outside mkdocs.yml's nav (add them, or the docs tests never run them): {missing}"
    assert all(p.exists() for p in in_nav), [str(p) for p in in_nav if not p.exists()]


def test_docs_have_python_blocks_on_the_method_pages():
    methods = [p for p in nav_pages() if p.parent.name == "methods"]
    assert len(methods) >= 8
    empty = [page_id(p) for p in methods if not python_blocks(p)]
    assert not empty, f"method pages without a runnable example: {empty}"


def test_swap_markers_are_well_formed():
    """A marker must replace code with code: ``# docs-test:`` on a line of its own would silently run nothing."""
    bad = []
    for page in PAGES:
        for block in python_blocks(page):
            for offset, line in enumerate(block.code.splitlines()):
                if "# docs-test:" in line and (
                    line.lstrip().startswith("#") or not line.split("# docs-test:")[1].strip()
                ):
                    bad.append(f"{page_id(page)}:{block.line + offset}")
    assert not bad, f"swap markers must follow code and name a replacement: {bad}"


def test_site_hides_swap_markers_and_sphinx_roles():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    code = 'model = "Qwen/Qwen2.5-Math-1.5B"  # docs-test: model = TINY_MODEL\nx = 1  # a comment\n'
    shown = 'model = "Qwen/Qwen2.5-Math-1.5B"\nx = 1  # a comment\n'
    prose = "A line ends in `# docs-test: <code>`.\n```text\nm = 1  # docs-test: m = 2\n```\n"
    page = f"{prose}```python\n{code}```\n"
    assert hooks.on_page_markdown(page) == f"{prose}```python\n{shown}```\n"
    html = "see :func:<code>~trl_reasoning.losses.topr_loss</code> and :class:<code>WorkerPool</code>"
    assert hooks.on_page_content(html) == "see <code>topr_loss</code> and <code>WorkerPool</code>"


def test_paper_index_lists_every_cited_paper():
    import trl_reasoning.papers as papers

    index = (DOCS / "papers.md").read_text()
    cited = {value["id"] for value in vars(papers).values() if isinstance(value, dict) and "citation" in value}
    assert len(cited) >= 7
    missing = [arxiv_id for arxiv_id in cited if f"[{arxiv_id}](https://arxiv.org/abs/{arxiv_id})" not in index]
    assert not missing, f"docs/papers.md does not list {missing}"


METHOD_SECTIONS = [section.removeprefix("## ") for section in DOCS_SECTIONS]  # the manifest's required sections


@pytest.mark.parametrize("page", [p for p in nav_pages() if p.parent.name == "methods"], ids=page_id)
def test_method_page_has_every_section_in_order(page):
    headings = re.findall(r"^## (.+?)\s*$", page.read_text(), re.M)
    present = [h for h in headings if h in METHOD_SECTIONS]
    assert present == METHOD_SECTIONS, f"{page_id(page)}: sections {present}, expected {METHOD_SECTIONS} in order"
    details = page.read_text().split("## Implementation details", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"^1\. ", details, re.M), f"{page_id(page)}: implementation details must be a numbered list"


@pytest.mark.parametrize(
    "config", ["ReasoningGRPOConfig", "OfflineTOPRConfig", "CriticalTokenDPOConfig"], ids=lambda name: name
)
def test_api_reference_documents_every_config_field(config):
    """The API pages render the configs' docstrings: each field we add to TRL's config has an entry there."""
    import dataclasses

    import trl_reasoning

    cls = getattr(trl_reasoning, config)
    parent = {f.name for f in dataclasses.fields(cls.__mro__[1])}
    ours = [f.name for f in dataclasses.fields(cls) if f.name not in parent]
    assert ours
    documented = set(re.findall(r"^\s{8}(\w+) \(", cls.__doc__, re.M))
    missing = [name for name in ours if name not in documented]
    assert not missing, f"{config}'s docstring does not document {missing}"


def test_no_code_block_escapes_the_tests():
    """Only fences at the start of a line are collected: an indented ```python/```bash fence would never run."""
    indented = [
        f"{page_id(page)}:{text[: match.start()].count(chr(10)) + 1}"
        for page in PAGES
        for text in [page.read_text()]
        for match in re.finditer(r"^[ \t]+```(python|py|bash|sh|shell)\b", text, re.M)
    ]
    assert not indented, f"indented code fences (write them at column 0): {indented}"
    aliases = [
        f"{page_id(page)}: ```{language}"
        for page in PAGES
        for language in re.findall(r"^```(py|python3|pycon|console|zsh)\b", page.read_text(), re.M)
    ]
    assert not aliases, f"write ```python or ```bash, the languages the tests collect: {aliases}"

"""The method manifest: one record per registered method, the single source of what the package offers.

A method's record is what it registered with (:class:`~trl_reasoning.registry.Method`): name, display name, paper,
docs page, recipe config, parameters and inputs. From it come

* the built-in lists in the selector fields' ``help`` (``advantage_estimator``, ``policy_loss``, ``token_weighting``)
  and one config field per parameter (:mod:`trl_reasoning.parameters`);
* the methods table in README.md and the method lists in ``recipes/grpo.py``'s docstring, rewritten by
  ``python -m trl_reasoning.manifest --write`` and compared by ``--check`` (and by the tests);
* the checks that every method has its docs page (with the required sections, listing its config fields), its recipe
  config, its paper in ``docs/papers.md`` and its test file (``tests/<package>/test_<module>.py``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import advantages, losses, providers, token_weighting  # noqa: F401  (providers registers the built-in inputs)
from .inputs import get_input_provider, input_provider_names
from .registry import Method


__all__ = [
    "FAMILIES",
    "DOCS_SECTIONS",
    "check_repository",
    "get",
    "methods",
    "names",
    "owned_fields",
    "render_readme_table",
    "write_repository",
]


_CLASSES = (advantages.AdvantageEstimator, losses.PolicyLoss, token_weighting.TokenWeighting)
SELECTOR = {cls.family: cls.selector for cls in _CLASSES}
"""Each family's selector field (``advantage_estimator``, ``policy_loss``, ``token_weighting``)."""

FAMILIES = tuple(SELECTOR)
"""The method families, each a registry with the same contract."""

DOCS_SECTIONS = (
    "## The paper",
    "## When to use it",
    "## Config fields",
    "## Usage",
    "## The formula",
    "## Worked example",
    "## Implementation details",
    "## Logged metrics",
    "## Paper hyperparameters and our defaults",
)
"""The sections every method's docs page has, in this order."""

_LISTERS = {
    "advantage estimator": advantages.base.advantage_estimators,
    "policy loss": losses.base.policy_losses,
    "token weighting": token_weighting.token_weightings,
}
_REGISTRATION = {
    "advantage estimator": "trl_reasoning.register_advantage_estimator",
    "policy loss": "trl_reasoning.register_policy_loss",
    "token weighting": "trl_reasoning.register_token_weighting",
}


def methods(family: str | None = None) -> list[Method]:
    """The registered methods of ``family`` (all families when None), sorted by family then name."""
    families = FAMILIES if family is None else (family,)
    return [method for each in families for method in _LISTERS[each]()]


def names(family: str) -> list[str]:
    return [method.name for method in methods(family)]


def get(family: str, name: str) -> Method:
    for method in methods(family):
        if method.name == name:
            return method
    raise ValueError(f"Unknown {family} {name!r} (`{SELECTOR[family]}`). Valid values: {names(family)}.")


def builtin_params() -> list[type]:
    """The parameter classes of every registered method and input provider (the configs' method fields)."""
    classes = [method.params for method in methods() if method.params is not None]
    classes += [get_input_provider(n).params for n in input_provider_names() if get_input_provider(n).params]
    return classes


def owned_fields(method: Method) -> list[str]:
    """The config fields that set ``method``'s parameters and those of the providers of its inputs."""
    fields = list(method.params.config_names()) if method.params is not None else []
    for name in method.inputs:
        if name in input_provider_names() and get_input_provider(name).params is not None:
            fields += get_input_provider(name).params.config_names()
    return list(dict.fromkeys(fields))


def _summary(method: Method) -> str:
    doc = (method.fn.__doc__ or "").strip().splitlines()
    return doc[0].rstrip(".") if doc else method.display_name


def selector_help(family: str) -> str:
    """The ``help`` of a selector field: what it does and every registered method of the family."""
    builtins = ", ".join(f"'{m.name}' ({m.display_name}{_arxiv(m)})" for m in methods(family))
    lead = {
        "advantage estimator": "Advantage estimator, by registered name ('grpo' is TRL's own computation, "
        "bit-for-bit; it honours scale_rewards and multi_objective_aggregation).",
        "policy loss": "Policy loss. 'trl' (default) keeps TRL's own loss, selected by `loss_type`; otherwise a "
        "registered loss.",
        "token weighting": "Per-token advantages (a (B, T) tensor instead of one A_i per completion), by registered "
        "name; None (default) for none. 'entropy' is the old name of 'entropy_token_scale'.",
    }[family]
    return f"{lead} Built-ins: {builtins}. Register your own with `{_REGISTRATION[family]}`."


def _arxiv(method: Method) -> str:
    return f", arXiv {method.paper['id']}" if method.paper else ""


# --------------------------------------------------------------------------------------------------------------------
# generated text


README_START = "<!-- methods table: generated by `python -m trl_reasoning.manifest --write` -->"
README_END = "<!-- end of methods table -->"


def render_readme_table(root: Path) -> str:
    """README.md's methods table: one row per registered method."""
    rows = ["| method | select with | paper | docs |", "|---|---|---|---|"]
    for method in methods():
        paper = f"[{method.paper['id']}](https://arxiv.org/abs/{method.paper['id']})" if method.paper else ""
        docs = f"[{page_title(root, method.docs)}](docs/{method.docs})" if method.docs else ""
        rows.append(f'| {method.display_name} | `{method.selector}="{method.name}"` | {paper} | {docs} |')
    return "\n".join(rows)


PAPERS_START = "<!-- papers table: generated by `python -m trl_reasoning.manifest --write` -->"
PAPERS_END = "<!-- end of papers table -->"


def _short_reference(paper: Mapping[str, str]) -> str:
    authors = re.search(r"author\s*=\s*\{([^}]*)\}", paper["citation"])
    year = re.search(r"year\s*=\s*(\d{4})", paper["citation"])
    first = " ".join(authors.group(1).split(" and ")[0].split()[1:]) if authors else ""  # all but the given name
    return f"{paper['title']}, {first} et al. {year.group(1) if year else ''}".strip()


def render_papers_table(root: Path) -> str:
    """docs/papers.md's table of the registered methods' papers: one row per paper, its methods and pages."""
    by_paper: dict[str, list[Method]] = {}
    for method in methods():
        if method.paper is not None:
            by_paper.setdefault(method.paper["id"], []).append(method)
    rows = ["| paper | arXiv | selected with | page |", "|---|---|---|---|"]
    for arxiv_id, group in by_paper.items():
        selectors = ", ".join(f'`{m.selector}="{m.name}"`' for m in group)
        pages = dict.fromkeys(m.docs for m in group if m.docs)
        links = ", ".join(f"[{page_title(root, page)}]({page})" for page in pages)
        rows.append(
            f"| {_short_reference(group[0].paper)} | [{arxiv_id}](https://arxiv.org/abs/{arxiv_id}) | {selectors} | "
            f"{links} |"
        )
    return "\n".join(rows)


def page_title(root: Path, page: str) -> str:
    """A docs page's title: its first heading, up to a colon."""
    path = root / "docs" / page
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith("# "):
                return line[2:].split(":")[0].strip()
    return page.rsplit("/", 1)[-1].removesuffix(".md")


def _docstring_lists() -> dict[str, str]:
    return {
        "advantage estimator": ", ".join(names("advantage estimator")),
        "policy loss": ", ".join(["trl = TRL's own", *names("policy loss")]),
        "token weighting": ", ".join(names("token weighting")),
    }


_DOCSTRING_PATTERNS = {
    "advantage estimator": re.compile(r"(``--advantage_estimator`` picks the advantages \()([^)]*)(\))"),
    "policy loss": re.compile(r"(``--policy_loss`` the loss \()([^)]*)(\))"),
    "token weighting": re.compile(r"(``--token_weighting`` the per-token advantages \()([^)]*)(\))"),
}


def _generated_files(root: Path) -> Iterator[tuple[Path, str, str]]:
    """(path, current text, generated text) of each file with generated parts."""
    readme = root / "README.md"
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0:
        raise ValueError(f"{readme} has no methods table markers ({README_START!r} ... {README_END!r}).")
    yield readme, text, text[: start + len(README_START)] + "\n" + render_readme_table(root) + "\n" + text[end:]

    papers = root / "docs" / "papers.md"
    text = papers.read_text()
    start, end = text.find(PAPERS_START), text.find(PAPERS_END)
    if start < 0 or end < 0:
        raise ValueError(f"{papers} has no papers table markers ({PAPERS_START!r} ... {PAPERS_END!r}).")
    yield papers, text, text[: start + len(PAPERS_START)] + "\n" + render_papers_table(root) + "\n" + text[end:]

    recipe = root / "recipes" / "grpo.py"
    text = new = recipe.read_text()
    for family, pattern in _DOCSTRING_PATTERNS.items():
        if not pattern.search(new):
            raise ValueError(f"{recipe}'s docstring has no {pattern.pattern!r} sentence.")
        new = pattern.sub(lambda m, family=family: m.group(1) + _docstring_lists()[family] + m.group(3), new, count=1)
    yield recipe, text, new


def write_repository(root: Path) -> list[Path]:
    """Rewrite the generated parts of the repository's files; returns the files that changed."""
    changed = []
    for path, text, generated in _generated_files(root):
        if text != generated:
            path.write_text(generated)
            changed.append(path)
    return changed


# --------------------------------------------------------------------------------------------------------------------
# completeness


def test_file(method: Method) -> str:
    """The test file of a method: its module's path mirrored under ``tests/`` (``tests/advantages/test_grpo.py``)."""
    parts = method.fn.__module__.split(".")
    if parts[0] == "trl_reasoning" and len(parts) >= 3:
        return f"tests/{'/'.join(parts[1:-1])}/test_{parts[-1]}.py"
    return f"tests/test_{parts[-1]}.py"


def check_method(method: Method, root: Path) -> list[str]:
    """What ``method`` lacks in the repository at ``root`` (empty when complete)."""
    problems = []
    label = f"{method.family} {method.name!r}"
    if method.paper is None:
        problems.append(f"{label}: no paper (register it with paper=...)")
    elif f'"{method.name}"' not in _paper_row(root, method.paper["id"]):
        problems.append(
            f"{label}: docs/papers.md has no row for its paper {method.paper['id']} naming it (run "
            "`python -m trl_reasoning.manifest --write`)"
        )

    if method.docs is None:
        problems.append(f"{label}: no docs page (register it with docs='methods/<page>.md')")
    elif not (root / "docs" / method.docs).is_file():
        problems.append(f"{label}: docs/{method.docs} does not exist")
    else:
        page = (root / "docs" / method.docs).read_text()
        positions = [page.find(f"\n{section}\n") for section in DOCS_SECTIONS]
        missing = [section for section, at in zip(DOCS_SECTIONS, positions, strict=True) if at < 0]
        if missing:
            problems.append(f"{label}: docs/{method.docs} lacks the sections {missing}")
        elif positions != sorted(positions):
            problems.append(f"{label}: docs/{method.docs} has the sections out of order (want {list(DOCS_SECTIONS)})")
        else:
            start = positions[DOCS_SECTIONS.index("## Config fields")]
            config_section = page[start : page.find("\n## ", start + 1)]
            absent = [name for name in owned_fields(method) if f"`{name}`" not in config_section]
            if absent:
                problems.append(f"{label}: docs/{method.docs}'s Config fields section does not list {absent}")

    if method.recipe is None:
        problems.append(f"{label}: no recipe config (register it with recipe='recipes/configs/<name>.yaml')")
    elif not (root / method.recipe).is_file():
        problems.append(f"{label}: {method.recipe} does not exist")
    else:
        selected = _yaml_value(root / method.recipe, method.selector)
        if selected != method.name:
            problems.append(f"{label}: {method.recipe} sets {method.selector}={selected!r}, not {method.name!r}")

    tests = root / test_file(method)
    if not tests.is_file():
        problems.append(f"{label}: {test_file(method)} does not exist")
    elif f'"{method.name}"' not in tests.read_text() and method.fn.__name__ not in tests.read_text():
        problems.append(f"{label}: {test_file(method)} names neither {method.name!r} nor {method.fn.__name__}")
    return problems


def _paper_row(root: Path, arxiv_id: str) -> str:
    for line in (root / "docs" / "papers.md").read_text().splitlines():
        if arxiv_id in line:
            return line
    return ""


def _yaml_value(path: Path, key: str) -> Any:
    import yaml

    return (yaml.safe_load(path.read_text()) or {}).get(key)


def check_repository(root: Path) -> list[str]:
    """Every problem: incomplete methods and generated text that is out of date."""
    problems = [problem for method in methods() for problem in check_method(method, root)]
    for path, text, generated in _generated_files(root):
        if text != generated:
            problems.append(f"{path.relative_to(root)} is out of date: run `python -m trl_reasoning.manifest --write`")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check (default) or rewrite the files generated from the manifest.")
    parser.add_argument("--write", action="store_true", help="rewrite README.md's table and recipes/grpo.py's lists")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_repository(args.root):
            print(f"rewrote {path}")
    problems = check_repository(args.root)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

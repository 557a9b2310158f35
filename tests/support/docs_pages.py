"""The pages the docs tests read, in reading order, and the code blocks on them.

Order: README.md, then the pages of ``mkdocs.yml``'s nav in nav order. Blocks of one page run in order in one
namespace. The swap convention for code written for a GPU or a real model (documented in docs/testing.md): a line
``<code>  # docs-test: <replacement>`` runs as ``<replacement>`` (same indentation) in the tests; the site shows
``<code>`` without the marker (scripts/mkdocs_hooks.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml


ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
SWAP = re.compile(r"^(?P<indent>[ \t]*)(?P<code>.*?)[ \t]+# docs-test: (?P<replacement>.*)$")
SHELL_LANGUAGES = {"bash", "sh", "shell"}


def nav_pages() -> list[Path]:
    """The docs pages in the order of the site's nav: mkdocs.yml's, with the method pages the hook adds from the
    manifest (scripts/mkdocs_hooks.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    nav = hooks.on_config({"nav": yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"], "docs_dir": str(DOCS)})[
        "nav"
    ]
    pages: list[Path] = []

    def walk(entry) -> None:
        if isinstance(entry, str):
            pages.append(DOCS / entry)
        elif isinstance(entry, list):
            for item in entry:
                walk(item)
        elif isinstance(entry, dict):
            for value in entry.values():
                walk(value)

    walk(nav)
    return pages


def reading_order() -> list[Path]:
    """README.md, then the nav's pages (a page missing from disk fails test_every_docs_page_is_in_the_nav)."""
    return [page for page in (ROOT / "README.md", *nav_pages()) if page.exists()]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@dataclass
class Block:
    page: Path
    line: int  # first line of the code, 1-based
    code: str  # as written
    swaps: int = 0  # lines replaced by their docs-test swap

    @property
    def name(self) -> str:
        return f"{page_id(self.page)}:{self.line}"


def blocks(page: Path, languages: set[str]) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) in languages:
            line = text.count("\n", 0, match.start(2)) + 1
            found.append(Block(page, line, match.group(2)))
    return found


def python_blocks(page: Path) -> list[Block]:
    return blocks(page, {"python"})


def with_swaps(block: Block) -> str:
    """The block's code as the tests run it: every ``# docs-test:`` line replaced by its replacement."""
    lines = []
    for line in block.code.splitlines():
        match = SWAP.match(line)
        if match:
            block.swaps += 1
            line = match.group("indent") + match.group("replacement").rstrip()
        lines.append(line)
    return "\n".join(lines) + "\n"


def shell_commands(page: Path) -> list[tuple[str, str]]:
    """``(where, command)`` for every command in the page's bash blocks: continuations joined, comments dropped."""
    commands = []
    for block in blocks(page, SHELL_LANGUAGES):
        logical, start = "", block.line
        for offset, line in enumerate(block.code.splitlines()):
            if not logical:
                start = block.line + offset
            stripped = line.rstrip()
            if stripped.endswith("\\"):
                logical += stripped[:-1] + " "
                continue
            logical += stripped
            command = strip_comment(logical)
            if command:
                commands.append((f"{page_id(page)}:{start}", command))
            logical = ""
        assert not logical, f"{page_id(page)}:{start}: a command ends in a line continuation"
    return commands


def strip_comment(command: str) -> str:
    """Drop a ``# comment`` outside quotes, keeping ``$(...)`` substitutions as written."""
    quote, out = None, []
    for i, char in enumerate(command):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            break
        out.append(char)
    return "".join(out).strip()

"""MkDocs hooks for the docs site.

Code blocks in the docs are executed by ``tests/docs/test_docs.py``. A line written for a GPU or a real model carries a
swap marker, ``<code>  # docs-test: <replacement>``: the tests run the replacement (on the tiny model), the site
shows the line without the marker. This hook removes the markers from the rendered pages.
"""

from __future__ import annotations

import re


SWAP_MARKER = re.compile(r"[ \t]+# docs-test:.*$", re.M)
PYTHON_BLOCK = re.compile(r"^```python\n.*?^```", re.S | re.M)


def on_page_markdown(markdown: str, **kwargs) -> str:
    """Drop the swap markers inside ```python blocks (text elsewhere, such as docs/testing.md's, is left alone)."""
    return PYTHON_BLOCK.sub(lambda block: SWAP_MARKER.sub("", block.group(0)), markdown)


# Docstrings use Sphinx roles (":func:`~pkg.mod.name`"); in the API pages they render as code, "~" keeping the last
# component as Sphinx does.
SPHINX_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):<code>(~?)([^<]*)</code>")


def on_page_content(html: str, **kwargs) -> str:
    return SPHINX_ROLE.sub(
        lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html
    )

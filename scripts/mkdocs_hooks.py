"""MkDocs hooks for the docs site.

Code blocks in the docs are executed by ``tests/docs/test_docs.py``. A line written for a GPU or a real model carries a
swap marker, ``<code>  # docs-test: <replacement>``: the tests run the replacement (on the tiny model), the site
shows the line without the marker. This hook removes the markers from the rendered pages.
"""

from __future__ import annotations

import re
from pathlib import Path


SWAP_MARKER = re.compile(r"[ \t]+# docs-test:.*$", re.M)
PYTHON_BLOCK = re.compile(r"^```python\n.*?^```", re.S | re.M)


def on_page_markdown(markdown: str, **kwargs) -> str:
    """Drop the swap markers inside ```python blocks (text elsewhere, such as docs/testing.md's, is left alone), and
    expand the manifest's markers (below)."""
    markdown = _expand_manifest_markers(markdown)
    return PYTHON_BLOCK.sub(lambda block: SWAP_MARKER.sub("", block.group(0)), markdown)


# Docstrings use Sphinx roles (":func:`~pkg.mod.name`"); in the API pages they render as code, "~" keeping the last
# component as Sphinx does.
SPHINX_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):<code>(~?)([^<]*)</code>")


def on_page_content(html: str, **kwargs) -> str:
    return SPHINX_ROLE.sub(
        lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html
    )


# --------------------------------------------------------------------------------------------------------------------
# Generated from the method manifest (trl_reasoning.manifest), so that adding a method touches no docs file but its
# own page: the Methods section of the nav, the API pages' module lists and the config-field tables.

METHOD_MODULES = re.compile(r"^<!-- method modules: (trl_reasoning\.\w+) -->$", re.M)
METHOD_FIELDS = re.compile(r"^<!-- method fields: (\w+) -->$", re.M)
STANDARD_INPUTS = "<!-- standard inputs -->"


def on_config(config, **kwargs):
    """Add every registered method's docs page to the nav's Methods section (titled by its first heading)."""
    from trl_reasoning import manifest

    methods_section = next(item["Methods"] for item in config["nav"] if isinstance(item, dict) and "Methods" in item)
    listed = {next(iter(entry.values())) for entry in methods_section}
    for page in dict.fromkeys(method.docs for method in manifest.methods() if method.docs):
        if page not in listed:
            title = manifest.page_title(Path(config["docs_dir"]).parent, page)
            methods_section.append({title: page})
    return config


def _method_modules(package: str) -> str:
    from trl_reasoning import manifest

    modules = dict.fromkeys(m.fn.__module__ for m in manifest.methods() if m.fn.__module__.startswith(package + "."))
    return "\n\n".join(f"::: {module}" for module in sorted(modules))


def _method_fields(config_name: str) -> str:
    """A table of the config fields that come from the methods' parameters: field, default, methods, help."""
    import dataclasses

    import trl_reasoning
    from trl_reasoning import manifest

    config = getattr(trl_reasoning, config_name)
    fields = {f.name: f for f in dataclasses.fields(config)}
    owners: dict[str, list[str]] = {}
    for method in manifest.methods():
        for name in manifest.owned_fields(method):
            owners.setdefault(name, []).append(f"`{method.name}`")
    rows = ["| field | default | set for | help |", "|---|---|---|---|"]
    for name, f in fields.items():
        if name not in owners:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        help_text = f.metadata.get("help", "").replace("|", "\\|")
        rows.append(f"| `{name}` | `{default!r}` | {', '.join(owners[name])} | {help_text} |")
    return "\n".join(rows)


def _inputs_table() -> str:
    """Every input a method may declare: the standard ones of each family, then the registered providers."""
    from trl_reasoning import manifest  # noqa: F401  (registers the built-in providers)
    from trl_reasoning.inputs import GENERATION_INPUTS, STANDARD_INPUTS, get_input_provider, input_provider_names

    rows = ["| input | available to | what it holds |", "|---|---|---|"]
    for name, meaning in GENERATION_INPUTS.items():
        rows.append(f"| `{name}` | every family | {meaning} |")
    for family, inputs in STANDARD_INPUTS.items():
        for name, meaning in inputs.items():
            if name not in GENERATION_INPUTS:
                rows.append(f"| `{name}` | {family} | {meaning} |")
    for name in input_provider_names():
        provider = get_input_provider(name)
        rows.append(f"| `{name}` | every family (provider, {provider.scope} scope) | {provider.description} |")
    return "\n".join(row.replace("(B, T) or None", "(B, T), or None") for row in rows)


def _expand_manifest_markers(markdown: str) -> str:
    if STANDARD_INPUTS in markdown:
        markdown = markdown.replace(STANDARD_INPUTS, _inputs_table())
    markdown = METHOD_MODULES.sub(lambda m: _method_modules(m.group(1)), markdown)
    return METHOD_FIELDS.sub(lambda m: _method_fields(m.group(1)), markdown)

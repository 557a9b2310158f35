"""The manifest is the one source of truth per method: every registered method is complete (docs page with the
required sections and its config fields, recipe config, paper entry, test file), and the generated text is current."""

import dataclasses

import pytest
import torch
from support import ROOT

from trl_reasoning import ReasoningGRPOConfig, manifest, register_advantage_estimator
from trl_reasoning.advantages.base import _ESTIMATORS
from trl_reasoning.papers import DRPO
from trl_reasoning.parameters import MethodParams, param


METHODS = manifest.methods()


@pytest.mark.parametrize("method", METHODS, ids=[f"{m.family}:{m.name}" for m in METHODS])
def test_every_registered_method_is_complete(method):
    assert manifest.check_method(method, ROOT) == []


def test_the_families_hold_the_built_ins():
    assert {"beta_norm", "drpo_length", "grpo", "nsr", "psr", "rloo", "w_reinforce"} <= set(
        manifest.names("advantage estimator")
    )
    assert {"drpo", "topr"} <= set(manifest.names("policy loss"))
    assert {"critical_tokens", "empg", "entropy_token_scale"} <= set(manifest.names("token weighting"))


def test_generated_text_is_current():
    stale = [problem for problem in manifest.check_repository(ROOT) if "out of date" in problem]
    assert stale == [], "run `python -m trl_reasoning.manifest --write`"


def test_selector_help_lists_every_method_of_its_family():
    fields = ReasoningGRPOConfig.__dataclass_fields__
    for family, selector in manifest.SELECTOR.items():
        help_text = fields[selector].metadata["help"]
        for name in manifest.names(family):
            assert f"'{name}'" in help_text, (selector, name)


def test_every_method_field_is_a_config_field_with_its_help():
    fields = ReasoningGRPOConfig.__dataclass_fields__
    owned = {name for method in METHODS for name in manifest.owned_fields(method)}
    for name in owned:
        assert name in fields and fields[name].metadata["help"], name
    # ...and every field this package adds to GRPOConfig is a selector, a trainer option or a method's parameter.
    from trl import GRPOConfig

    added = set(fields) - set(GRPOConfig.__dataclass_fields__)
    trainer_options = {"correctness_reward", "correct_threshold", "dropped_samples"}
    selectors = set(manifest.SELECTOR.values()) | {f"{s}_kwargs" for s in manifest.SELECTOR.values()}
    assert added - owned - selectors - trainer_options == set()
    assert "beta_norm_max_inverse_density" in ReasoningGRPOConfig.__doc__  # the docstring is generated from them


@dataclasses.dataclass(frozen=True)
class _Params(MethodParams):
    temperature: float = param(1.0, config="test_incomplete_temperature", help="unused")


def test_an_incomplete_method_is_reported_by_name():
    # A method with a paper but no docs page, recipe config, paper-index row or test file: the check names each.
    @register_advantage_estimator("test_incomplete", paper={**DRPO, "id": "0000.00000"}, params=_Params)
    def incomplete(rewards, temperature=1.0):
        return torch.zeros_like(rewards)

    try:
        problems = manifest.check_method(_ESTIMATORS.get("test_incomplete"), ROOT)
    finally:
        del _ESTIMATORS._entries["test_incomplete"]
    text = "\n".join(problems)
    assert "docs/papers.md has no row for its paper 0000.00000" in text
    assert "no docs page" in text and "no recipe config" in text
    assert "tests/test_test_manifest.py does not exist" in text
    assert len(problems) == 4


def test_a_docs_page_missing_a_section_or_a_field_is_reported(tmp_path):
    method = manifest.get("advantage estimator", "w_reinforce")
    for relative in ("docs/papers.md", method.recipe, manifest.test_file(method)):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((ROOT / relative).read_text())
    page = (ROOT / "docs" / method.docs).read_text()
    (tmp_path / "docs" / method.docs).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "docs" / method.docs).write_text(page.replace("`positive_weight`", "`lambda`"))
    assert manifest.check_method(method, tmp_path) == [
        f"advantage estimator 'w_reinforce': docs/{method.docs}'s Config fields section does not list "
        "['positive_weight']"
    ]
    (tmp_path / "docs" / method.docs).write_text(page.replace("\n## Worked example\n", "\n## Example\n"))
    assert "lacks the sections ['## Worked example']" in manifest.check_method(method, tmp_path)[0]


def test_importing_the_trainer_registers_every_built_in(tmp_path):
    # In a fresh interpreter, as a recipe starts: the trainer's import alone registers the methods and the providers.
    import subprocess
    import sys

    code = (
        "from trl_reasoning import ReasoningGRPOTrainer\n"
        "from trl_reasoning import manifest\n"
        "from trl_reasoning.inputs import input_provider_names\n"
        "print(len(manifest.methods()), sorted(input_provider_names()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    count, providers = out.stdout.split(" ", 1)
    assert int(count) == len(METHODS)
    assert all(name in providers for name in ("correct", "scorable", "lengths", "entropies", "critical_token_weights"))

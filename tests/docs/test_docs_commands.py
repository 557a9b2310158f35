"""Every command in a ```bash block of README.md and the docs site is at least parsed, never run.

Recipes parse their flags (and ``--config`` YAML) with their own TrlParser; ``accelerate launch`` flags go through
accelerate's parser and config validation; ``torchrun`` through torch's; other Python scripts through their
argparse parser (stopped right after parsing); ``make`` targets with ``make -n``; ``pip install`` requirements
with ``packaging`` (extras must exist); ``pytest`` paths must exist; ``trl vllm-serve`` with TRL's parser;
``mkdocs`` with its CLI. A command no rule knows fails: add a rule here rather than leaving a command unchecked.
"""

import argparse
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from support import launch_args, make_parser
from support.docs_pages import ROOT, reading_order, shell_commands

from trl_reasoning.accelerate_configs import config_path


COMMANDS = [entry for page in reading_order() for entry in shell_commands(page)]
CHECKED: list[str] = []  # reported by conftest's terminal summary
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
CONFIG_BY_NAME = re.compile(r"\$\(python -m trl_reasoning\.accelerate_configs (\w+)\)")
PYTHONS = {"python", "python3", ".venv/bin/python"}


class Parsed(Exception):
    """Raised in place of running a script once its arguments parsed."""


def test_docs_have_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_parses(where, command, tmp_path, monkeypatch, bf16_gpu, no_global_deepspeed_config):
    monkeypatch.chdir(ROOT)
    check_command(command, tmp_path, monkeypatch)
    CHECKED.append(where)


def check_command(command: str, tmp_path, monkeypatch) -> None:
    command = CONFIG_BY_NAME.sub(lambda match: str(config_path(match.group(1))), command)
    assert "$(" not in command, f"only $(python -m trl_reasoning.accelerate_configs NAME) is substituted: {command}"
    words = shlex.split(command)
    placeholders = re.findall(r"<[\w ,.-]+>", command)
    assert not placeholders, f"a documented command must be complete, not a template: {placeholders}"
    while words and ENV_ASSIGNMENT.match(words[0]):
        words.pop(0)
    program, args = words[0], words[1:]
    if program == "make":
        check_make(args)
    elif program == "pip":
        check_pip(args)
    elif program == "accelerate" and args[:1] == ["launch"]:
        check_accelerate_launch(args[1:], tmp_path, monkeypatch)
    elif program == "torchrun":
        check_torchrun(args, tmp_path, monkeypatch)
    elif program == "pytest":
        check_pytest(args)
    elif program in PYTHONS and args[:1] == ["-m"]:
        check_module(args[1], args[2:])
    elif program in PYTHONS:
        check_script(args[0], args[1:], tmp_path, monkeypatch)
    elif program == "trl" and args[:1] == ["vllm-serve"]:
        from trl import TrlParser
        from trl.scripts.vllm_serve import ScriptArguments

        TrlParser(ScriptArguments).parse_args_and_config(args=args[1:])
    elif program.endswith(".sh") and (ROOT / program).with_suffix(".py").is_file():
        # a wrapper script (benchmarks/gpu_check.sh) passes its arguments to the Python script of the same name
        assert os.access(ROOT / program, os.X_OK), f"{program} is not executable"
        check_script(str(Path(program).with_suffix(".py")), args, tmp_path, monkeypatch)
    elif program == "mkdocs":
        from mkdocs.__main__ import cli

        cli.commands[args[0]].make_context(args[0], args[1:])
    else:
        pytest.fail(f"no check knows `{program}`: add one to tests/docs/test_docs_commands.py ({command})")


def check_make(args: list[str]) -> None:
    result = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"make -n {' '.join(args)}: {result.stderr}"


def check_pip(args: list[str]) -> None:
    from importlib.metadata import metadata

    from packaging.requirements import Requirement

    assert args[:1] == ["install"], f"only `pip install` is documented: {args}"
    extras = set(metadata("trl-reasoning").get_all("Provides-Extra"))
    for arg in args[1:]:
        if arg.startswith("-"):
            assert arg in ("-e", "--editable", "-q", "-U", "--upgrade"), f"unexpected pip flag {arg}"
            continue
        if arg == "." or arg.startswith(".["):
            requested = set(re.findall(r"[\w-]+", arg[2:-1])) if arg != "." else set()
        else:
            requirement = Requirement(arg)
            requested = requirement.extras if requirement.name == "trl-reasoning" else set()
        assert requested <= extras, f"{arg}: no such extra {requested - extras} (have {sorted(extras)})"


def recipe_args(args: list[str], tmp_path) -> list[str]:
    """Keep the documented outputs out of the repository."""
    return [str(tmp_path / arg) if arg.startswith("outputs/") else arg for arg in args]


def check_script(script: str, args: list[str], tmp_path, monkeypatch) -> None:
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    if path.parent == ROOT / "recipes":
        args = recipe_args(args, tmp_path)
        if "--ddp_backend" in args:  # parsed with it, TrainingArguments would start the process group it names
            at = args.index("--ddp_backend")
            assert args[at + 1] in ("nccl", "gloo", "mpi", "ccl", "hccl", "cncl", "mccl"), args[at + 1]
            args = args[:at] + args[at + 2 :]
        make_parser(path).parse_args_and_config(args=args)
        return
    source = path.read_text()
    assert "ArgumentParser" in source, f"{script}: only argparse scripts can be parsed without running them"

    def parse_then_stop(self, args=None, namespace=None):
        parse_args(self, args, namespace)
        raise Parsed

    parse_args = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    with pytest.raises(Parsed):
        runpy.run_path(str(path), run_name="__main__")


def check_module(module: str, args: list[str]) -> None:
    if module == "trl_reasoning.accelerate_configs":
        from trl_reasoning.accelerate_configs.__main__ import main

        assert main(args) == 0
    elif module == "pytest":
        check_pytest(args)
    elif module == "pip":
        check_pip(args)
    else:
        pytest.fail(f"no check knows `python -m {module}`: add one to tests/docs/test_docs_commands.py")


def check_pytest(args: list[str]) -> None:
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
        elif arg in ("-k", "-m", "-p", "--timeout"):
            skip_value = True
        elif not arg.startswith("-"):
            path = ROOT / arg.split("::")[0]
            assert path.exists(), f"pytest target {arg} does not exist"


def check_accelerate_launch(args: list[str], tmp_path, monkeypatch) -> None:
    from accelerate.commands.launch import launch_command_parser

    parsed = launch_command_parser().parse_args(args)
    script, script_args = parsed.training_script, parsed.training_script_args
    flags = args[: args.index(script)]
    assert "--config_file" in flags or not any(f.startswith("--use_") for f in flags), args
    launch_args(*flags)
    check_script(script, script_args, tmp_path, monkeypatch)


def check_torchrun(args: list[str], tmp_path, monkeypatch) -> None:
    from torch.distributed.run import get_args_parser

    parsed = get_args_parser().parse_args(args)
    check_script(parsed.training_script, parsed.training_script_args, tmp_path, monkeypatch)

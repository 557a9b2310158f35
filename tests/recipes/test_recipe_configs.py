"""Every shipped config loads the way it is used: accelerate configs through `accelerate launch`'s own code, recipe
YAMLs through their recipe's parser (unknown keys rejected), and every key carries a comment. Also: every recipe
answers ``--help``. (Every documented command parses: tests/docs/test_docs_commands.py.) No training, no downloads."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import RECIPES, ROOT, launch_args, make_parser

import trl_reasoning.accelerate_configs
from trl_reasoning import manifest
from trl_reasoning.accelerate_configs import CONFIG_NAMES, available_configs, config_path


RECIPE_CONFIGS = sorted((RECIPES / "configs").glob("*.yaml"))
ACCELERATE_DIR = Path(trl_reasoning.accelerate_configs.__file__).parent
ACCELERATE_CONFIGS = sorted(ACCELERATE_DIR.glob("*.yaml"))
RECIPE_SCRIPTS = sorted(RECIPES.glob("*.py"))
DISTRIBUTED_DOC = ROOT / "docs" / "distributed.md"

# Each registered method's recipe config (from the manifest): it must select the method and leave the other two
# selector fields at a value that composes with it.
METHOD_CONFIGS = {Path(m.recipe).stem: (m.family, m.name) for m in manifest.methods()}

# name -> (accelerate DistributedType value, num_processes)
ACCELERATE_EXPECTED = {
    "single_gpu": ("NO", 1),
    "multi_gpu": ("MULTI_GPU", 8),
    "zero2": ("DEEPSPEED", 8),
    "zero3": ("DEEPSPEED", 8),
    "zero3_offload": ("DEEPSPEED", 8),
    "fsdp2": ("FSDP", 8),
}
# name -> (zero_stage, offload_optimizer_device, offload_param_device, zero3_init_flag)
DEEPSPEED_EXPECTED = {
    "zero2": (2, "none", "none", False),
    "zero3": (3, "none", "none", True),
    "zero3_offload": (3, "cpu", "cpu", True),
}


def recipe_for(config: Path) -> Path:
    """The recipe a config file belongs to: cdpo*.yaml -> cdpo.py, topr_offline*.yaml -> topr_offline.py, else grpo.py."""
    if config.name.startswith("cdpo"):
        return RECIPES / "cdpo.py"
    if config.name.startswith("topr_offline"):
        return RECIPES / "topr_offline.py"
    return RECIPES / "grpo.py"


# --- accelerate configs ------------------------------------------------------------------------------------------


def test_shipped_accelerate_configs_are_the_advertised_ones():
    assert [p.stem for p in ACCELERATE_CONFIGS] == sorted(CONFIG_NAMES)
    assert list(available_configs()) == list(CONFIG_NAMES)
    assert all(available_configs().values())


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_path_resolves_names_suffixes_and_paths(name):
    path = config_path(name)
    assert path.is_absolute() and path.is_file() and path == ACCELERATE_DIR.resolve() / f"{name}.yaml"
    assert config_path(f"{name}.yaml") == path
    assert config_path(path) == path
    assert config_path(str(path)) == Path(str(path))


def test_config_path_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        config_path("zero4")
    message = str(error.value)
    assert "zero4" in message and "path" in message
    assert all(name in message for name in CONFIG_NAMES)


def test_config_path_returns_a_user_file_unchanged(tmp_path):
    own = tmp_path / "my_cluster.yaml"
    own.write_text("distributed_type: MULTI_GPU\n")
    assert config_path(own) == own
    assert config_path(str(own)) == own


def _launched_env(args) -> dict[str, str]:
    """The environment `accelerate launch` gives the training processes (only the variables it adds)."""
    from accelerate.utils.launch import (
        prepare_deepspeed_cmd_env,
        prepare_multi_gpu_env,
        prepare_simple_launcher_cmd_env,
    )

    if args.use_deepspeed:
        _, env = prepare_deepspeed_cmd_env(args)
    elif args.use_fsdp or args.multi_gpu:
        env = prepare_multi_gpu_env(args)
    else:
        _, env = prepare_simple_launcher_cmd_env(args)
    return {key: value for key, value in env.items() if key.startswith(("ACCELERATE_", "FSDP_"))}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_accelerate_config_loads_as_accelerate_launch_reads_it(name, monkeypatch, no_global_deepspeed_config):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    path = config_path(name)
    config = load_config_from_file(str(path))  # rejects unknown top-level keys
    assert isinstance(config, ClusterConfig)
    distributed_type, num_processes = ACCELERATE_EXPECTED[name]
    assert config.distributed_type.value == distributed_type
    assert (config.num_processes, config.num_machines, config.machine_rank) == (num_processes, 1, 0)
    assert config.mixed_precision == "bf16" and config.use_cpu is False

    # `accelerate launch` copies a top-level key onto its argument of the same name only while that argument is still
    # None (a few keys it reads itself); keys whose flag has another default (same_network, rdzv_backend,
    # enable_cpu_affinity) are silently ignored, so they must not be in the file.
    known = vars(launch_command_parser().parse_args(["train.py"]))
    read_by_launch = {"compute_environment", "distributed_type", "mixed_precision", "debug", "use_cpu"}
    for key in yaml.safe_load(path.read_text()):
        if key in read_by_launch or key in ("deepspeed_config", "fsdp_config"):
            continue
        assert known.get(key, "absent") is None, f"{name}.yaml: `accelerate launch` ignores {key} in a config file"
    # Nested keys are copied onto `accelerate launch` arguments of the same name (fsdp_config keys get an "fsdp_"
    # prefix); accelerate ignores the others silently, so a typo there would go unnoticed without this check.
    for section in ("deepspeed_config", "fsdp_config"):
        for key in getattr(config, section):
            flag = key if section != "fsdp_config" or key.startswith("fsdp") else f"fsdp_{key}"
            assert flag in known, f"{name}.yaml: {section}.{key} is not an `accelerate launch` option"

    args, _ = launch_args("--config_file", str(path))
    assert args.num_processes == num_processes and args.mixed_precision == "bf16"
    env = _launched_env(args)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    if name in DEEPSPEED_EXPECTED:
        from accelerate.utils import DeepSpeedPlugin

        stage, offload_optimizer, offload_param, zero3_init = DEEPSPEED_EXPECTED[name]
        section = config.deepspeed_config
        assert (section["zero_stage"], section["offload_optimizer_device"], section["offload_param_device"]) == (
            stage,
            offload_optimizer,
            offload_param,
        )
        # Left to the trainer, which fills DeepSpeed's "auto" from GRPOConfig; a value here would have to match it.
        assert "gradient_accumulation_steps" not in section and "gradient_clipping" not in section
        from_env = DeepSpeedPlugin()  # what the launched process builds from the environment
        from_section = DeepSpeedPlugin(
            zero_stage=section["zero_stage"],
            offload_optimizer_device=section["offload_optimizer_device"],
            offload_param_device=section["offload_param_device"],
            zero3_init_flag=section["zero3_init_flag"],
            zero3_save_16bit_model=section.get("zero3_save_16bit_model"),
        )
        for plugin in (from_env, from_section):
            assert plugin.zero_stage == stage
            assert plugin.offload_optimizer_device == offload_optimizer
            assert plugin.offload_param_device == offload_param
            assert plugin.zero3_init_flag is zero3_init
            zero = plugin.deepspeed_config["zero_optimization"]
            assert zero["stage"] == stage
            assert zero["offload_optimizer"]["device"] == offload_optimizer
            assert zero["offload_param"]["device"] == offload_param
            assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"
            if stage == 3:
                assert zero["stage3_gather_16bit_weights_on_model_save"] is True  # save_model writes a loadable model
    elif name == "fsdp2":
        from accelerate.utils import FullyShardedDataParallelPlugin
        from torch.distributed.fsdp import CPUOffloadPolicy
        from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

        assert config.fsdp_config["fsdp_version"] == 2 and env["FSDP_VERSION"] == "2"
        plugin = FullyShardedDataParallelPlugin()  # what the launched process builds from the environment
        assert plugin.fsdp_version == 2
        assert plugin.reshard_after_forward is True
        assert plugin.auto_wrap_policy is transformer_auto_wrap_policy
        assert plugin.cpu_ram_efficient_loading is True
        assert plugin.activation_checkpointing is False
        assert plugin.state_dict_type.name == "FULL_STATE_DICT"
        assert not isinstance(plugin.cpu_offload, CPUOffloadPolicy)
    elif name == "multi_gpu":
        assert args.multi_gpu and not args.use_deepspeed and not args.use_fsdp
    else:
        assert not (args.multi_gpu or args.use_deepspeed or args.use_fsdp)


@pytest.mark.parametrize("name", [name for name in CONFIG_NAMES if name != "single_gpu"])
def test_accelerate_config_goes_multi_node_from_the_command_line(name):
    args, _ = launch_args(
        *("--config_file", str(config_path(name))),
        *("--num_machines", "2", "--num_processes", "16", "--machine_rank", "1"),
        *("--main_process_ip", "10.0.0.1", "--main_process_port", "29555"),
    )
    assert (args.num_machines, args.num_processes, args.machine_rank) == (2, 16, 1)
    if args.use_deepspeed:
        from accelerate.utils.launch import prepare_deepspeed_cmd_env

        cmd, _ = prepare_deepspeed_cmd_env(args)
        assert cmd is None  # the "standard" multi-node launcher: torchrun on every node, no pdsh hostfile
    else:
        from accelerate.utils.launch import prepare_multi_gpu_env

        prepare_multi_gpu_env(args)
    # torchrun's view: 8 processes on each of 2 nodes, this one is node 1, static rendezvous at the main node.
    assert (args.nproc_per_node, args.nnodes, args.node_rank) == ("8", "2", 1)
    assert (args.rdzv_backend, args.rdzv_endpoint) == ("static", "10.0.0.1:29555")


def test_accelerate_configs_cli_lists_and_resolves_without_torch(tmp_path):
    def cli(*argv):
        return subprocess.run(
            [sys.executable, "-m", "trl_reasoning.accelerate_configs", *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )

    listed = cli("--list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split(None, 1) for line in listed.stdout.splitlines()]
    assert [row[0] for row in rows] == list(CONFIG_NAMES) and all(len(row) == 2 for row in rows)

    resolved = cli("zero3")
    assert resolved.returncode == 0, resolved.stderr
    assert Path(resolved.stdout.strip()) == config_path("zero3")

    unknown = cli("zero4")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "zero4" in unknown.stderr and "fsdp2" in unknown.stderr

    probe = "import sys, trl_reasoning.accelerate_configs.__main__; print(sorted({'torch', 'trl'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]", imported.stderr


# --- recipe configs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", RECIPE_CONFIGS, ids=[p.name for p in RECIPE_CONFIGS])
def test_recipe_config_parses_with_its_recipe(config, tmp_path, bf16_gpu):
    parser = make_parser(recipe_for(config))
    parsed = parser.parse_args_and_config(args=["--config", str(config), "--output_dir", str(tmp_path)])
    training_args = next(arg for arg in parsed if hasattr(arg, "output_dir"))
    assert training_args.output_dir == str(tmp_path)
    # Every value of the file arrived (nothing silently dropped or renamed).
    values = {}
    for dataclass_args in parsed:
        values.update(vars(dataclass_args))
    for key in yaml.safe_load(config.read_text()):
        assert key in values, f"{config.name}: {key} did not reach the parsed arguments"
    if config.stem in METHOD_CONFIGS:
        family, name = METHOD_CONFIGS[config.stem]
        assert getattr(training_args, manifest.SELECTOR[family]) == name
        assert training_args.bf16 is True and training_args.use_cpu is False
        document = yaml.safe_load(config.read_text())
        assert not {"model_name_or_path", "dataset_name", "use_cpu", "report_to"} & set(document)


def test_method_configs_exist():
    assert set(METHOD_CONFIGS) <= {p.stem for p in RECIPE_CONFIGS}
    assert {"grpo", "psr", "nsr", "w_reinforce", "drpo", "drpo_length", "bnpo", "topr", "empg"} <= set(METHOD_CONFIGS)


@pytest.mark.parametrize("recipe", sorted({recipe_for(p) for p in RECIPE_CONFIGS}), ids=lambda p: p.name)
def test_recipe_parser_rejects_an_unknown_yaml_key(recipe, tmp_path, bf16_gpu):
    config = tmp_path / "typo.yaml"
    config.write_text("learning_rat: 1.0e-6  # typo of learning_rate\n")
    with pytest.raises(ValueError, match="learning_rat"):
        make_parser(recipe).parse_args_and_config(args=["--config", str(config), "--output_dir", str(tmp_path)])


KEY_LINE = re.compile(r"^\s*(- )?[A-Za-z_][\w.-]*\s*:")


@pytest.mark.parametrize(
    "config",
    RECIPE_CONFIGS + ACCELERATE_CONFIGS,
    ids=[p.parent.name + "/" + p.name for p in RECIPE_CONFIGS + ACCELERATE_CONFIGS],
)
def test_every_yaml_key_has_a_comment(config):
    missing = []
    for number, line in enumerate(config.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert KEY_LINE.match(line), f"{config.name}:{number}: not a `key: value` line: {line!r}"
        if " #" not in line:
            missing.append(f"{config.name}:{number}: {line.strip()}")
    assert not missing, "keys without a `# comment`:\n" + "\n".join(missing)


# --- recipes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", RECIPE_SCRIPTS, ids=[p.name for p in RECIPE_SCRIPTS])
def test_recipe_answers_help(recipe, monkeypatch, capsys):
    # In-process: a subprocess per recipe would pay for `import trl` every time.
    monkeypatch.setattr(sys, "argv", [str(recipe), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(recipe), run_name="__main__")
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "--output_dir" in out and "--model_name_or_path" in out

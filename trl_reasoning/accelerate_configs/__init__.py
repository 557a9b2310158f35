"""Accelerate configs shipped with the package, found by name.

    accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs zero3) recipes/grpo.py ...

``python -m trl_reasoning.accelerate_configs --list`` lists them. Each file is an ordinary `accelerate config` YAML
for one machine with 8 GPUs and bf16; flags given to `accelerate launch` override its values (``--num_processes 4``,
and ``--num_machines``, ``--machine_rank``, ``--main_process_ip``, ``--main_process_port`` for several machines).
This module imports neither torch nor TRL.
"""

from __future__ import annotations

from pathlib import Path


_HERE = Path(__file__).resolve().parent

_DESCRIPTIONS = {
    "single_gpu": "one process on one GPU, no distributed wrapper",
    "multi_gpu": "data parallel (DDP), 8 processes, a full model copy per GPU",
    "zero2": "DeepSpeed ZeRO-2: optimizer states and gradients sharded",
    "zero3": "DeepSpeed ZeRO-3: parameters, gradients and optimizer states sharded",
    "zero3_offload": "DeepSpeed ZeRO-3 with optimizer states and parameters offloaded to CPU memory",
    "fsdp2": "PyTorch FSDP2, full shard, one unit per decoder layer",
}

CONFIG_NAMES: tuple[str, ...] = tuple(_DESCRIPTIONS)


def available_configs() -> dict[str, str]:
    """The shipped configs, ``{name: one-line description}``, in the order of `CONFIG_NAMES`."""
    return dict(_DESCRIPTIONS)


def config_path(name: str | Path) -> Path:
    """Absolute path of a shipped config.

    ``name`` is a config name (``"zero3"``), the same with its suffix (``"zero3.yaml"``), or the path of an existing
    file, which is returned unchanged so that callers can accept either.
    """
    if Path(name).is_file():
        return Path(name)
    stem = str(name).removesuffix(".yaml")
    if stem not in _DESCRIPTIONS:
        raise ValueError(
            f"Unknown accelerate config {str(name)!r}. Valid names: {', '.join(CONFIG_NAMES)}; "
            "you can also pass the path of your own accelerate config file."
        )
    return _HERE / f"{stem}.yaml"

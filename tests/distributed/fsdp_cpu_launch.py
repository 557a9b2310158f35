"""Run a recipe under FSDP2 on CPU processes (gloo), for the distributed tests only.

accelerate 1.15 switches to FSDP only from a GPU-type distributed state; on CPU processes it silently drops the FSDP
config and runs plain DDP. This wrapper makes the CPU state honour the FSDP plugin (nothing else changes), runs the
recipe given as the first argument with the remaining arguments, and then prints one line proving the model really
was sharded with FSDP2: ``FSDP2 check: <class> <n> DTensor parameters of <m>``. Production code never needs it.

    accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs fsdp2) --num_processes 2 \
        --mixed_precision no tests/distributed/fsdp_cpu_launch.py recipes/grpo.py --use_cpu true ...
"""

import runpy
import sys

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType
from transformers import Trainer


_original_init = AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
    _original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        # Every AcceleratorState() copies PartialState's shared state over its own, so both must say FSDP.
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin


AcceleratorState.__init__ = _init_with_fsdp_on_cpu

_original_train = Trainer.train


def _train_and_report(self, *args, **kwargs):
    output = _original_train(self, *args, **kwargs)
    from torch.distributed.tensor import DTensor

    parameters = list(self.model.parameters())
    sharded = sum(isinstance(p, DTensor) for p in parameters)
    if self.accelerator.is_main_process:
        print(
            f"FSDP2 check: {type(self.model).__name__} {sharded} DTensor parameters of {len(parameters)} "
            f"(distributed_type {self.accelerator.distributed_type.value})",
            flush=True,
        )
    return output


Trainer.train = _train_and_report

if __name__ == "__main__":
    recipe = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(recipe, run_name="__main__")

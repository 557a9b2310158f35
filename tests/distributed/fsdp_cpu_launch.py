"""Run a recipe under FSDP2 on CPU processes (gloo), for the distributed tests only.

accelerate 1.15 switches to FSDP only from a GPU-type distributed state (``AcceleratorState.__init__`` sets
``DistributedType.FSDP`` in its ``MULTI_GPU``/``MULTI_XPU``/... branch); on CPU processes (``MULTI_CPU``) it silently
drops the FSDP plugin and runs plain DDP. This wrapper makes the CPU state honour the plugin the way that branch
does (the distributed type and ``fsdp_plugin``, nothing else), so ``Accelerator.prepare`` really calls
``fully_shard``. It then runs the recipe given as the first argument with the remaining arguments, and after
training prints one line proving the model was sharded with FSDP2::

    FSDP2 check: <model class> <n> DTensor parameters of <m>, <u> FSDP units, mesh cpu x<world>, \
<k> optimizer DTensors, rank-0 shard <a> of <b> elements (distributed_type FSDP)

(counted after resharding every unit: FSDP2 leaves the root unit's parameters gathered after a forward). Production
code never needs this.

    accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs fsdp2) --num_processes 2 \
        --num_machines 1 --mixed_precision no --dynamo_backend no \
        tests/distributed/fsdp_cpu_launch.py recipes/grpo.py --use_cpu true ...
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
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor, Shard

    units = [module for module in self.model.modules() if isinstance(module, FSDPModule)]
    for unit in units:
        unit.reshard()  # the root unit keeps its parameters gathered after the last (evaluation) forward
    parameters = list(self.model.parameters())
    sharded = [p for p in parameters if isinstance(p, DTensor)]
    world = self.accelerator.num_processes
    # every DTensor is split along dim 0 over all the processes; this process holds only its slice
    assert all(p.placements == (Shard(0),) and p.device_mesh.size() == world for p in sharded), "not FSDP2 sharded"
    local = sum(p.to_local().numel() for p in sharded)
    total = sum(p.numel() for p in sharded)
    optimizer_sharded = sum(isinstance(p, DTensor) for group in self.optimizer.param_groups for p in group["params"])
    if self.accelerator.is_main_process:
        print(
            f"FSDP2 check: {type(self.model).__name__} {len(sharded)} DTensor parameters of {len(parameters)}, "
            f"{len(units)} FSDP units, mesh {sharded[0].device_mesh.device_type if sharded else '-'} x{world}, "
            f"{optimizer_sharded} optimizer DTensors, rank-0 shard {local} of {total} elements "
            f"(distributed_type {self.accelerator.distributed_type.value})",
            flush=True,
        )
    return output


Trainer.train = _train_and_report

if __name__ == "__main__":
    recipe = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(recipe, run_name="__main__")

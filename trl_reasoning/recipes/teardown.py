"""The end of a recipe launched on several processes: tear the process group down, then let the non-main ranks go."""

from __future__ import annotations

import os
import sys


def end_distributed_run() -> None:
    """Call last, in a recipe's ``__main__``: a barrier, ``destroy_process_group``, then ``os._exit(0)`` on every rank
    but the main one. Nothing happens in a single-process run.

    A rank's interpreter finalisation can abort ("terminate called without an active exception", exit -6) while the
    still-joinable C++ threads of torch's process-group machinery are destroyed, which fails a launch whose work is
    done (seen on CPU under DeepSpeed ZeRO-3). The other ranks have nothing left to flush, so they skip finalisation;
    the main rank exits normally, so trackers (``report_to``) still flush in their exit handlers.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    rank = dist.get_rank()
    dist.barrier()
    dist.destroy_process_group()
    if rank != 0:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

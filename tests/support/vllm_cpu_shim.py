"""Weight sync from TRL's trainer into vLLM on CPU, for the vLLM tests only (`make test-vllm`, tests/vllm_engine/).

Generation, sampling log-probs and the HTTP server are vLLM's and TRL's own code; only the two weight-sync paths that
TRL 1.16 cannot run on vLLM CPU 0.31 are replaced, the way tests/distributed/fsdp_cpu_launch.py replaces one
accelerate branch. Production code never needs this (on a GPU TRL's own paths work).

* Colocate mode. TRL's ``VLLMGeneration.sync_weights`` calls ``model.load_weights([(name, tensor)])`` once per
  parameter. vLLM CPU packs each linear layer's weight for its oneDNN / SGL kernels after loading
  (``dispatch_cpu_unquantized_gemm``) and leaves an empty placeholder parameter without ``weight_loader``, so that
  call raises ``AttributeError``. :func:`patch_colocate_sync` makes colocate mode hand all the parameters (the same
  ``_iter_named_params`` TRL walks) to vLLM's layer-wise reload, ``model_runner.reload_weights(weights_iterator=...,
  is_checkpoint_format=True)``, which loads checkpoint-format tensors and re-packs each layer.
* Server mode. TRL's client sends weights over vLLM's NCCL weight-transfer engine, which needs CUDA
  (``VLLMClient.init_communicator`` raises ``NotImplementedError`` on CPU). :func:`patch_server_sync` replaces the
  client's ``init_communicator`` (no NCCL group) and ``update_named_params`` (the tensors are written to a
  safetensors file, then ``POST /collective_rpc`` asks every worker to reload from it); TRL then resets the prefix
  cache itself. The server side is :class:`FileWeightSyncExtension`, loaded with ``trl vllm-serve ...
  --worker-extension-cls support.vllm_cpu_shim.FileWeightSyncExtension`` (``tests`` on the server's PYTHONPATH).

Both reloads end with :func:`repack_kept_weights`: a layer that keeps its weight next to a packed copy (the tied LM
head shares the embedding's weight and packs it for its matmul) is not re-packed by the layer-wise reload, which
finalizes the embedding and leaves the LM head's packed copy stale (vLLM documents the reload's limitation with tied
parameters); re-running that layer's ``process_weights_after_loading`` packs the new values.

:func:`engine_weights` reads what the engine really computes with: each packed linear layer's effective weight is
``cpu_linear(I)ᵀ`` (its own kernel applied to the identity), so tests compare it with the trainer's parameters.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

import torch


RELOAD_METHOD = "reload_weights_from_file"
SAVE_METHOD = "save_engine_weights"


def repack_kept_weights(model: torch.nn.Module) -> list[str]:
    """Re-run ``process_weights_after_loading`` on the layers whose kernel packs a weight they also keep (the tied LM
    head on CPU); returns their names. Layers whose weight was replaced by the packed copy (empty placeholder) are
    already re-packed by the layer-wise reload."""
    repacked = []
    for name, module in model.named_modules():
        method = getattr(module, "quant_method", None)
        weight = getattr(module, "weight", None)
        if hasattr(module, "cpu_linear") and method is not None and weight is not None and weight.numel() > 0:
            method.process_weights_after_loading(module)
            repacked.append(name)
    return repacked


def reload_weights(model_runner, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Load checkpoint-format ``(name, tensor)`` pairs into a vLLM model runner through its layer-wise reload."""
    model_runner.reload_weights(weights_iterator=iter(list(weights)), is_checkpoint_format=True)
    repack_kept_weights(model_runner.get_model())


@torch.no_grad()
def engine_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights a vLLM CPU model computes with, by vLLM name: a packed linear layer's effective ``(N, K)`` weight
    is its kernel applied to the identity, transposed; every other parameter as stored."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "cpu_linear") and hasattr(module, "weight"):
            stored = module.weight
            if stored.numel() > 0:
                size_in, dtype = stored.shape[1], stored.dtype
            else:  # the placeholder left by the packing: read the input size from the layer
                size_in, dtype = module.input_size_per_partition, stored.dtype
            eye = torch.eye(size_in, dtype=dtype)
            out[f"{name}.weight"] = module.cpu_linear(eye, stored, None).T.contiguous()
    for name, param in model.named_parameters():
        if name not in out and param.numel() > 0:
            out[name] = param.detach().clone()
    return out


def colocate_model_runner(trainer):
    """The model runner of a TRL colocate-mode trainer's in-process vLLM engine."""
    return trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner


def patch_colocate_sync(monkeypatch) -> list[int]:
    """Make TRL's colocate ``sync_weights`` reload through vLLM's layer-wise reload; returns a list that gets the
    number of tensors of each sync."""
    from trl.generation.vllm_generation import VLLMGeneration

    original = VLLMGeneration.sync_weights
    syncs: list[int] = []

    def sync_weights(self):
        if self.mode != "colocate":
            return original(self)
        weights = [(name, param.detach().clone()) for name, param in self._iter_named_params()]
        reload_weights(self.llm.llm_engine.model_executor.driver_worker.model_runner, weights)
        self.llm.reset_prefix_cache()
        syncs.append(len(weights))

    monkeypatch.setattr(VLLMGeneration, "sync_weights", sync_weights)
    return syncs


class FileWeightSyncExtension:
    """Mixed into each vLLM worker (``--worker-extension-cls``): reload weights from a file, save the engine's."""

    def reload_weights_from_file(self, path: str) -> int:
        from safetensors.torch import load_file

        weights = load_file(path)
        reload_weights(self.model_runner, weights.items())
        return len(weights)

    def save_engine_weights(self, path: str) -> str:
        from safetensors.torch import save_file

        save_file(engine_weights(self.model_runner.get_model()), path)
        return path


def patch_server_sync(monkeypatch, directory: str) -> list[int]:
    """Make TRL's ``VLLMClient`` sync weights through a file in ``directory`` and ``/collective_rpc`` (see the
    module docstring); returns a list that gets the number of tensors of each sync."""
    from safetensors.torch import save_file
    from trl.generation.vllm_client import VLLMClient

    syncs: list[int] = []

    def init_communicator(self, device=0):
        # What TRL checks before opening its NCCL group, without the group.
        if self.get_server_info()["weight_transfer_config"] is None:
            raise RuntimeError(f"The vLLM server at {self.base_url} has no weight-transfer engine.")
        self.communicator = None

    def update_named_params(self, metadata, named_params):
        tensors = {name: tensor.detach().contiguous().clone() for name, tensor in named_params}
        expected = [name for name, _, _ in metadata]
        if list(tensors) != expected:
            raise RuntimeError(f"update_named_params: got {list(tensors)}, announced {expected}.")
        fd, path = tempfile.mkstemp(suffix=".safetensors", dir=directory)
        os.close(fd)
        save_file(tensors, path)
        try:
            self._post(f"{self.base_url}/collective_rpc", json={"method": RELOAD_METHOD, "args": [path]})
        finally:
            os.remove(path)
        syncs.append(len(tensors))

    monkeypatch.setattr(VLLMClient, "init_communicator", init_communicator)
    monkeypatch.setattr(VLLMClient, "update_named_params", update_named_params)
    return syncs


def server_engine_weights(base_url: str, directory: str) -> dict[str, torch.Tensor]:
    """The served engine's :func:`engine_weights` (worker 0), through ``/collective_rpc``."""
    import requests
    from safetensors.torch import load_file

    path = os.path.join(directory, "engine_weights.safetensors")
    response = requests.post(f"{base_url}/collective_rpc", json={"method": SAVE_METHOD, "args": [path]}, timeout=120)
    response.raise_for_status()
    return load_file(path)


def hf_weights_in_vllm_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A transformers Qwen2/Llama model's parameters under vLLM's names: q/k/v stacked into ``qkv_proj``, gate/up
    into ``gate_up_proj``, the tied LM head as ``lm_head.weight``."""
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    out = {}
    for name, value in params.items():
        for part in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"):
            if f".{part}." in name:
                break
        else:
            out[name] = value
    layers = {name.split(".self_attn.")[0] for name in params if ".self_attn." in name}
    for layer in layers:
        for kind in ("weight", "bias"):
            parts = [params.get(f"{layer}.self_attn.{p}.{kind}") for p in ("q_proj", "k_proj", "v_proj")]
            if all(part is not None for part in parts):
                out[f"{layer}.self_attn.qkv_proj.{kind}"] = torch.cat(parts)
        out[f"{layer}.mlp.gate_up_proj.weight"] = torch.cat(
            [params[f"{layer}.mlp.gate_proj.weight"], params[f"{layer}.mlp.up_proj.weight"]]
        )
    if "lm_head.weight" not in out:
        out["lm_head.weight"] = model.get_output_embeddings().weight.detach().clone()
    return out

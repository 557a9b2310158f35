#!/usr/bin/env bash
# The GPU check in one command, for the device machine (docs/testing.md, "The GPU check"): install the wheels carried
# in .whl/ (this package's dependencies the device image lacks: trl, datasets and theirs; optionally vllm, deepspeed)
# into /tmp/site, then run benchmarks/gpu_check.py, writing $OUT/gpu_check.json (or ./gpu_check.json).
#   benchmarks/gpu_check.sh            # on the GPU machine
#   benchmarks/gpu_check.sh --cpu-smoke  # here, on the CPU: the same script with the tiny model, in seconds
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec timeout 570 "$PYTHON" benchmarks/gpu_check.py --out "${OUT:-.}/gpu_check.json" "$@"

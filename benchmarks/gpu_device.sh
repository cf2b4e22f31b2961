#!/usr/bin/env bash
# On the GPU machine, from the repository root: install the wheels gpu_prepare.py put in
# .gpu/wheels (no network needed), then run benchmarks/gpu.py. Results go to $OUT (or
# ./gpu-results): gpu.json, gpu.md. Extra arguments go to gpu.py.
set -euo pipefail
start=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/qslm-site .gpu/wheels/*.whl
export PYTHONPATH=/tmp/qslm-site${PYTHONPATH:+:$PYTHONPATH}
setup=$(( $(date +%s) - start ))
echo "gpu_device.sh: installed .gpu/wheels in ${setup} s" >&2
PYTHONUNBUFFERED=1 exec python3 benchmarks/gpu.py --out "${OUT:-gpu-results}" --setup-s "$setup" "$@"

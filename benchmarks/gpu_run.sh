#!/usr/bin/env bash
# The GPU run in one command (see benchmarks/gpu_run.py): benchmark, train, ship and evaluate.
#
#   bash benchmarks/gpu_run.sh              # on a CUDA machine with torch preinstalled, no network
#   bash benchmarks/gpu_run.sh --smoke      # every stage with tiny budgets on a CPU (~1 min)
#
# Needs the tracked tree plus the bundle that `make gpu-bundle` builds (.gpu-bundle/: the MNIST
# cache of ddpm_lib.data, mnist-{train,test}.npz, and the wheels of diffusers and what it needs
# beyond a CUDA image's packages). tools/ goes on the path for tools/release.py. Results go to
# $OUT (default runs/gpu-run): bench.json, train.json, eval.json, log.txt and weights/.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BUNDLE=${GPU_BUNDLE:-.gpu-bundle}
OUT=${OUT:-runs/gpu-run}
mkdir -p "$OUT"
if [ ! -d "$BUNDLE/wheels" ] || [ ! -f "$BUNDLE/mnist/mnist-train.npz" ] \
   || [ ! -f "$BUNDLE/mnist/mnist-test.npz" ]; then
  echo "error: $BUNDLE/wheels or the MNIST cache in $BUNDLE/mnist is missing:" \
       "run 'make gpu-bundle' first" >&2
  exit 2
fi
BUNDLE=$(cd "$BUNDLE" && pwd)
SITE=$(mktemp -d)
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
  --target "$SITE" "$BUNDLE"/wheels/*.whl || { echo "error: installing the bundle failed" >&2; exit 2; }
export PYTHONPATH="$PWD:$PWD/tools:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export DDPM_MNIST_DIR="$BUNDLE/mnist" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export DDPM_COMMIT=${DDPM_COMMIT:-$(cat "$BUNDLE/commit" 2>/dev/null || echo unknown)}
"$PY" -u benchmarks/gpu_run.py --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
status=${PIPESTATUS[0]}
rm -rf "$SITE"
exit "$status"

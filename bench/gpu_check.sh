#!/usr/bin/env bash
# The GPU check on a machine with one NVIDIA GPU and no network (bench/gpu_check.py prints its one table).
# Needs the two folders bench/gpu_bundle.sh writes, carried by the device tool one call each (see there):
#   bash bench/gpu_check.sh --stash    # first call, carrying .gpu/a: keep it on the machine
#   bash bench/gpu_check.sh [ARGS]     # second call, carrying .gpu/b: assemble, install, run (under 8 min)
# `bash bench/gpu_check.sh --dry` runs the same steps on a CPU, tiny, with the packages already installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
stash=/root/speechkd-gpu
if [ "${1:-}" = --stash ]; then
  rm -rf "$stash" && mkdir -p "$stash" && cp -r .gpu/a/. "$stash/" && du -sh "$stash" && exit 0
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ "${1:-}" = --dry ]; then
  shift
  exec python3 bench/gpu_check.py --device cpu --dry "$@"
fi
[ -d "$stash/wheels" ] || { echo "gpu_check: $stash is missing: run the --stash call first" >&2; exit 2; }
[ -f .gpu/b/weights-2.safetensors ] || { echo "gpu_check: carry .gpu/b in this call" >&2; exit 2; }
nvidia-smi -L
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$stash"/wheels/*.whl
export PYTHONPATH="$PWD:/tmp/site" SPEECHKD_HOME="$stash/home"
python3 - "$stash" <<'PY'
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

stash = Path(sys.argv[1])
model = stash / "home" / "models" / "tiny.en-v1" / "model.safetensors"
if not model.exists():
    parts = load_file(stash / "weights-1.safetensors") | load_file(".gpu/b/weights-2.safetensors")
    save_file(parts, model)
PY
timeout 480 python3 bench/gpu_check.py --teacher "$SPEECHKD_HOME/models/tiny.en-v1" \
  --manifest "$SPEECHKD_HOME/data/fotaq/train.jsonl" --eval-manifest "$SPEECHKD_HOME/data/fotaq/dev.jsonl" "$@"

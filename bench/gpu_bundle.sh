#!/usr/bin/env bash
# Prepare, on this (networked, CPU) machine, what bench/gpu_check.sh needs on a GPU machine without network:
# wheels for packages its image lacks, the tiny.en teacher in float16 and a few hundred FOTAQ lines. The device
# tool carries at most 64 MiB a call, so the bundle comes in two folders, each carried by one call:
#   bash bench/gpu_bundle.sh                 # writes .gpu/a and .gpu/b (git-ignored through .git/info/exclude)
#   device run, carry [".gpu/a"]:  bash bench/gpu_check.sh --stash        (keeps .gpu/a on the warm machine)
#   device run, carry [".gpu/b"]:  bash bench/gpu_check.sh                (within 30 s of the first call)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${GPU_CHECK_LINES:-512}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/a/wheels .gpu/a/home/data/fotaq/audio .gpu/a/home/models/tiny.en-v1 .gpu/b
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .gpu/a/wheels soundfile soxr cffi pycparser jiwer rapidfuzz whisper-normalizer \
  more-itertools indic-numtowords text2num
HF_HUB_OFFLINE=1 python3 - "$lines" <<'PY'
import shutil, sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from speechkd.corpora import prepare_corpus
from speechkd.manifest import read_manifest, write_manifest
from speechkd.models import ensure_bundled
from speechkd.paths import speechkd_home

n = int(sys.argv[1])
teacher, target = ensure_bundled("bundled:tiny.en"), Path(".gpu/a/home/models/tiny.en-v1")
for f in teacher.iterdir():
    if f.name != "model.safetensors":
        shutil.copy(f, target / f.name)
weights = {k: v.to(torch.float16).contiguous() for k, v in load_file(teacher / "model.safetensors").items()}
names, total, first, size = sorted(weights), sum(v.numel() for v in weights.values()), [], 0
for name in sorted(names, key=lambda k: -weights[k].numel()):  # part 1 (with wheels and audio): ~45 %
    if size + weights[name].numel() <= 0.45 * total:
        first.append(name)
        size += weights[name].numel()
save_file({k: weights[k] for k in first}, ".gpu/a/weights-1.safetensors")
save_file({k: weights[k] for k in names if k not in first}, ".gpu/b/weights-2.safetensors")
fotaq = speechkd_home() / "data" / "fotaq"
prepare_corpus("fotaq", fotaq)
out = Path(".gpu/a/home/data/fotaq")
for split, count in (("train", n), ("dev", 128)):
    rows = read_manifest(fotaq / f"{split}.jsonl")[:count]
    for row in rows:
        copy = (out / "audio" / Path(row["audio"]).name).resolve()
        shutil.copy(row["audio"], copy)
        row["audio"] = str(copy)  # write_manifest stores it relative to the manifest's folder
    write_manifest(out / f"{split}.jsonl", rows)
PY
du -sh .gpu/a .gpu/b

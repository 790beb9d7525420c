#!/usr/bin/env bash
# Prepare the FOTAQ demo corpus and print each bundled teacher's WER on its dev split.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bash scripts/teacher_wer.sh [--data-dir DIR] [--out-dir DIR] [--models "bundled:tiny.en bundled:base"]

Materialises the FOTAQ corpus (real acted speech) into DIR (default data/fotaq), transcribes its dev split with
each model and prints the normalised WER (Whisper English normaliser). Transcripts go to OUT (default runs/teacher_wer).
USAGE
}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

data=data/fotaq; out=runs/teacher_wer; models="bundled:tiny.en bundled:base"
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data="$2"; shift ;;
    --out-dir) out="$2"; shift ;;
    --models) models="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
export HF_HUB_OFFLINE=1

log "preparing FOTAQ in $data"
speechkd data prepare fotaq --output-dir "$data" >/dev/null
mkdir -p "$out"
for model in $models; do
  log "transcribing $data/dev.jsonl with $model"
  speechkd transcribe --model "$model" --language en --manifest "$data/dev.jsonl" \
    --output "$out/${model#bundled:}.jsonl" | tail -n 1
done

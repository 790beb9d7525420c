#!/usr/bin/env bash
# The whole distillation recipe, stage by stage (ESPnet/Kaldi style): data -> pseudo-labels -> student -> distil
# -> evaluate. Each stage skips finished work and resumes unfinished work, so rerunning after a failure continues.
set -euo pipefail
here="$(dirname "$0")"
source "$here/lib.sh"
usage() {
  cat <<'USAGE'
Usage: scripts/run.sh --config FILE [--stage A] [--stop-stage B] [--run-dir DIR] [--dry-run]

Stages:
  1  prepare data      scripts/01_prepare_data.sh   corpus + this run's manifests
  2  pseudo-label      scripts/02_pseudo_label.sh   teacher transcripts, filtered
  3  create student    scripts/03_create_student.sh teacher copy with few decoder layers
  4  distill           scripts/04_distill.sh        KL + CE training, resumable
  5  evaluate          scripts/05_evaluate.sh       WER, RTFx, speed-up, speculative decoding
Configs: configs/demo-tiny.yaml (minutes, CI), configs/demo-cpu.yaml (bundled base, ~45 min on 2 cores),
configs/gpu-large-v3.yaml (openai/whisper-large-v3 on GPUs with accelerate).
  --stage A        first stage to run (1)
  --stop-stage B   last stage to run (5)
USAGE
}
stage=1; stop_stage=5; passthrough=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage="$2"; shift ;;
    --stop-stage) stop_stage="$2"; shift ;;
    *) passthrough+=("$1") ;;
  esac
  shift
done
parse_common "${passthrough[@]}"
[ ${#extra_args[@]} -eq 0 ] || die "unknown option(s): ${extra_args[*]}"
common=(--config "$config" --run-dir "$run_dir")
[ "$dry_run" = 1 ] && common+=(--dry-run)

scripts=(01_prepare_data 02_pseudo_label 03_create_student 04_distill 05_evaluate)
start=$(date +%s)
for i in "${!scripts[@]}"; do
  n=$((i + 1))
  if [ "$n" -ge "$stage" ] && [ "$n" -le "$stop_stage" ]; then
    log "stage $n: ${scripts[$i]#*_}"
    bash "$here/${scripts[$i]}.sh" "${common[@]}"
  fi
done
if [ "$dry_run" = 0 ] && [ -f "$run_dir/report.md" ] && [ "$stop_stage" -ge 5 ]; then
  cat "$run_dir/report.md"
fi
log "done in $(( $(date +%s) - start )) s; outputs in $run_dir"

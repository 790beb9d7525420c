#!/usr/bin/env bash
# Stage 4 of scripts/run.sh (distill): train the student on the kept pseudo-labels (KL + CE); resumable.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage() {
  cat <<'USAGE'
Usage: scripts/04_distill.sh --config FILE [--run-dir DIR] [--dry-run] [-- extra distill flags]
Stage 4 of 5 (scripts/run.sh --stage 4): distill.

Runs `speechkd distill --resume` (section distill; run.launcher for several processes) on
RUN_DIR/pseudo_label/train.jsonl, evaluating on RUN_DIR/data/eval.jsonl, into RUN_DIR/distill/.
With run.share_encoder_cache: true, the encoder cache is RUN_DIR/cache, filled by stage 2.
USAGE
}
parse_common "$@"
if [ -f "$run_dir/distill/final/config.json" ] && [ "$dry_run" = 0 ]; then
  log "trained student already in $run_dir/distill: skipping (delete it to redo)"
  exit 0
fi
share=()
[ "$(cfg run.share_encoder_cache false)" = true ] && share=(--encoder-cache-dir "$run_dir/cache")
# shellcheck disable=SC2046
run $(launcher) distill --config "$config" --teacher "$(cfg run.teacher)" --student "$run_dir/student_init" \
  --train-manifest "$run_dir/pseudo_label/train.jsonl" --eval-manifest "$run_dir/data/eval.jsonl" \
  --output-dir "$run_dir/distill" --resume "${share[@]}" "${extra_args[@]}"

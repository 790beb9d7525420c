#!/usr/bin/env bash
# Stage 2 of scripts/run.sh (pseudo-label): the teacher transcribes the input manifest; filters keep the good labels.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage() {
  cat <<'USAGE'
Usage: scripts/02_pseudo_label.sh --config FILE [--run-dir DIR] [--dry-run] [-- extra pseudo-label flags]
Stage 2 of 5 (scripts/run.sh --stage 2): pseudo-label.

Runs `speechkd pseudo-label` (section pseudo_label of the config; run.launcher for several processes) on
RUN_DIR/data/pseudo_label_input.jsonl into RUN_DIR/pseudo_label/. Resumes an interrupted run.
With run.share_encoder_cache: true, the teacher's encoder output is kept in RUN_DIR/cache, where stage 4
finds it instead of running the encoder again (float16: ~1.5 MB an utterance for base, 3.8 MB for large).
USAGE
}
parse_common "$@"
if [ -f "$run_dir/pseudo_label/summary.json" ] && [ "$dry_run" = 0 ]; then
  log "pseudo-labels already in $run_dir/pseudo_label: skipping (delete it to redo)"
  exit 0
fi
share=()
[ "$(cfg run.share_encoder_cache false)" = true ] && share=(--encoder-cache-dir "$run_dir/cache")
# shellcheck disable=SC2046
run $(launcher) pseudo-label --config "$config" --teacher "$(cfg run.teacher)" \
  --manifest "$run_dir/data/pseudo_label_input.jsonl" --output-dir "$run_dir/pseudo_label" "${share[@]}" "${extra_args[@]}"

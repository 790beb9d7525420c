#!/usr/bin/env bash
# Stage 1: the teacher transcribes the run's input manifest; filters keep the good pseudo-labels.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage() {
  cat <<'USAGE'
Usage: scripts/02_pseudo_label.sh --config FILE [--run-dir DIR] [--dry-run] [-- extra pseudo-label flags]

Runs `speechkd pseudo-label` (section pseudo_label of the config; run.launcher for several processes) on
RUN_DIR/data/pseudo_label_input.jsonl into RUN_DIR/pseudo_label/. Resumes an interrupted run.
USAGE
}
parse_common "$@"
if [ -f "$run_dir/pseudo_label/summary.json" ] && [ "$dry_run" = 0 ]; then
  log "pseudo-labels already in $run_dir/pseudo_label: skipping (delete it to redo)"
  exit 0
fi
# shellcheck disable=SC2046
run $(launcher) pseudo-label --config "$config" --teacher "$(cfg run.teacher)" \
  --manifest "$run_dir/data/pseudo_label_input.jsonl" --output-dir "$run_dir/pseudo_label" "${extra_args[@]}"

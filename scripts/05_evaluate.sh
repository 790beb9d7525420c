#!/usr/bin/env bash
# Stage 5 of scripts/run.sh (evaluate): the student against the teacher (WER, RTFx) and as its speculative draft.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage() {
  cat <<'USAGE'
Usage: scripts/05_evaluate.sh --config FILE [--run-dir DIR] [--dry-run] [-- extra evaluate flags]
Stage 5 of 5 (scripts/run.sh --stage 5): evaluate.

Runs `speechkd evaluate` (section evaluate) with the student RUN_DIR/distill/final, the teacher as --baseline and
the student's draft as --assistant, on RUN_DIR/data/eval.jsonl, into RUN_DIR/evaluate/; then copies the report
to RUN_DIR/report.md.
USAGE
}
parse_common "$@"
if [ -f "$run_dir/evaluate/metrics.json" ] && [ "$dry_run" = 0 ]; then
  log "evaluation already in $run_dir/evaluate: skipping (delete it to redo)"
  exit 0
fi
run speechkd evaluate --config "$config" --model "$run_dir/distill/final" --baseline "$(cfg run.teacher)" \
  --assistant "$run_dir/distill/final" --manifest "$run_dir/data/eval.jsonl" \
  --output-dir "$run_dir/evaluate" "${extra_args[@]}"
if [ "$dry_run" = 0 ]; then
  # the run's report: the evaluation's, with its plots' paths made relative to RUN_DIR, and the training curves
  { sed -e 's#](\([A-Za-z0-9_.-]*\.png\))#](evaluate/\1)#' "$run_dir/evaluate/report.md"
    printf '\n## Training\n\n![training loss](distill/loss.png)\n![dev WER during training](distill/wer.png)\n'
  } > "$run_dir/report.md"
  log "wrote $run_dir/report.md"
fi

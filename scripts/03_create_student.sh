#!/usr/bin/env bash
# Stage 3 of scripts/run.sh (create student): copy the teacher, keep a few maximally spaced decoder layers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage() {
  cat <<'USAGE'
Usage: scripts/03_create_student.sh --config FILE [--run-dir DIR] [--dry-run] [-- extra create-student flags]
Stage 3 of 5 (scripts/run.sh --stage 3): create student.

Runs `speechkd create-student` (section create_student) into RUN_DIR/student_init/; skips a finished one.
USAGE
}
parse_common "$@"
if [ -f "$run_dir/student_init/speechkd.json" ] && [ "$dry_run" = 0 ]; then
  log "student already created in $run_dir/student_init"
  exit 0
fi
run speechkd create-student --config "$config" --teacher "$(cfg run.teacher)" \
  --output-dir "$run_dir/student_init" "${extra_args[@]}"

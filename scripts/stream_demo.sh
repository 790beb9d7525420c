#!/usr/bin/env bash
# Streaming demo: the same FOTAQ dev line transcribed live by the teacher and by the student, side by side.
set -euo pipefail

teacher="bundled:base"
student=""
audio=""
line_id="38001EP1"   # NAOMI, 8.4 s: "A lot of people mistake it for a pesticide pack, ..."
language="en"
data_dir="${SPEECHKD_HOME:-$HOME/.cache/speechkd}/data/fotaq"
output_dir="${TMPDIR:-/tmp}/speechkd-stream-demo"
mode="--as-fast-as-possible"
use_tmux=false

usage() {
  cat <<EOF
Usage: $0 --student DIR [options]

Runs \`speechkd stream\` on one FOTAQ dev line with the teacher, then with the student, and prints their
statistics side by side (word latency mean/p50/p90, real-time factor, WER against each model's offline
transcript). With --tmux both run at the same time in two panes of a new tmux window.

Options:
  --teacher REF      teacher model (default: $teacher)
  --student REF      student model directory (required; bundled:tiny.en works as a stand-in)
  --line ID          FOTAQ dev line id (default: $line_id)
  --audio FILE       stream this file instead of a dev line
  --language CODE    language for multilingual models (default: $language)
  --data-dir DIR     prepared FOTAQ corpus (default: $data_dir; prepared when missing)
  --output-dir DIR   where the per-model statistics (JSON) go (default: $output_dir)
  --realtime         play the audio in real time instead of as fast as possible
  --tmux             run teacher and student in two tmux panes at once
  -h, --help         show this help
EOF
}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --teacher) teacher="$2"; shift 2 ;;
    --student) student="$2"; shift 2 ;;
    --line) line_id="$2"; shift 2 ;;
    --audio) audio="$2"; shift 2 ;;
    --language) language="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --output-dir) output_dir="$2"; shift 2 ;;
    --realtime) mode=""; shift ;;
    --tmux) use_tmux=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ -n "$student" ]] || { echo "--student is required" >&2; usage >&2; exit 2; }

if [[ -z "$audio" ]]; then
  if [[ ! -f "$data_dir/dev.jsonl" ]]; then
    log "preparing the FOTAQ corpus in $data_dir"
    speechkd data prepare fotaq --output-dir "$data_dir"
  fi
  audio="$data_dir/audio/$line_id.mp3"
  [[ -f "$audio" ]] || { echo "no dev line $line_id ($audio)" >&2; exit 2; }
  log "dev line $line_id: $(grep -F "\"id\": \"$line_id\"" "$data_dir/dev.jsonl" | sed 's/.*"text": "\([^"]*\)".*/\1/')"
fi
mkdir -p "$output_dir"
export HF_HUB_OFFLINE=1

stream_cmd() {  # ROLE MODEL
  echo "speechkd stream --model '$2' --audio '$audio' --language '$language' $mode --json '$output_dir/$1.json'" \
    "| tee '$output_dir/$1.txt'"
}

if $use_tmux; then
  command -v tmux >/dev/null || { echo "--tmux needs tmux (apt-get install tmux)" >&2; exit 2; }
  session="speechkd-stream-$$"
  tmux new-session -d -s "$session" "echo 'teacher: $teacher'; $(stream_cmd teacher "$teacher"); read -r -p 'done: Enter closes'"
  tmux split-window -h -t "$session" "echo 'student: $student'; $(stream_cmd student "$student"); read -r -p 'done: Enter closes'"
  exec tmux attach -t "$session"
fi

for role in teacher student; do
  model="$teacher"; [[ "$role" == student ]] && model="$student"
  log "$role: $model"
  bash -c "$(stream_cmd "$role" "$model")"
done

log "side by side (left: teacher $teacher, right: student $student)"
paste -d '|' <(tail -n 4 "$output_dir/teacher.txt") <(tail -n 4 "$output_dir/student.txt") \
  | awk -F'|' '{ printf "%-72s | %s\n", $1, $2 }'

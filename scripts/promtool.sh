#!/usr/bin/env bash
# Installs Prometheus's promtool, which the metrics test checks the /metrics scrape with.
#
# Usage:
#   scripts/promtool.sh install    promtool from Debian's prometheus package (apt-get, as
#                                  root on Debian), only when missing
#
# Concurrent callers wait for each other (flock), so parallel tests install it once.
# Progress messages go to stderr; stdout stays empty.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK_FILE="$ROOT/target/.promtool.lock"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "promtool not found; installing Debian's prometheus package with apt-get..."
        apt-get update -qq >&2
        # The package's service is never started: only its promtool is used.
        DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends \
            prometheus >&2
        command -v promtool >/dev/null 2>&1 || die "apt-get installed prometheus, but there is no promtool."
    else
        die "the metrics test needs promtool; install it first (e.g. 'sudo apt-get install -y prometheus')."
    fi
}

case "${1:-}" in
    install)
        mkdir -p "$(dirname "$LOCK_FILE")"
        exec 9>"$LOCK_FILE"
        flock 9
        ensure_promtool
        ;;
    *)
        sed -n '2,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
        exit 2
        ;;
esac

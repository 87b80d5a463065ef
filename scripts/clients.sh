#!/usr/bin/env bash
# Installs what the real-client tests in tests/clients/ need.
#
# Usage:
#   scripts/clients.sh install    Chromium (with apt-get, as root on Debian) and the pinned npm
#                                 packages of tests/clients/ (npm ci), each only when missing
#
# The npm packages are installed again when tests/clients/package-lock.json changes; a stamp
# in node_modules/ remembers which lock file they came from. Concurrent callers wait for each
# other (flock on tests/clients/.install.lock), so parallel tests never run npm ci twice at once.
# The browser is Debian's: playwright-core drives it and downloads none of its own.
#
# Progress messages go to stderr; stdout stays empty.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS_DIR="$ROOT/tests/clients"
LOCK_FILE="$CLIENTS_DIR/.install.lock"
STAMP="$CLIENTS_DIR/node_modules/.installed-lock.sha256"

CHROMIUM="/usr/bin/chromium"
MIN_NODE_MAJOR=20

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

# --- Chromium ---------------------------------------------------------------

ensure_chromium() {
    [[ -x $CHROMIUM ]] && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "Chromium not found; installing Debian's chromium with apt-get..."
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
        [[ -x $CHROMIUM ]] || die "apt-get installed chromium, but there is no $CHROMIUM."
    else
        die "the client tests need Chromium at $CHROMIUM; install it first (e.g. 'sudo apt-get install -y chromium')."
    fi
}

# --- Node packages ----------------------------------------------------------

ensure_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
        || die "the client tests need Node.js $MIN_NODE_MAJOR+ and npm; install them first (e.g. 'sudo apt-get install -y nodejs npm')."
    local version
    version="$(node --version)"
    [[ $version =~ ^v([0-9]+) ]] || die "could not read the version of '$(command -v node)' ($version)."
    if ((BASH_REMATCH[1] < MIN_NODE_MAJOR)); then
        die "the client tests need Node.js $MIN_NODE_MAJOR+, but 'node' is $version; install a newer one."
    fi
}

lock_hash() { sha256sum "$CLIENTS_DIR/package-lock.json" | cut -d' ' -f1; }

# True if node_modules/ was installed from the current package-lock.json.
packages_installed() {
    [[ -f $STAMP ]] && [[ "$(<"$STAMP")" == "$(lock_hash)" ]]
}

ensure_packages() {
    packages_installed && return 0
    ensure_node
    command -v flock >/dev/null 2>&1 || die "flock is needed (Debian: 'sudo apt-get install -y util-linux')."
    exec 9>"$LOCK_FILE"
    flock 9
    # Another caller may have installed them while this one waited.
    if ! packages_installed; then
        log "Installing the client tests' npm packages (npm ci in tests/clients/)..."
        # playwright-core downloads no browser; the variable keeps it that way.
        (cd "$CLIENTS_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
            npm ci --no-audit --no-fund --loglevel=error >&2)
        lock_hash >"$STAMP"
    fi
    flock -u 9
    exec 9>&-
}

cmd_install() {
    ensure_chromium
    ensure_packages
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        install) cmd_install ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"

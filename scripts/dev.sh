#!/usr/bin/env bash
# Starts the server on a local DynamoDB with demo data.
#
#   1. installs and starts DynamoDB Local on $DYNAMODB_PORT (default 8000);
#   2. builds the server in release mode;
#   3. creates the tables and seeds the demo data;
#   4. prints the playground URL and a ready-to-paste Authorization header;
#   5. runs the server on $PORT (default 8080) until Ctrl-C.
#
# On exit, the DynamoDB Local started here is stopped again; one that was
# already running beforehand is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DYNAMODB="$ROOT/scripts/dynamodb-local.sh"
BIN="$ROOT/target/release/blog-graphql"

export DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
export AWS_REGION="${AWS_REGION:-us-east-1}"
# DynamoDB Local accepts any credentials, but the SDK insists on having some.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export JWT_SECRET="${JWT_SECRET:-dev-secret-change-me}"
export PORT="${PORT:-8080}"

started_dynamodb=0
server_pid=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ((started_dynamodb)); then
        "$DYNAMODB" stop "$DYNAMODB_PORT" || true
    fi
    exit "$status"
}
trap cleanup EXIT
# Turn signals into a normal exit so that the EXIT trap does the cleanup once.
trap 'exit 130' INT
trap 'exit 143' TERM

# Remember whether DynamoDB Local was already up, so that only an instance
# started by this script gets stopped at the end.
if ! "$DYNAMODB" status "$DYNAMODB_PORT" >/dev/null 2>&1; then
    started_dynamodb=1
fi
"$DYNAMODB" start "$DYNAMODB_PORT"

# Release mode: this is the server people will measure.
cargo build --release --locked --bin blog-graphql

"$BIN" create-tables
"$BIN" seed

token="$("$BIN" token --user user-1)"

cat <<EOF

============================================================================
  GraphQL playground:  http://localhost:$PORT/graphql
  Signed in as user-1: paste this into the playground's Headers pane

  {"Authorization": "Bearer $token"}
============================================================================

EOF

# The server runs as a child rather than via exec, so that the traps above
# still run (and stop DynamoDB Local) when it exits or on Ctrl-C.
"$BIN" serve &
server_pid=$!
wait "$server_pid"

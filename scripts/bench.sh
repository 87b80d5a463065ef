#!/usr/bin/env bash
# Benchmarks the server against the floor of its DynamoDB requests.
#
#   1. installs and starts a fresh DynamoDB Local on $BENCH_DYNAMODB_PORT (default 8100);
#   2. builds the server and the benchmark in release mode;
#   3. runs the benchmark (benches/blog): it creates the tables, writes the data set
#      (200 users x 10 posts x 10 comments), starts the server, and runs each workload
#      on the server and on the floor in turn.
#
# Arguments go to the benchmark: `scripts/bench.sh --help` lists them (for example
# `--duration 5 --rounds 1 --workloads post-details`). The results are printed and
# written to target/bench/bench.md and target/bench/bench.json (`--out DIR` for
# another folder). BENCH_SERVER=path/to/blog-graphql measures another build of the
# server (an older commit's, say) instead of this tree's.
#
# The DynamoDB Local started here is stopped at the end. A benchmark, not a test: CI
# does not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DYNAMODB="$ROOT/scripts/dynamodb-local.sh"
PORT="${BENCH_DYNAMODB_PORT:-8100}"

if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
    exec cargo bench --locked --bench blog -- --server target/release/blog-graphql --help
fi

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$PORT"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"

SERVER="${BENCH_SERVER:-target/release/blog-graphql}"
if [[ -z ${BENCH_SERVER:-} ]]; then
    cargo build --release --locked --bin blog-graphql
fi
cargo bench --locked --bench blog --no-run

if "$DYNAMODB" status "$PORT" >/dev/null 2>&1; then
    echo "error: a DynamoDB Local already runs on port $PORT; the benchmark needs a fresh one (set BENCH_DYNAMODB_PORT)" >&2
    exit 1
fi
"$DYNAMODB" start "$PORT"
trap '"$DYNAMODB" stop "$PORT" || true' EXIT

cargo bench --locked --bench blog -- --server "$SERVER" "$@"

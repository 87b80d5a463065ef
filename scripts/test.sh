#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit and integration tests.
#
# The integration tests start their own DynamoDB Local (on a free port) when
# AWS_ENDPOINT_URL_DYNAMODB is unset, so none is started here; if it is set,
# the tests use that endpoint instead. This script only makes sure the
# DynamoDB Local jar and the client tools (npm packages, Chromium) are
# installed, so that downloads are not timed as part of a test. Stops at the first failing step, with a non-zero exit status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "Installing DynamoDB Local"
scripts/dynamodb-local.sh install

step "Installing the client tools (npm packages, Chromium)"
scripts/clients.sh install

step "Installing promtool, cfn-lint and redis-server"
scripts/promtool.sh install
scripts/redis.sh install
scripts/cfn-lint.sh install

step "Checking formatting (cargo fmt)"
cargo fmt --all -- --check

step "Linting (cargo clippy)"
cargo clippy --all-targets --locked -- -D warnings

step "Running tests (cargo test)"
cargo test --locked

step "All checks passed"

#!/usr/bin/env bash
# Installs cfn-lint (AWS CloudFormation's linter, from PyPI) for the template test.
#
# Usage:
#   scripts/cfn-lint.sh install    cfn-lint, pinned, in a virtualenv at target/cfn-lint/,
#                                  only when missing; its command is target/cfn-lint/bin/cfn-lint
#
# Concurrent callers wait for each other (flock). Progress messages go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/target/cfn-lint"
VERSION="1.58.0"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
    install)
        mkdir -p "$ROOT/target"
        exec 9>"$ROOT/target/.cfn-lint.lock"
        flock 9
        if [[ -x $VENV/bin/cfn-lint ]] && "$VENV/bin/cfn-lint" --version 2>/dev/null | grep -q "$VERSION"; then
            exit 0
        fi
        command -v python3 >/dev/null 2>&1 || die "the template test needs python3 (with venv)."
        printf 'installing cfn-lint %s into %s...\n' "$VERSION" "$VENV" >&2
        rm -rf "$VENV"
        python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (on Debian: apt-get install -y python3-venv)."
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$VERSION" >&2
        ;;
    *)
        sed -n '2,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
        exit 2
        ;;
esac

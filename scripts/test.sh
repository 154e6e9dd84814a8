#!/usr/bin/env bash
# Set up .venv (once) and run every check the project has: ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k config`.
# The PostgreSQL tests start their own server from the local PostgreSQL binaries
# (Debian: apt-get install postgresql); without them they are skipped, unless
# MONITOR_REQUIRE_POSTGRES=1 (as in CI), which makes a missing server a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

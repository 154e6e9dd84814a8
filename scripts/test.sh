#!/usr/bin/env bash
# Set up .venv (once) and run every check the project has: ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k config`.
# The PostgreSQL tests start their own server from the local PostgreSQL binaries
# (Debian: apt-get install postgresql), and the cache tests real Varnish and nginx
# (apt-get install varnish nginx), and the metrics tests a real Prometheus and promtool
# (apt-get install prometheus); without them those tests are skipped, unless
# MONITOR_REQUIRE_POSTGRES=1 / MONITOR_REQUIRE_CACHES=1 / MONITOR_REQUIRE_PROMETHEUS=1
# (as in CI) make a missing one a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

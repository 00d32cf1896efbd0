#!/usr/bin/env bash
# `make test`: services up, lint, types, pytest; afterwards stop the services if a test run
# started them (a marker file remembers that across a run that was killed half-way).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
marker=.run/started-by-make-test

if ! $PY ops/services.py status >/dev/null 2>&1; then
  mkdir -p .run && touch "$marker"
fi
cleanup() {
  if [ -f "$marker" ]; then
    $PY ops/services.py down
    rm -f "$marker"
  fi
}
trap cleanup EXIT

$PY ops/services.py up || exit 1
.venv/bin/ruff check . || exit 1
.venv/bin/mypy || exit 1
$PY -m pytest "$@"

#!/usr/bin/env bash
# `make test`: services up, lint, types, pytest; afterwards stop the services if this run started them.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

started_here=no
if ! $PY ops/services.py status >/dev/null 2>&1; then
  started_here=yes
fi
cleanup() {
  if [ "$started_here" = yes ]; then $PY ops/services.py down; fi
}
trap cleanup EXIT

$PY ops/services.py up || exit 1
.venv/bin/ruff check . || exit 1
.venv/bin/mypy || exit 1
$PY -m pytest "$@"

#!/usr/bin/env bash
# `make test`: services up, lint, types, pytest; afterwards stop the services if a test run
# started them (a marker file remembers that across a run that was killed half-way).
# pytest runs twice: the independent tests side by side (TEST_WORKERS processes; they mostly
# wait on sockets, the broker and subprocesses), then, alone, the `exclusive` ones that stop
# or reconfigure the broker or the database every test shares.
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
# Exit 5 is "no test selected": arguments that pick tests of one part only.
$PY -m pytest -n "${TEST_WORKERS:-4}" -m "not exclusive" "$@"
parallel=$?
$PY -m pytest -m exclusive "$@"
exclusive=$?
for code in $parallel $exclusive; do
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then exit "$code"; fi
done
[ "$parallel" -eq 0 ] || [ "$exclusive" -eq 0 ]

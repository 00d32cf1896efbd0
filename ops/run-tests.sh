#!/usr/bin/env bash
# `make test`: services up, lint, types, pytest; afterwards stop the services if a test run
# started them (a marker file remembers that across a run that was killed half-way).
# pytest runs twice, at the same time:
# - the independent tests side by side (TEST_WORKERS processes; they mostly wait on sockets,
#   the broker and subprocesses), on the shared broker and database;
# - the `exclusive` tests, one at a time, on a private broker and MariaDB of their own
#   (EXCLUSIVE_KAFKA_PORT, EXCLUSIVE_MYSQL_PORT), since they stop or reconfigure them.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
marker=.run/started-by-make-test
exclusive_log=.run/exclusive-tests.log
exclusive_env=(
  env "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${EXCLUSIVE_KAFKA_PORT:-9094}"
  "MYSQL_HOST=127.0.0.1" "MYSQL_PORT=${EXCLUSIVE_MYSQL_PORT:-3307}"
  "MYSQL_ADMIN_USER=root" "MYSQL_ADMIN_PASSWORD="
)
mkdir -p .run

if ! $PY ops/services.py status >/dev/null 2>&1; then
  touch "$marker"
fi
exclusive_services=
cleanup() {
  # A start still under way would leave what it starts after the stop below.
  if [ -n "$exclusive_services" ]; then wait "$exclusive_services" 2>/dev/null; fi
  "${exclusive_env[@]}" $PY ops/services.py down
  if [ -f "$marker" ]; then
    $PY ops/services.py down
    rm -f "$marker"
  fi
}
trap cleanup EXIT

$PY ops/services.py up || exit 1
# After the shared pair: that one installs MariaDB and fetches Kafka's jars when missing.
"${exclusive_env[@]}" $PY ops/services.py up --private >.run/exclusive-services.log 2>&1 &
exclusive_services=$!
.venv/bin/ruff check . || exit 1
.venv/bin/mypy || exit 1
if ! wait "$exclusive_services"; then
  cat .run/exclusive-services.log
  exit 1
fi

"${exclusive_env[@]}" $PY -m pytest -m exclusive "$@" >"$exclusive_log" 2>&1 &
exclusive_tests=$!
$PY -m pytest -n "${TEST_WORKERS:-4}" -m "not exclusive" "$@"
parallel=$?
wait "$exclusive_tests"
exclusive=$?
echo "=== the exclusive tests, on their own broker and MariaDB (${exclusive_log}) ==="
cat "$exclusive_log"

# Exit 5 is "no test selected": arguments that pick tests of one part only.
for code in $parallel $exclusive; do
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then exit "$code"; fi
done
[ "$parallel" -eq 0 ] || [ "$exclusive" -eq 0 ]

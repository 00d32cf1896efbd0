#!/usr/bin/env bash
# `make run` (live Coinbase feed) and `make demo` (local simulator, offline): the whole pipeline
# on this machine -- feed -> producer -> Kafka -> consumer -> MySQL `order` -> analysis (HTTP) --
# until Ctrl-C.
# Prints the rows per instrument every 5 s. DEMO_SECONDS=N stops by itself after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}
PY=.venv/bin/python

$PY ops/services.py up
export MYSQL_USER=${MYSQL_USER:-ticker_writer} MYSQL_PASSWORD=${MYSQL_PASSWORD:-ticker_writer}
pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
  wait
  exit "$1"  # Ctrl-C or SIGTERM ends the demo (exit 0), not only its polling loop
}
trap 'stop $?' EXIT
trap 'stop 0' INT TERM

if [ "$mode" = demo ]; then
  port=${SIMULATOR_PORT:-8765}
  $PY -m simulator --port "$port" --rate "${SIMULATOR_RATE:-5}" & pids+=($!)
  export COINBASE_WS_URL="ws://127.0.0.1:$port"
fi
$PY -m producer & pids+=($!)
$PY -m consumer & pids+=($!)
# The analysis API and chart page read `order` as the SELECT-only account.
analysis_port=${ANALYSIS_PORT:-8000}
MYSQL_USER=ticker_reader MYSQL_PASSWORD=ticker_reader \
  ANALYSIS_PORT=$analysis_port $PY -m analysis & pids+=($!)
echo "analysis: charts at http://127.0.0.1:$analysis_port/  API docs at http://127.0.0.1:$analysis_port/docs"

started=$(date +%s)
while :; do
  sleep 5
  $PY - <<'SQL'
import os, pymysql
with pymysql.connect(host=os.environ.get("MYSQL_HOST", "127.0.0.1"),
                     port=int(os.environ.get("MYSQL_PORT", "3306")),
                     user=os.environ["MYSQL_USER"], password=os.environ["MYSQL_PASSWORD"],
                     database=os.environ.get("MYSQL_DATABASE", "coinbase")) as db, db.cursor() as c:
    c.execute("SELECT product_id, COUNT(*), MAX(time), "
              "(SELECT price FROM `order` o2 WHERE o2.product_id = o.product_id "
              " ORDER BY sequence DESC LIMIT 1) FROM `order` o GROUP BY product_id")
    print(" | ".join(f"{p}: {n} rows, last {price} at {t}" for p, n, t, price in c.fetchall())
          or "no rows yet", flush=True)
SQL
  if [ -n "${DEMO_SECONDS:-}" ] && [ $(( $(date +%s) - started )) -ge "$DEMO_SECONDS" ]; then
    break
  fi
done

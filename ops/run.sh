#!/usr/bin/env bash
# `make run` (live Coinbase feed) and `make demo` (local simulator, offline): the whole pipeline
# on this machine -- feed -> producer -> Kafka -> consumer -> MySQL `order` and `trade` ->
# analysis (HTTP), and repair keeping the trade tape complete from REST -- until Ctrl-C.
# Prints the rows per instrument and the tape's state every 5 s. DEMO_SECONDS=N stops by itself after N seconds.
# Watches its components: when one exits, the rest are stopped, the one that died is named with
# the last line it wrote to stderr (kept in DEMO_LOGS/NAME.err, default .run/demo), and the
# demo exits non-zero (the component's own code, or 1 if it exited 0).
# Ports: SIMULATOR_PORT (8765), ANALYSIS_PORT (8000), and the services' own settings.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}
PY=.venv/bin/python
LOGS=${DEMO_LOGS:-.run/demo}

$PY ops/services.py up
export MYSQL_USER=${MYSQL_USER:-ticker_writer} MYSQL_PASSWORD=${MYSQL_PASSWORD:-ticker_writer}
mkdir -p "$LOGS"
names=() pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
  exit "$1"  # Ctrl-C or SIGTERM ends the demo (exit 0), not only its polling loop
}
trap 'stop $?' EXIT
trap 'stop 0' INT TERM

# launch NAME COMMAND...: run it in the background, its stderr shown and kept in $LOGS/NAME.err.
launch() {
  local name=$1
  shift
  "$@" 2> >(tee "$LOGS/$name.err" >&2) &
  names+=("$name") pids+=($!)
}

# If a component has exited: stop the rest, name it with its last error line, exit non-zero.
watch() {
  local i code last how
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null && continue
    code=0
    wait "${pids[$i]}" || code=$?
    sleep 0.2  # tee writes the last line a moment after the process ends
    last=$(grep -v '^[[:space:]]*$' "$LOGS/${names[$i]}.err" | tail -n 1 || true)
    how="exited with code $code"
    [ "$code" -gt 128 ] && how="$how (killed by $(kill -l $(( code - 128 )) 2>/dev/null || echo a signal))"
    echo "demo: ${names[$i]} $how: ${last:-(no error output)}" >&2
    echo "demo: stopping the rest; its output is in $LOGS/${names[$i]}.err" >&2
    unset "pids[$i]"
    stop $(( code == 0 ? 1 : code ))
  done
}

if [ "$mode" = demo ]; then
  port=${SIMULATOR_PORT:-8765}
  launch simulator $PY -m simulator --port "$port" --rate "${SIMULATOR_RATE:-5}"
  export COINBASE_WS_URL="ws://127.0.0.1:$port"
fi
launch producer $PY -m producer
launch consumer $PY -m consumer
# The analysis API and chart page read `order` as the SELECT-only account.
analysis_port=${ANALYSIS_PORT:-8000}
launch analysis env MYSQL_USER=ticker_reader MYSQL_PASSWORD=ticker_reader \
  ANALYSIS_PORT="$analysis_port" $PY -m analysis
echo "analysis: charts at http://127.0.0.1:$analysis_port/  API docs at http://127.0.0.1:$analysis_port/docs"
# Repair fills the tape's holes from the exchange's REST history (the simulator's in the demo),
# reading `trade` as the SELECT-only account; not when the tape is turned off.
if [ "${KAFKA_TRADES_TOPIC-coinbase.matches}" != "" ]; then
  rest=()
  [ "$mode" = demo ] && rest=(COINBASE_REST_URL="http://127.0.0.1:$port")
  launch repair env MYSQL_USER=ticker_reader MYSQL_PASSWORD=ticker_reader "${rest[@]}" \
    $PY -m repair --follow
fi

started=$(date +%s)
while :; do
  for _ in 1 2 3 4 5; do
    sleep 1
    watch
  done
  $PY - <<'SQL'
import os, pymysql
with pymysql.connect(host=os.environ.get("MYSQL_HOST", "127.0.0.1"),
                     port=int(os.environ.get("MYSQL_PORT", "3306")),
                     user=os.environ["MYSQL_USER"], password=os.environ["MYSQL_PASSWORD"],
                     database=os.environ.get("MYSQL_DATABASE", "coinbase")) as db, db.cursor() as c:
    c.execute("SELECT product_id, COUNT(*), MAX(time), "
              "(SELECT price FROM `order` o2 WHERE o2.product_id = o.product_id "
              " ORDER BY sequence DESC LIMIT 1) FROM `order` o GROUP BY product_id")
    rows = {p: f"{p}: {n} rows, last {price} at {t}" for p, n, t, price in c.fetchall()}
    c.execute("SELECT product_id, COUNT(*), MAX(trade_id) - MIN(trade_id) + 1 - COUNT(*), "
              "SUM(source = 'rest') FROM trade GROUP BY product_id")
    for p, n, missing, rest in c.fetchall():
        state = "complete" if not missing else f"{missing} missing"
        rows[p] = f"{rows.get(p, p)}; tape {n} trades, {state} ({rest} from REST)"
    print(" | ".join(rows.values()) or "no rows yet", flush=True)
SQL
  if [ -n "${DEMO_SECONDS:-}" ] && [ $(( $(date +%s) - started )) -ge "$DEMO_SECONDS" ]; then
    break
  fi
done

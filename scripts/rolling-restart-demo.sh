#!/usr/bin/env bash
# A rolling restart and a resize under load, as an operator would watch them: a local 3-node
# cluster (scripts/cluster.sh), emporium-load running the `mixed` scenario at a fixed arrival rate
# through every node address, each node restarted in turn, then the cluster scaled 3 -> 5 -> 3.
# At the end the load generator checks every acknowledged add and checkout against the API.
#
#   bash scripts/rolling-restart-demo.sh
#
# Writes target/rolling-restart-demo/: summary.json, timeline.csv, timeline.png (the restarts and
# resizes marked), events, load.log (progress and the table), cluster/ (node logs).
# Environment: RATE (arrivals per second, default 50), USERS (shoppers, default 64), WARMUP
# (seconds of load before the first restart, default 15), SETTLE (seconds between steps, default
# 5), SKIP_BUILD=1 (use the release binaries as they are). The cluster runs with a state dir,
# database (emporium_demo, dropped first) and ports (API 18380, peers 17370) of its own, so a
# cluster that scripts/cluster.sh started is left alone; it is taken down at exit.
# Bounded: the load stops by itself after 10 minutes at most, every cluster step has its own
# deadline, and traffic goes only to 127.0.0.11-15.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/rolling-restart-demo
RATE=${RATE:-50}
USERS=${USERS:-64}
WARMUP=${WARMUP:-15}
SETTLE=${SETTLE:-5}
export CLUSTER_DIR=$OUT/cluster CLUSTER_DB=emporium_demo
export CLUSTER_API_PORT=18380 CLUSTER_PEER_PORT=17370 CLUSTER_MAX_NODES=5
LOAD=target/release/emporium-load
load_pid=""

log() { echo "demo: $*"; }

cleanup() {
  if [ -n "$load_pid" ] && kill -0 "$load_pid" 2>/dev/null; then kill -TERM "$load_pid" || true; fi
  SKIP_BUILD=1 bash scripts/cluster.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

# An event for the plot: Unix time and a label.
event() {
  echo "$(date +%s.%N) $*" >>"$OUT/events"
  log "$*"
}

if [ -d "$CLUSTER_DIR" ]; then SKIP_BUILD=1 bash scripts/cluster.sh down >/dev/null 2>&1 || true; fi
rm -rf "$OUT"
mkdir -p "$OUT"
bash scripts/services.sh >/dev/null
if [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -x "$LOAD" ] || [ ! -x target/release/emporium ]; then
  cargo build --release -p emporium-http --bin emporium -p emporium-bench --bin emporium-load
fi
.venv-mongo/bin/python - "$CLUSTER_DB" <<'PY'
import sys, pymongo
pymongo.MongoClient("mongodb://127.0.0.1:27017/?directConnection=true",
                    serverSelectionTimeoutMS=5000).drop_database(sys.argv[1])
PY

SKIP_BUILD=1 bash scripts/cluster.sh up 3
targets=""
for i in 0 1 2 3 4; do targets+="${targets:+,}http://127.0.0.$((11 + i)):$CLUSTER_API_PORT"; done
: >"$OUT/events"

log "load: mixed at $RATE/s, $USERS shoppers, through $targets"
"$LOAD" --scenario mixed --targets "$targets" --rate "$RATE" --users "$USERS" --duration 600s \
  --jwt-secret "$(cat "$CLUSTER_DIR/jwt-secret")" --verify --events "$OUT/events" --out "$OUT" \
  >"$OUT/load.log" 2>&1 &
load_pid=$!

# The load's setup (products with stock, tokens) takes a moment; then a quiet stretch.
sleep "$WARMUP"
for i in 0 1 2; do
  event "restart node $i"
  SKIP_BUILD=1 bash scripts/cluster.sh restart "$i" >>"$OUT/cluster.log" 2>&1
  event "node $i back"
  sleep "$SETTLE"
done
event "scale 3 -> 5"
SKIP_BUILD=1 bash scripts/cluster.sh scale 5 >>"$OUT/cluster.log" 2>&1
sleep "$SETTLE"
event "scale 5 -> 3"
SKIP_BUILD=1 bash scripts/cluster.sh scale 3 >>"$OUT/cluster.log" 2>&1
sleep "$WARMUP"

log "stopping the load; verifying acknowledged writes"
kill -TERM "$load_pid"
status=0
wait "$load_pid" || status=$?
load_pid=""
sed -n '/^operation/,$p' "$OUT/load.log"
case "$status" in
  0) log "done: every acknowledged write found" ;;
  3) log "acknowledged writes missing or unreadable (see verify above)" ;;
  *) log "the load generator failed (exit $status): $OUT/load.log"; exit "$status" ;;
esac
log "plot: $OUT/timeline.png  summary: $OUT/summary.json  timeline: $OUT/timeline.csv"
exit "$status"

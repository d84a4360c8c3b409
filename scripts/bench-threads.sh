#!/usr/bin/env bash
# Where a durable add-to-cart's server CPU goes, per thread: for each build given, runs
# bench-http.sh against it (no floor) and, mid-run, samples for 4 s the CPU time of the HTTP
# worker and of the log writer, with the log appends and writes /metrics counted meanwhile.
# Prints writes/s, writes per append, writer CPU per append and per write, HTTP CPU per request.
#   bash scripts/bench-threads.sh target/release/emporium /tmp/other-build
# Bounded: one bench-http.sh run (DURATION in seconds, default 14s, at least 10s to hold the
# sample) per build, on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
[ $# -ge 1 ] || { sed -n '2,8p' "$0"; exit 2; }
DURATION=${DURATION:-14s}
[[ "$DURATION" =~ ^[0-9]+s$ ]] && [ "${DURATION%s}" -ge 10 ] ||
  { echo "DURATION must be 10s or more, in seconds (the sample needs 8 s of the run)" >&2; exit 2; }
URL=http://127.0.0.1:18080
metric() { curl -fs "$URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
for bin in "$@"; do
  log=$(mktemp)
  NO_FLOOR=1 DURATION=$DURATION SERVER_BIN="$bin" bash scripts/bench-http.sh > "$log" 2>&1 &
  bench=$!
  until grep -q '^registered' "$log"; do
    kill -0 "$bench" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 1
  done
  sleep 4
  pid=$(pgrep -f "^$bin serve" | head -1)
  writer=$(ps -L -p "$pid" -o tid=,comm= | awk '$2 ~ /^sled-grou/ {print $1; exit}')
  http=$(ps -L -p "$pid" -o tid=,comm= | awk '$2 ~ /^actix-rt/ {print $1; exit}')
  a0=$(metric emporium_store_log_appends_total) r0=$(metric emporium_store_writes_total)
  w0=$(bench_cpu_ticks "$pid" "$writer") h0=$(bench_cpu_ticks "$pid" "$http")
  sleep 4
  a1=$(metric emporium_store_log_appends_total) r1=$(metric emporium_store_writes_total)
  w1=$(bench_cpu_ticks "$pid" "$writer") h1=$(bench_cpu_ticks "$pid" "$http")
  wait "$bench" || true
  rm -f "$log"
  python3 - "$bin" "$a0" "$a1" "$r0" "$r1" "$w0" "$w1" "$h0" "$h1" "$(getconf CLK_TCK)" <<'PY'
import sys
b, *v = sys.argv[1:]
a0, a1, r0, r1, w0, w1, h0, h1, tck = map(float, v)
a, r = a1 - a0, r1 - r0
w, h = (w1 - w0) * 1e6 / tck, (h1 - h0) * 1e6 / tck
print(f"{b}: {r / 4:,.0f} writes/s, {r / a:.1f} writes per append, writer {w / a:.0f} us/append "
      f"= {w / r:.1f} us/write ({w / 4e4:.0f}% of a core), HTTP worker {h / r:.1f} us/request "
      f"({h / 4e4:.0f}% of a core)")
PY
done

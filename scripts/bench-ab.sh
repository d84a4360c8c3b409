#!/usr/bin/env bash
# A/B of server builds or settings on a noisy machine: the floor and every variant run side by
# side (started and given users once), and wrk runs interleave floor, A, B, ... for ROUNDS rounds,
# so a slow spell of the machine hits all of them alike. Each line is one round; compare within it.
#   bash scripts/bench-ab.sh ROUNDS DURATION "NAME|SERVER_BIN|ENV VARS|CONNS" ...
#   e.g. bash scripts/bench-ab.sh 6 5s "w1|target/release/emporium|EMPORIUM_WORKERS=1" \
#          "w2|target/release/emporium|EMPORIUM_WORKERS=2"
# CPU µs/req is the server process's user+system time over the run divided by its requests.
# A summary per variant (mean and median share of the floor, p99 range, CPU) ends the output.
# Bounded: ROUNDS x (1 + variants) wrk runs of DURATION on 127.0.0.1; everything stops at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
[ $# -ge 3 ] || { sed -n '2,9p' "$0"; exit 2; }
ROUNDS=$1 DURATION=$2
shift 2
CONNS=${CONNS:-64} USERS=${USERS:-256} SKUS=64 FLOOR=127.0.0.1:18190
bench_prepare

target/release/hello-floor "$FLOOR" & pids+=($!)
bench_products "$work/products.json" "$SKUS"
names=() port=18200
for spec in "$@"; do
  IFS='|' read -r name bin envs conns <<<"$spec"
  names+=("$name") port=$((port + 1))
  echo "$port" > "$work/$name.port"; echo "${conns:-$CONNS}" > "$work/$name.conns"
  # ENV VARS is a list of NAME=VALUE words. `env` execs the server, so $! is the server itself.
  setting=(EMPORIUM_DATA_DIR="$work/$name" EMPORIUM_DEMO_CATALOG=false RUST_LOG=warn
    EMPORIUM_JWT_SECRET=bench-secret-0123456789abcdef)
  # shellcheck disable=SC2086
  env "${setting[@]}" $envs "$bin" catalog import "$work/products.json" >/dev/null
  # shellcheck disable=SC2086
  env "${setting[@]}" $envs "$bin" serve --listen "127.0.0.1:$port" & pids+=($!)
  echo $! > "$work/$name.pid"
  bench_wait "http://127.0.0.1:$port/readyz"
  bench_register "http://127.0.0.1:$port" "$USERS" > "$work/$name.tokens"
  bench_lua "$work/$name.tokens" "$SKUS" > "$work/$name.lua"
done
bench_wait "http://$FLOOR/"

for r in $(seq 1 "$ROUNDS"); do
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency "http://$FLOOR/" > "$work/floor.txt"
  read -r f _ _ < <(bench_read "$work/floor.txt")
  line="round $r | floor $f"
  for name in "${names[@]}"; do
    pid=$(cat "$work/$name.pid") c0=$(bench_cpu_ticks "$pid")
    wrk -t2 -c"$(cat "$work/$name.conns")" -d"$DURATION" --latency -s "$work/$name.lua" \
      "http://127.0.0.1:$(cat "$work/$name.port")/" > "$work/s.txt"
    c1=$(bench_cpu_ticks "$pid") n=$(grep -oP '\d+(?= requests in)' "$work/s.txt")
    read -r s p99 bad < <(bench_read "$work/s.txt")
    cpu=$(python3 -c "print(f'{($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / $n:.1f}')")
    echo "$name $s $f $p99 $cpu" >> "$work/rounds"
    line="$line | $name $s ($(python3 -c "print(f'{100 * $s / $f:.1f}% of floor, p99 $p99 ms, $cpu CPU us/req, non-2xx $bad')"))"
  done
  echo "$line"
done
# Per variant over all rounds: the share of its round's floor (mean and median), the p99 range
# and the mean CPU per request.
python3 - "$work/rounds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, s, f, p99, cpu = line.split()
    rows.setdefault(name, []).append((100 * float(s) / float(f), float(p99), float(cpu)))
for name, r in rows.items():
    share = [x[0] for x in r]
    print(f"summary {name}: {statistics.mean(share):.1f}% of the floor (median "
          f"{statistics.median(share):.1f}%, {min(share):.1f}-{max(share):.1f}%), p99 "
          f"{min(x[1] for x in r):.2f}-{max(x[1] for x in r):.2f} ms, "
          f"{statistics.mean(x[2] for x in r):.1f} CPU us/req, {len(r)} rounds")
PY

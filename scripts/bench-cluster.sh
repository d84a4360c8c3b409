#!/usr/bin/env bash
# Cluster benchmarks on this machine (BENCHMARKS.md, "The cluster"). Nodes run as
# scripts/cluster.sh runs them (node I on 127.0.0.(11+I), ordinal I) but on ports of their own
# (API 18080, peers 17070) and a database of their own on the SecantusDB of scripts/services.sh, so
# a cluster started by cluster.sh is left alone. Users are minted tokens (HS256 with the run's JWT
# secret) for b<N>@bench.example: registration hashes a password per user (argon2), which would
# dominate the setup.
#
#   bash scripts/bench-cluster.sh traffic [ROUNDS] [DURATION]
#       3 nodes, plus 1 single node (no cluster settings) on another database of the same store.
#       (a) add-to-cart and GET /api/cart sent to each user's owner vs to a node that forwards it,
#           the same users, interleaved rounds;
#       (b) the 3-node cluster (connections spread over the nodes) vs the single node, interleaved.
#   bash scripts/bench-cluster.sh handoff [CARTS] [REPEATS]
#       2 nodes. REPEATS times, a cycle with no carts and then one with CARTS: activate CARTS cart
#       actors on node 1, SIGTERM it (its handoff to node 0 is read from its log), activate the same
#       carts on node 0 (their owner now), start node 1 again (node 0's handoff back is read from
#       its log and /admin/cluster).
#
# Environment: NODES (traffic, default 3), USERS (traffic, default 512), CONNS (owner vs forwarded,
# default 8), SPREAD_CONNS (cluster vs single, default 24), ACTIVATE (handoff: read, the default,
# activates each cart with GET /api/cart; add puts one item in each, a store write), KEEP=1 keeps
# the work directory (logs) under target/bench-cluster/, SKIP_BUILD=1 uses the release binaries
# as they are.
# Bounded: every wait has a deadline, every load runs for a fixed time or a fixed count, all on
# 127.0.0.0/8; every process started here is stopped at exit, and the run's databases dropped.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-}
case "$MODE" in
  traffic | handoff) shift ;;
  *) sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

BIN=target/release/emporium
BENCH=target/release/cluster-bench
API_PORT=18080 PEER_PORT=17070 SHARDS=1024 SKUS=64
RUN_ID="$(date -u +%H%M%S)_$$"
STORE_BASE="mongodb://127.0.0.1:27017"
ADMIN=admin@bench.example
GRACE_SECS=${GRACE_SECS:-1}
NODE_LOG=info
mkdir -p target/bench-cluster
work=$(mktemp -d "target/bench-cluster/$MODE.XXXX")
JWT_SECRET=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
CLUSTER_SECRET=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
dbs=()
declare -A node_pid=()

log() { echo "bench-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
ip_of() { echo "127.0.0.$((11 + $1))"; }
api_of() { echo "$(ip_of "$1"):$API_PORT"; }

cleanup() {
  local p
  for p in "${node_pid[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${node_pid[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for p in "${node_pid[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ "${#dbs[@]}" -gt 0 ]; then
    .venv-mongo/bin/python - "${dbs[@]}" <<'PY' || true
import sys, pymongo
c = pymongo.MongoClient("mongodb://127.0.0.1:27017/?directConnection=true", serverSelectionTimeoutMS=5000)
for db in sys.argv[1:]:
    c.drop_database(db)
PY
  fi
  if [ "${KEEP:-0}" = 1 ]; then log "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

prepare() {
  bash scripts/services.sh >/dev/null
  command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
  if [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -x "$BIN" ] || [ ! -x "$BENCH" ]; then
    cargo build --release -q -p emporium-http --bin emporium
    cargo build --release -q -p emporium-bench --bin cluster-bench
  fi
  # Copies: the shared target dir may be rebuilt by someone else during the run.
  cp target/release/emporium "$work/emporium"
  cp target/release/cluster-bench "$work/cluster-bench"
  BIN=$work/emporium BENCH=$work/cluster-bench
  log "emporium built $(date -u -r target/release/emporium +%FT%TZ) (HEAD now $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- engine http cluster persistence || echo ', with uncommitted changes'))"
  log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S) UTC"
}

# mint FILE COUNT: COUNT users `email token` (b0..), and the admin's token in $work/admin.token.
mint() {
  python3 - "$JWT_SECRET" "$1" "$2" "$ADMIN" "$work/admin.token" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret, out, n, admin, admin_out = sys.argv[1].encode(), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
now = int(time.time())
def token(email, role):
    body = b64(json.dumps({"sub": email, "email": email, "username": email.split("@")[0], "role": role, "iat": now, "exp": now + 86400}).encode())
    msg = head + b"." + body
    return (msg + b"." + b64(hmac.new(secret, msg, hashlib.sha256).digest())).decode()
with open(out, "w") as f:
    for i in range(n):
        f.write(f"b{i}@bench.example {token(f'b{i}@bench.example', 'customer')}\n")
open(admin_out, "w").write(token(admin, "admin"))
PY
}

products() {
  python3 - "$work/products.json" "$SKUS" <<'PY'
import json, sys
n = int(sys.argv[2])
json.dump([{"name": f"Bench product {i}", "sku": f"BENCH-{i:03}", "price": 1 + i / 100,
            "brand": "Bench", "category": "Bench"} for i in range(n)], open(sys.argv[1], "w"))
PY
}

# node_env DB: the settings every node of this run shares (nothing else of the caller's EMPORIUM_*).
common_env() {
  echo "EMPORIUM_STORE=$STORE_BASE/$1?directConnection=true EMPORIUM_JWT_SECRET=$JWT_SECRET \
EMPORIUM_ADMIN_EMAILS=$ADMIN EMPORIUM_DEMO_CATALOG=false EMPORIUM_SHARDS=$SHARDS \
EMPORIUM_MAX_ACTIVE_ACTORS=400000 EMPORIUM_SHUTDOWN_GRACE_SECS=$GRACE_SECS RUST_LOG=$NODE_LOG NO_COLOR=1"
}

# new_db NAME: a fresh database with the bench catalog imported.
new_db() {
  local db="bench_${1}_$RUN_ID"
  dbs+=("$db")
  # shellcheck disable=SC2046
  env -i PATH="$PATH" HOME="$HOME" $(common_env "$db") EMPORIUM_DATA_DIR="$work/import-$1" \
    "$BIN" catalog import "$work/products.json" >/dev/null
  echo "$db"
}

# start_node I COUNT DB: cluster node I of COUNT (ordinals 0..COUNT-1 listed as peers).
start_node() {
  local i=$1 n=$2 db=$3 peers="" k
  for ((k = 0; k < n; k++)); do peers+="${peers:+,}$k=$(ip_of "$k"):$PEER_PORT"; done
  mkdir -p "$work/node-$i"
  # shellcheck disable=SC2046
  env -i PATH="$PATH" HOME="$HOME" $(common_env "$db") EMPORIUM_DATA_DIR="$work/node-$i" \
    EMPORIUM_LISTEN="$(api_of "$i")" EMPORIUM_NODE_ORDINAL="$i" EMPORIUM_PEERS="$peers" \
    EMPORIUM_PEER_LISTEN="$(ip_of "$i"):$PEER_PORT" EMPORIUM_CLUSTER_SECRET="$CLUSTER_SECRET" \
    "$BIN" serve >>"$work/node-$i.log" 2>&1 &
  node_pid[$i]=$!
}

# start_single DB: one node without cluster settings on 127.0.0.10.
start_single() {
  mkdir -p "$work/single"
  # shellcheck disable=SC2046
  env -i PATH="$PATH" HOME="$HOME" $(common_env "$1") EMPORIUM_DATA_DIR="$work/single" \
    EMPORIUM_LISTEN="127.0.0.10:$API_PORT" "$BIN" serve >>"$work/single.log" 2>&1 &
  node_pid[single]=$!
}

wait_ready() {
  local addr=$1 deadline=$((SECONDS + 90))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$addr/readyz")" = 200 ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "$addr not ready after 90 s (logs: $work)"
    sleep 0.3
  done
}

cluster_json() {
  curl -fs --max-time 10 -H "Authorization: Bearer $(cat "$work/admin.token")" \
    "http://$(api_of "$1")/admin/cluster"
}

# settled OUT ORD...: every listed node's view gives every shard an owner among the listed nodes,
# each of them owns some, nothing is in motion, and all views agree; the owners go to OUT.
settled() {
  local out=$1 i
  shift
  for i in "$@"; do cluster_json "$i" >"$work/view-$i.json" || return 1; done
  python3 - "$out" "$work" "$@" <<'PY'
import json, sys
out, work, nodes = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3:]]
views = [json.load(open(f"{work}/view-{i}.json")) for i in nodes]
owners = [[s["owner"] for s in v["shards"]] for v in views]
ok = all(o == owners[0] for o in owners) and all(v["inMotion"] == 0 for v in views)
ok = ok and set(owners[0]) == set(nodes)
if not ok:
    sys.exit(1)
open(out, "w").write("".join(f"{s} {o}\n" for s, o in enumerate(owners[0])))
PY
}

wait_settled() {
  local out=$1 deadline=$((SECONDS + 90))
  shift
  until settled "$out" "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || die "the cluster of nodes $* did not settle within 90 s (logs: $work)"
    sleep 0.5
  done
}

handoff_lines() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep 'handed off shards' || true; }

cart_actors() {
  curl -fs --max-time 10 "http://$1/metrics" |
    sed -n 's/^emporium_actors_active{kind="cart"} \([0-9]*\).*/\1/p'
}

cmd_traffic() {
  local rounds=${1:-6} duration=${2:-5} n=${NODES:-3} i db sdb pids="" spread=""
  prepare
  products
  mint "$work/users" "${USERS:-512}"
  db=$(new_db cluster)
  sdb=$(new_db single)
  start_node 0 "$n" "$db"
  wait_ready "$(api_of 0)"
  for ((i = 1; i < n; i++)); do start_node "$i" "$n" "$db"; done
  for ((i = 1; i < n; i++)); do wait_ready "$(api_of "$i")"; done
  start_single "$sdb"
  wait_ready "127.0.0.10:$API_PORT"
  wait_settled "$work/owners" $(seq 0 $((n - 1)))
  log "$n nodes settled; shards per node: $(awk '{print $2}' "$work/owners" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
  local nodes=()
  for ((i = 0; i < n; i++)); do
    nodes+=(--node "$i=$(api_of "$i")")
    pids+="${pids:+,}${node_pid[$i]}"
    spread+="${spread:+,}$(api_of "$i")"
  done
  local store_pid
  store_pid=$(ss -ltnpH 'sport = :27017' | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
  local common=(--users "$work/users" --owners "$work/owners" --shards "$SHARDS" "${nodes[@]}"
    --skus "$SKUS" --rounds "$rounds" --duration "$duration" --clk-tck "$(getconf CLK_TCK)"
    ${store_pid:+--store-pid "$store_pid"})
  echo "== owner vs forwarded: $n nodes, ${USERS:-512} users, ${CONNS:-8} connections, $rounds rounds of ${duration}s =="
  for req in add read; do
    "$BENCH" run "${common[@]}" --request "$req" --conns "${CONNS:-8}" \
      --variant "owner|owner|$pids" --variant "forwarded|forwarded|$pids"
  done
  echo "== cluster of $n (connections spread over the nodes) vs 1 node, same store: ${SPREAD_CONNS:-24} connections =="
  for req in add read; do
    "$BENCH" run "${common[@]}" --request "$req" --conns "${SPREAD_CONNS:-24}" \
      --variant "single|127.0.0.10:$API_PORT|${node_pid[single]}" --variant "cluster$n|$spread|$pids"
  done
  for ((i = 0; i < n; i++)); do
    echo "node $i: $(cluster_json "$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)["forwarded"])')"
  done
  grep -hiE ' (WARN|ERROR) ' "$work"/node-*.log "$work/single.log" | head -n 20 || true
}

# cycle COUNT: activate COUNT carts of node 1 (none when 0) on node 1, SIGTERM it, activate them on
# node 0 (their owner now), start node 1 again and wait until both nodes agree it has its shards.
cycle() {
  local count=$1 t0 t1 before
  local pick=(--users "$work/users" --owners "$work/owners" --shards "$SHARDS" --home 1
    --count "$count" --conns 16 --request "${ACTIVATE:-read}")
  echo "-- $count carts"
  if [ "$count" -gt 0 ]; then "$BENCH" activate "${pick[@]}" --addr "$(api_of 1)"; fi
  echo "cart actors active: node 1 $(cart_actors "$(api_of 1)") (RSS $(($(ps -o rss= -p "${node_pid[1]}") / 1024)) MiB), node 0 $(cart_actors "$(api_of 0)")"
  before=$(handoff_lines "$work/node-1.log" | wc -l)
  t0=$(date +%s%N)
  kill -TERM "${node_pid[1]}"
  local deadline=$((SECONDS + 120))
  while kill -0 "${node_pid[1]}" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "node 1 still running 120 s after SIGTERM (log: $work/node-1.log)"
    sleep 0.05
  done
  t1=$(date +%s%N)
  echo "node 1 away: exited $(((t1 - t0) / 1000000)) ms after SIGTERM (grace ${GRACE_SECS}s included)"
  handoff_lines "$work/node-1.log" | tail -n +$((before + 1)) | sed "s/^/  away $count: node 1 log: /"
  wait_settled "$work/owners-0" 0
  if [ "$count" -gt 0 ]; then "$BENCH" activate "${pick[@]}" --addr "$(api_of 0)"; fi
  echo "cart actors active: node 0 $(cart_actors "$(api_of 0)")"
  before=$(handoff_lines "$work/node-0.log" | wc -l)
  t0=$(date +%s%N)
  start_node 1 2 "$DB"
  wait_ready "$(api_of 1)"
  wait_settled "$work/owners-back" 0 1
  t1=$(date +%s%N)
  cmp -s "$work/owners" "$work/owners-back" || log "node 1 came back with other shards than it had"
  echo "node 1 back: ready and settled $(((t1 - t0) / 1000000)) ms after its start"
  handoff_lines "$work/node-0.log" | tail -n +$((before + 1)) | sed "s/^/  back $count: node 0 log: /"
  echo "node 0 /admin/cluster handoffs, last: $(cluster_json 0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["handoffs"][-1:])')"
}

cmd_handoff() {
  local carts=${1:-20000} repeats=${2:-3} r
  # The passivation's debug line splits each handoff into (hold, drain, passivate) and the
  # ownership write.
  NODE_LOG=info,emporium_http::cluster=debug
  prepare
  products
  # About half the users are placed on node 1: enough for CARTS of them.
  mint "$work/users" $((carts * 21 / 10 + 100))
  DB=$(new_db handoff)
  start_node 0 2 "$DB"
  wait_ready "$(api_of 0)"
  start_node 1 2 "$DB"
  wait_ready "$(api_of 1)"
  wait_settled "$work/owners" 0 1
  echo "== handoff: 2 nodes, node 1 owns $(awk '$2 == 1' "$work/owners" | wc -l) of $SHARDS shards; $repeats repeats of a cycle with no carts then one with $carts =="
  for r in $(seq 1 "$repeats"); do
    echo "-- repeat $r"
    cycle 0
    cycle "$carts"
  done
  echo "== handoffs: total (duration_ms), of which the ownership write (from the passivation's log line to the end) =="
  for i in 0 1; do
    sed 's/\x1b\[[0-9;]*m//g' "$work/node-$i.log" | python3 -c '
import re, sys
from datetime import datetime
node, last = sys.argv[1], None
for line in sys.stdin:
    t = re.match(r"(\S+Z)", line)
    if not t:
        continue
    at = datetime.fromisoformat(t.group(1).replace("Z", "+00:00"))
    if "passivated the actors of departing shards" in line:
        last = (at, re.search(r"actors=(\d+)", line).group(1))
    elif "handed off shards" in line:
        d = int(re.search(r"duration_ms=(\d+)", line).group(1))
        shards = re.search(r" shards=(\d+)", line).group(1)
        write = f"{(at - last[0]).total_seconds() * 1000:.0f} ms write, {last[1]} actors passivated" if last else "?"
        print(f"node {node} {t.group(1)} {shards} shards: {d} ms ({write})")
        last = None
' "$i"
  done
  grep -hiE ' (WARN|ERROR) ' "$work"/node-*.log | head -n 20 || true
}

"cmd_$MODE" "$@"

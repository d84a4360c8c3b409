#!/usr/bin/env bash
# A local Emporium cluster on this machine, as a StatefulSet would run it: node I is ordinal I,
# its API on 127.0.0.(11+I):8080 and its peer port on 127.0.0.(11+I):7070, every node on one
# SecantusDB database (emporium_local, via scripts/services.sh) and the machine's Redis and RabbitMQ.
#
#   bash scripts/cluster.sh up [N]        build the release binary, start nodes 0..N-1 (default 3), wait until ready
#   bash scripts/cluster.sh restart I     SIGTERM node I (its shards go to stand-ins), wait for exit, start it, wait ready
#   bash scripts/cluster.sh scale N       start the missing ordinals below N / SIGTERM ordinals >= N, highest first
#   bash scripts/cluster.sh status [--json]   `emporium cluster status` against the first running node (admin token)
#   bash scripts/cluster.sh down          SIGTERM every node, wait for them to exit
#
# State lives in target/cluster/: the generated JWT secret, cluster secret and admin password
# (reused by every restart, so tokens stay valid), the peer list, each node's pid, log and data dir.
# Environment: SKIP_BUILD=1 skips the cargo build of `up`; CLUSTER_DIR puts the state elsewhere
# (default target/cluster: a second cluster beside the first needs its own, and its own ports).
# These apply only while the state dir is fresh (then they are kept there): CLUSTER_SHARDS
# (default 1024), CLUSTER_MAX_NODES (default 8: the ordinals EMPORIUM_PEERS lists),
# CLUSTER_API_PORT (8080), CLUSTER_PEER_PORT (7070) and CLUSTER_DB (the database, emporium_local).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${CLUSTER_DIR:-target/cluster}
BIN=target/release/emporium
REDIS_URL="redis://127.0.0.1:6379/"
AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
ADMIN_EMAIL=admin@example.com
GRACE_SECS=2          # on SIGTERM, /readyz answers 503 this long before the node hands off
READY_TIMEOUT=90      # seconds a node may take to report ready
STOP_TIMEOUT=60       # seconds a node may take to exit after SIGTERM (grace + handoff)
SETTLE_TIMEOUT=60     # seconds the shards may take to reach their owners after a change

die() { echo "cluster: $*" >&2; exit 1; }
log() { echo "cluster: $*"; }

ip_of() { echo "127.0.0.$((11 + $1))"; }
pid_file() { echo "$DIR/node-$1.pid"; }
log_file() { echo "$DIR/node-$1.log"; }

is_count() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 200 ]; }
is_ordinal() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -le 199 ]; }

# A secret kept in $DIR: generated once, then reused.
secret() {
  local file="$DIR/$1"
  if [ ! -s "$file" ]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# Settings fixed when $DIR is first used: changing the shard count of a store with data, or a
# peer list the running nodes do not share, would break the cluster.
setting() {
  local file="$DIR/$1" default="$2"
  [ -s "$file" ] || echo "$default" >"$file"
  cat "$file"
}

max_nodes() { setting max-nodes "${CLUSTER_MAX_NODES:-8}"; }

# Every node gets the same static list, the whole range 0..max-1: an ordinal listed but not
# running is simply absent (its shards are served by the live members), and a node started later
# by `scale` is already known to the others.
peers() {
  local max list="" i
  max=$(max_nodes)
  for ((i = 0; i < max; i++)); do
    list+="${list:+,}$i=$(ip_of "$i"):$PEER_PORT"
  done
  echo "$list"
}

# The pid of node I if it is running (and is an emporium process), else nothing.
running_pid() {
  local file pid
  file=$(pid_file "$1")
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q emporium; then
    echo "$pid"
  fi
}

running_ordinals() {
  local f i
  for f in "$DIR"/node-*.pid; do
    [ -e "$f" ] || continue
    i=${f##*/node-}
    i=${i%.pid}
    if [ -n "$(running_pid "$i")" ]; then echo "$i"; fi
  done | sort -n
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

readyz() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(ip_of "$1"):$API_PORT/readyz" || true
}

start_node() {
  local i=$1 ip data
  ip=$(ip_of "$i")
  [ -z "$(running_pid "$i")" ] || { log "node $i is already running (pid $(running_pid "$i"))"; return 0; }
  [ -x "$BIN" ] || die "$BIN is missing: run 'bash scripts/cluster.sh up' (it builds it)"
  local port
  for port in "$API_PORT" "$PEER_PORT"; do
    if port_open "$ip" "$port"; then
      die "$ip:$port is taken by a process this script did not start (ss -ltnp 'sport = :$port'); \
stop it, or use other ports: 'down', remove $DIR, then CLUSTER_API_PORT=… CLUSTER_PEER_PORT=… up"
    fi
  done
  data="$DIR/node-$i"
  mkdir -p "$data"
  (
    # Only the settings below: a caller's own EMPORIUM_* must not leak into the nodes.
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^EMPORIUM_' || true)
    export EMPORIUM_LISTEN="$ip:$API_PORT"
    export EMPORIUM_DATA_DIR="$data"
    export EMPORIUM_STORE="$STORE"
    export EMPORIUM_REDIS_URL="$REDIS_URL"
    export EMPORIUM_AMQP_URL="$AMQP_URL"
    export EMPORIUM_JWT_SECRET="$JWT_SECRET"
    export EMPORIUM_ADMIN_EMAILS="$ADMIN_EMAIL"
    export EMPORIUM_SHARDS="$SHARDS"
    export EMPORIUM_NODE_ORDINAL="$i"
    export EMPORIUM_PEERS="$PEERS"
    export EMPORIUM_PEER_LISTEN="$ip:$PEER_PORT"
    export EMPORIUM_CLUSTER_SECRET="$CLUSTER_SECRET"
    export EMPORIUM_SHUTDOWN_GRACE_SECS="$GRACE_SECS"
    export RUST_LOG="${RUST_LOG:-info}"
    echo "=== $(date -u +%FT%TZ) start node $i ===" >>"$(log_file "$i")"
    # A session of its own (a Ctrl-C here does not reach it); the pid written is the node's.
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid bash -c 'echo $$ >"$1"; exec "$2" serve' _ "$(pid_file "$i")" "$BIN" \
      </dev/null >>"$(log_file "$i")" 2>&1 &
  )
  local waited=0
  until [ -s "$(pid_file "$i")" ] && [ -n "$(running_pid "$i")" ]; do
    sleep 0.1
    waited=$((waited + 1))
    if [ "$waited" -ge 50 ]; then
      tail -n 5 "$(log_file "$i")" >&2 || true
      die "node $i did not start (log above: $(log_file "$i"))"
    fi
  done
  log "node $i started on $ip:$API_PORT (pid $(running_pid "$i"), log $(log_file "$i"))"
}

wait_ready() {
  local i=$1 deadline=$((SECONDS + READY_TIMEOUT)) code
  while :; do
    if [ -z "$(running_pid "$i")" ]; then
      tail -n 20 "$(log_file "$i")" >&2 || true
      die "node $i exited before it was ready (log above: $(log_file "$i"))"
    fi
    code=$(readyz "$i")
    if [ "$code" = 200 ]; then
      log "node $i ready ($(ip_of "$i"):$API_PORT/readyz 200)"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$(log_file "$i")" >&2 || true
      die "node $i not ready after ${READY_TIMEOUT}s (last /readyz: $code)"
    fi
    sleep 0.5
  done
}

# Ready is not settled: a node is ready once it knows every shard's owner, before the others have
# handed it its share. Waits (bounded) until, on every running node's /metrics, the serving shards
# add up to all of them and none is unknown, unowned or draining.
wait_settled() {
  local deadline=$((SECONDS + SETTLE_TIMEOUT)) i total moving summary serving unsettled
  while :; do
    total=0 moving=0 summary=""
    for i in $(running_ordinals); do
      read -r serving unsettled < <(curl -s --max-time 2 "http://$(ip_of "$i"):$API_PORT/metrics" |
        awk -F'[{}" ]+' '/^emporium_cluster_shards\{/ {
          if ($3 == "serving") s = $NF; else if ($3 != "remote") u += $NF }
          END { print s + 0, u + 0 }')
      total=$((total + serving)) moving=$((moving + unsettled))
      summary+="${summary:+, }$i:$serving"
    done
    if [ "$total" -eq "$SHARDS" ] && [ "$moving" -eq 0 ]; then
      log "settled: shards served per node $summary"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "cluster: not settled after ${SETTLE_TIMEOUT}s (serving per node $summary; $moving in motion)" >&2
      return 0
    fi
    sleep 0.5
  done
}

# SIGTERM node I and wait until it has exited (it hands its shards off first).
stop_node() {
  local i=$1 pid deadline started=$SECONDS
  pid=$(running_pid "$i")
  if [ -z "$pid" ]; then
    log "node $i is not running"
    return 0
  fi
  kill -TERM "$pid"
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "cluster: node $i (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$(pid_file "$i")"
  log "node $i stopped (pid $pid, $((SECONDS - started))s after SIGTERM)"
}

build() {
  if [ "${SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ]; then
    return 0
  fi
  log "building $BIN"
  cargo build --release -p emporium-http --bin emporium
}

init() {
  mkdir -p "$DIR"
  JWT_SECRET=$(secret jwt-secret)
  CLUSTER_SECRET=$(secret cluster-secret)
  SHARDS=$(setting shards "${CLUSTER_SHARDS:-1024}")
  API_PORT=$(setting api-port "${CLUSTER_API_PORT:-8080}")
  PEER_PORT=$(setting peer-port "${CLUSTER_PEER_PORT:-7070}")
  DB=$(setting db "${CLUSTER_DB:-emporium_local}")
  STORE="mongodb://127.0.0.1:27017/${DB}?directConnection=true"
  PEERS=$(peers)
}

check_count() {
  local n=$1 max
  is_count "$n" || die "expected a node count from 1, got '$n'"
  max=$(max_nodes)
  [ "$n" -le "$max" ] || die "at most $max nodes: EMPORIUM_PEERS lists ordinals 0..$((max - 1)) \
on every node; run 'down', remove $DIR/max-nodes and 'up $n' (or set CLUSTER_MAX_NODES)"
}

cmd_up() {
  local n=${1:-3} i
  init
  check_count "$n"
  bash scripts/services.sh
  build
  # As a StatefulSet with OrderedReady: ordinal 0 first (it loads the demo catalog into an empty
  # store), then the others together.
  start_node 0
  wait_ready 0
  for ((i = 1; i < n; i++)); do start_node "$i"; done
  for ((i = 1; i < n; i++)); do wait_ready "$i"; done
  wait_settled
  log "$n node(s) up: http://$(ip_of 0):$API_PORT .. http://$(ip_of $((n - 1))):$API_PORT"
}

cmd_restart() {
  local i=${1:-}
  is_ordinal "$i" || die "usage: cluster.sh restart ORDINAL"
  init
  [ "$i" -lt "$(max_nodes)" ] || die "ordinal $i is not in EMPORIUM_PEERS (0..$(($(max_nodes) - 1)))"
  stop_node "$i"
  start_node "$i"
  wait_ready "$i"
  wait_settled
}

cmd_scale() {
  local n=${1:-} i
  init
  check_count "$n"
  # Scale down first, highest ordinal first (as a StatefulSet does), then up.
  while read -r i; do
    if [ "$i" -ge "$n" ]; then stop_node "$i"; fi
  done < <(running_ordinals | sort -rn)
  local started=()
  for ((i = 0; i < n; i++)); do
    if [ -z "$(running_pid "$i")" ]; then
      start_node "$i"
      started+=("$i")
    fi
  done
  for i in "${started[@]}"; do wait_ready "$i"; done
  wait_settled
  log "scaled to $n node(s)"
}

# An admin token: registers admin@example.com on the node (or logs in when it exists).
admin_token() {
  local i=$1 base password body token
  base="http://$(ip_of "$i"):$API_PORT"
  password=$(secret admin-password)
  body=$(printf '{"username":"admin","email":"%s","password":"%s"}' "$ADMIN_EMAIL" "$password")
  token=$(curl -s --max-time 10 -X POST "$base/api/users/register" \
    -H 'content-type: application/json' -d "$body" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  if [ -z "$token" ]; then
    token=$(curl -s --max-time 10 -X POST "$base/api/users/login" -H 'content-type: application/json' \
      -d "$(printf '{"email":"%s","password":"%s"}' "$ADMIN_EMAIL" "$password")" |
      sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  fi
  [ -n "$token" ] || die "could not register or log in $ADMIN_EMAIL on $base"
  echo "$token"
}

cmd_status() {
  local i token
  init
  i=$(running_ordinals | head -n 1)
  [ -n "$i" ] || die "no node is running (bash scripts/cluster.sh up)"
  [ -x "$BIN" ] || die "$BIN is missing"
  token=$(admin_token "$i")
  echo "running: $(running_ordinals | tr '\n' ' ')"
  EMPORIUM_ADMIN_TOKEN="$token" "$BIN" cluster status --url "http://$(ip_of "$i"):$API_PORT" "$@"
}

cmd_down() {
  local i
  mkdir -p "$DIR"
  # Highest ordinal first; each waits for its handoff to the ones still running.
  while read -r i; do stop_node "$i"; done < <(running_ordinals | sort -rn)
  log "down"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  scale) shift; cmd_scale "$@" ;;
  status) shift; cmd_status "$@" ;;
  down) shift; cmd_down ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
    ;;
esac

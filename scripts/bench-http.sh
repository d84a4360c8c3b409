#!/usr/bin/env bash
# Add-to-cart over HTTP (JWT verification + JSON + durable sled write, group commit) against the
# actix-web hello-world floor, both measured with wrk in this one run on this machine.
# Bounded: each wrk run lasts DURATION; everything targets 127.0.0.1 and is stopped at exit.
#   DURATION=15s CONNS=128 THREADS=2 USERS=256 bash scripts/bench-http.sh
# SERVER_BIN=path runs another build of the server (an A/B comparison against this tree's).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-128}
THREADS=${THREADS:-2}
USERS=${USERS:-256}
SKUS=64
FLOOR=127.0.0.1:18090
STORE=127.0.0.1:18080
BIN=${SERVER_BIN:-target/release/emporium}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
cargo build --release -q -p emporium-http -p emporium-bench

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

wait_ready() { # url
  for _ in $(seq 1 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; exit 1
}

echo "== floor: actix-web hello world"
target/release/hello-floor "$FLOOR" & pids+=($!)
wait_ready "http://$FLOOR/"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://$FLOOR/" | tee "$work/floor.txt"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

echo "== store: POST /api/cart/items, $USERS users x $SKUS untracked SKUs, durable on sled"
python3 - "$work/products.json" "$SKUS" <<'PY'
import json, sys
n = int(sys.argv[2])
json.dump([{"name": f"Bench product {i}", "sku": f"BENCH-{i:03}", "price": 1 + i / 100,
            "brand": "Bench", "category": "Bench"} for i in range(n)], open(sys.argv[1], "w"))
PY
export EMPORIUM_DATA_DIR="$work/data" EMPORIUM_DEMO_CATALOG=false RUST_LOG=warn
export EMPORIUM_JWT_SECRET=bench-secret-0123456789abcdef
"$BIN" catalog import "$work/products.json"
"$BIN" serve --listen "$STORE" & pids+=($!)
wait_ready "http://$STORE/readyz"
seq 1 "$USERS" | xargs -P 4 -I{} curl -fs -X POST "http://$STORE/api/users/register" \
  -H 'content-type: application/json' \
  -d '{"username":"u{}","email":"u{}@bench.example","password":"bench-password"}' \
  | python3 -c 'import sys,json; print("\n".join(json.loads(l)["token"] for l in sys.stdin.read().replace("}{","}\n{").splitlines()))' \
  > "$work/tokens"
python3 - "$work/tokens" "$SKUS" > "$work/add.lua" <<'PY'
import sys
tokens = open(sys.argv[1]).read().split()
print("local tokens = {" + ",".join(f'"{t}"' for t in tokens) + "}")
print("local skus = {" + ",".join(f'"BENCH-{i:03}"' for i in range(int(sys.argv[2]))) + "}")
print('''-- Every request is formatted once, in init, so wrk spends its CPU (shared with the server on
-- this machine) on sending rather than on building strings; the floor's requests cost it nothing either.
-- Each wrk thread starts at its own offset, so threads do not walk the users in lockstep.
local threads = 0
function setup(thread) thread:set("offset", threads * 7919); threads = threads + 1 end
function init(args)
  reqs = {}
  -- each user's cart holds at most four lines, like a real cart
  for n = 0, 4 * #tokens - 1 do
    local i = offset + n
    local u = i % #tokens
    local s = skus[((u + math.floor(i / #tokens) % 4) % #skus) + 1]
    reqs[n + 1] = wrk.format("POST", "/api/cart/items",
      {["Authorization"] = "Bearer " .. tokens[u + 1], ["Content-Type"] = "application/json"},
      '{"productSku":"' .. s .. '","quantity":1}')
  end
  k = 0
end
request = function()
  k = k % #reqs + 1
  return reqs[k]
end''')
PY
echo "registered $(wc -l < "$work/tokens") users"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$work/add.lua" "http://$STORE/" | tee "$work/store.txt"
curl -fs "http://$STORE/metrics" | grep -E '^emporium_http_requests_total.*cart/items|^emporium_store_' || true

python3 - "$work/floor.txt" "$work/store.txt" <<'PY'
import re, sys
def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", t)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    return rps, p99, int(bad.group(1)) if bad else 0
f, s = parse(sys.argv[1]), parse(sys.argv[2])
print(f"\nsummary: floor {f[0]:,.0f} req/s (p99 {f[1]:.2f} ms) | add-to-cart {s[0]:,.0f} req/s "
      f"(p99 {s[1]:.2f} ms, non-2xx {s[2]}) | ratio {100 * s[0] / f[0]:.1f}% of the floor")
PY

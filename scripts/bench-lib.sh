# Shared by the HTTP benchmarks (bench-http.sh, bench-ab.sh): the bench catalog, registered users,
# the wrk script and the reading of wrk's output. Sourced, not run.

# bench_prepare: wrk and curl installed, the release build current, $work a fresh directory, and
# every process in $pids stopped (and $work removed) when the script exits.
bench_prepare() {
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
  command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
  cargo build --release -q -p emporium-http -p emporium-bench
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# bench_products FILE N: N untracked products BENCH-000.. as a catalog import file.
bench_products() {
  python3 - "$1" "$2" <<'PY'
import json, sys
n = int(sys.argv[2])
json.dump([{"name": f"Bench product {i}", "sku": f"BENCH-{i:03}", "price": 1 + i / 100,
            "brand": "Bench", "category": "Bench"} for i in range(n)], open(sys.argv[1], "w"))
PY
}

# bench_register URL USERS: registers u1..uUSERS, prints one token per line.
bench_register() {
  seq 1 "$2" | xargs -P 4 -I{} curl -fs -X POST "$1/api/users/register" \
    -H 'content-type: application/json' \
    -d '{"username":"u{}","email":"u{}@bench.example","password":"bench-password"}' \
    | python3 -c 'import sys,json; print("\n".join(json.loads(l)["token"] for l in sys.stdin.read().replace("}{","}\n{").splitlines()))'
}

# bench_lua TOKENS_FILE SKUS [REQUEST]: the wrk script, users rotating. REQUEST `add` (the
# default) adds one item per request; `cart-read` reads the user's cart (GET /api/cart) instead.
bench_lua() {
  python3 - "$1" "$2" "${3:-add}" <<'PY'
import sys
tokens = open(sys.argv[1]).read().split()
kind = sys.argv[3]
if kind not in ("add", "cart-read"):
    sys.exit(f"unknown request kind {kind}: add or cart-read")
method, path, body = (("POST", "/api/cart/items", "'{\"productSku\":\"' .. s .. '\",\"quantity\":1}'")
                      if kind == "add" else ("GET", "/api/cart", "nil"))
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
    reqs[n + 1] = wrk.format("METHOD", "PATH",
      {["Authorization"] = "Bearer " .. tokens[u + 1], ["Content-Type"] = "application/json"},
      BODY)
  end
  k = 0
end
request = function()
  k = k % #reqs + 1
  return reqs[k]
end'''.replace("METHOD", method).replace("PATH", path).replace("BODY", body))
PY
}

# bench_cpu_ticks PID [TID]: the user + system CPU time, in clock ticks, of a process (or of one
# of its threads).
bench_cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1${2:+/task/$2}/stat"
}

# bench_read WRK_OUTPUT: prints "req/s p99_ms non_2xx".
bench_read() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", t)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
print(f"{rps:.0f} {p99:.2f} {int(bad.group(1)) if bad else 0}")
PY
}

# bench_wait URL: waits up to 60 s for URL to answer.
bench_wait() {
  for _ in $(seq 1 600); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; return 1
}

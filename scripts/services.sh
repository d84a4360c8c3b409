#!/usr/bin/env bash
# Brings up the backing services the test suite talks to, on 127.0.0.1, and prints where they are.
# Safe to run repeatedly: a service that answers is left alone.
#   Redis     127.0.0.1:6379   (machine service; started with the documented command if down)
#   RabbitMQ  127.0.0.1:5672   (machine service; started if down)
#   SecantusDB (MongoDB-compatible, PyPI `secantusdb`) 127.0.0.1:27017, installed into .venv-mongo
#   aiosmtpd (PyPI) installed into .venv-smtp: the notification tests start capturing SMTP servers
#   of their own with it (http/tests/common/smtp_capture.py); nothing runs here
# and the Python tools some tests drive, installed into .venv-tools: schemathesis (the API fuzzer
# of http/tests/api_fuzz.rs) and prometheus-client (the text-format parser of http/tests/metrics.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "redis: up"
  elif command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    echo "redis: started"
  else
    echo "redis: redis-server is not installed; installing it from Debian"
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    echo "redis: installed and started"
  fi
}

ensure_rabbitmq() {
  if port_open 5672; then
    echo "rabbitmq: up"
    return
  fi
  if ! command -v rabbitmq-server >/dev/null; then
    echo "rabbitmq: not installed; installing it from Debian"
    apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  (rabbitmq-server -detached >/dev/null 2>&1 || true)
  timeout 90 rabbitmqctl await_startup >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do port_open 5672 && break; sleep 1; done
  port_open 5672 && echo "rabbitmq: started" || { echo "rabbitmq: could not start" >&2; exit 1; }
}

ensure_secantus() {
  if [ ! -x .venv-mongo/bin/python ] || ! .venv-mongo/bin/python -c 'import secantus' 2>/dev/null; then
    echo "secantusdb: installing into .venv-mongo"
    python3 -m venv .venv-mongo
    .venv-mongo/bin/pip install -q secantusdb
  fi
  if port_open 27017; then
    echo "secantusdb: up on 27017"
    return
  fi
  mkdir -p target
  nohup .venv-mongo/bin/python -m secantus --host 127.0.0.1 --port 27017 --storage-path :memory: \
    --log-level WARNING >target/secantus-27017.log 2>&1 &
  for _ in $(seq 1 60); do port_open 27017 && break; sleep 0.5; done
  port_open 27017 && echo "secantusdb: started on 27017" || { echo "secantusdb: could not start (target/secantus-27017.log)" >&2; exit 1; }
}

ensure_aiosmtpd() {
  if [ ! -x .venv-smtp/bin/python ] || ! .venv-smtp/bin/python -c 'import aiosmtpd' 2>/dev/null; then
    echo "aiosmtpd: installing into .venv-smtp"
    python3 -m venv .venv-smtp
    .venv-smtp/bin/pip install -q aiosmtpd
  fi
  echo "aiosmtpd: installed (.venv-smtp)"
}

# Pinned: a new release may generate other cases or parse differently; upgrade on purpose.
TOOLS="schemathesis==4.32.5 prometheus-client==0.26.0"

ensure_tools() {
  if [ -x .venv-tools/bin/schemathesis ] && .venv-tools/bin/python -c 'import prometheus_client' 2>/dev/null \
     && [ "$(cat .venv-tools/.pinned 2>/dev/null)" = "$TOOLS" ]; then
    echo "test tools: ready in .venv-tools"
    return
  fi
  echo "test tools: installing $TOOLS into .venv-tools"
  python3 -m venv .venv-tools
  # shellcheck disable=SC2086
  .venv-tools/bin/pip install -q $TOOLS
  echo "$TOOLS" > .venv-tools/.pinned
}

ensure_redis
ensure_rabbitmq
ensure_secantus
ensure_aiosmtpd
ensure_tools

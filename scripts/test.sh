#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, then every test of the workspace
# (unit, conformance and the black-box scenarios that start real `emporium` processes on
# 127.0.0.1). Installs what it needs; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Backing services. The embedded default needs none; these checks keep the suite honest once
# tests use them, and start a service that is down with the command the machine documents.
ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "redis: up"
  elif command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null && echo "redis: started"
  else
    echo "redis: not installed (not needed by the current suite)"
  fi
}
ensure_rabbitmq() {
  if command -v rabbitmqctl >/dev/null; then
    if timeout 20 rabbitmqctl status >/dev/null 2>&1; then
      echo "rabbitmq: up"
    else
      (rabbitmq-server -detached >/dev/null 2>&1 || true)
      timeout 60 rabbitmqctl await_startup >/dev/null 2>&1 && echo "rabbitmq: started" || echo "rabbitmq: not up (not needed by the current suite)"
    fi
  else
    echo "rabbitmq: not installed (not needed by the current suite)"
  fi
}

log "backing services"
ensure_redis
ensure_rabbitmq

log "toolchain"
rustup show active-toolchain 2>/dev/null || true
rustup component add rustfmt clippy >/dev/null 2>&1 || true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 2
else
  cargo test --workspace --no-fail-fast -- --test-threads 2
fi

#!/usr/bin/env bash
# The whole test suite, from a fresh clone: the deployment checks, formatting, lints, then every
# test of the workspace (unit, conformance and the black-box scenarios that start real `emporium`
# processes on 127.0.0.1). Installs what it needs; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

log "disk"
df -h . | tail -1

log "backing services"
bash scripts/services.sh
# The tests find them at the addresses above unless EMP_TEST_MONGO_URI, EMP_TEST_REDIS_URL,
# EMP_TEST_AMQP_URL or EMP_TEST_SECANTUS say otherwise (defaults in persistence/src/testkit).

log "deployment files (image, chart, terraform, workflows; scripts/check-deploy.sh)"
bash scripts/check-deploy.sh

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

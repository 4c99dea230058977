#!/usr/bin/env bash
# Runs every test of gatehouse on a fresh machine: installs the pinned tools, checks formatting and
# lints (native and wasm32), runs the native tests, builds the worker once, and runs the end-to-end
# suites against wrangler dev (real workerd with local KV and Durable Objects) on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n==> %s\n' "$*"; }

step "setup (pinned tools)"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy (native)"
cargo clippy --all-targets -- -D warnings

step "cargo clippy (wasm32)"
cargo clippy --all-targets --target wasm32-unknown-unknown -- -D warnings

step "cargo test (native)"
cargo test

step "release wasm build"
bash scripts/build.sh

step "end-to-end tests (wrangler dev)"
node --test --test-concurrency=1 tests/e2e/

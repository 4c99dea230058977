#!/usr/bin/env bash
# Runs every test of gatehouse on a fresh machine: installs the pinned tools, checks formatting and
# lints (native and wasm32), runs the native tests and a short bounded fuzzing run of each target,
# builds the worker once, and runs the end-to-end suites against wrangler dev (real workerd with
# local KV and Durable Objects) and Chromium on loopback.
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

step "fuzzing (cargo fuzz, each target ${FUZZ_SECONDS:-20} s from its seeds)"
if cargo +nightly --version >/dev/null 2>&1; then
  (cd fuzz && cargo +nightly fuzz build -O)
  for target in token jwks bodies family; do
    corpus=$(mktemp -d)
    (cd fuzz && cargo +nightly fuzz run -O "$target" "$corpus" "seeds/$target" -- \
      -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units|ERROR|SUMMARY)|panicked" || true)
    # A crash leaves an artifact and a non-zero exit; fail on either.
    if ls fuzz/artifacts/"$target"/crash-* >/dev/null 2>&1; then
      echo "fuzz target $target found a crash: fuzz/artifacts/$target/" >&2
      exit 1
    fi
    rm -rf "$corpus"
  done
else
  echo "fuzzing SKIPPED: this machine has no nightly toolchain (cargo +nightly), which libFuzzer needs" >&2
fi

step "release wasm build"
bash scripts/build.sh

step "end-to-end tests (wrangler dev)"
node --test --test-concurrency=1 tests/e2e/

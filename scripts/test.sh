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

step "cargo clippy (wasm32: the all-in-one, edge and issuer Workers)"
cargo clippy --all-targets --target wasm32-unknown-unknown -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --no-default-features --features edge -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --no-default-features --features issuer -- -D warnings

step "module layers (no import cycles, pure modules never reach the runtime)"
node scripts/check-layers.mjs

step "cargo test (native)"
cargo test

step "fuzzing (cargo fuzz, each target ${FUZZ_SECONDS:-20} s from its seeds)"
if [ "${FUZZ:-1}" != 0 ] && cargo +nightly --version >/dev/null 2>&1; then
  (cd fuzz && cargo +nightly fuzz build -O)
  for target in token jwks bodies family mfa; do
    corpus=$(mktemp -d)
    log="$corpus.log"
    # Any crash, leak, OOM or timeout makes libFuzzer exit non-zero: the test command fails with it.
    if ! (cd fuzz && cargo +nightly fuzz run -O "$target" "$corpus" "seeds/$target" -- \
      -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
      tail -n 60 "$log" >&2
      echo "fuzz target $target failed; the input is under fuzz/artifacts/$target/" >&2
      exit 1
    fi
    echo "$target: $(grep -E '^Done' "$log" | tail -n 1), corpus $(ls "$corpus" | wc -l) inputs"
    rm -f "$log"
    rm -rf "$corpus"
  done
elif [ "${FUZZ:-1}" = 0 ]; then
  echo "fuzzing skipped: FUZZ=0" >&2
else
  # A machine image without nightly cannot fetch it (only package registries are reachable), so
  # this is reported loudly rather than failed; the machines this project runs on carry nightly.
  echo "fuzzing SKIPPED: this machine has no nightly toolchain (cargo +nightly), which libFuzzer needs" >&2
fi

step "release wasm builds (all-in-one, edge, issuer)"
bash scripts/build.sh all

step "end-to-end tests (wrangler dev)"
node --test --test-concurrency=1 tests/e2e/

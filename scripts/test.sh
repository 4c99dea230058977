#!/usr/bin/env bash
# Runs the tests of gatehouse; sets itself up first (scripts/setup.sh test: pinned tools, skipping
# what is installed).
#   bash scripts/test.sh         everything (CI runs this through .ci/run): formatting, lints (native
#                                and wasm32, per Worker), the layer check, `cargo deny`, the native
#                                tests, a short bounded fuzzing run of each target, the three release
#                                builds, `wrangler deploy --dry-run` of every config and environment,
#                                and every end-to-end suite against wrangler dev (real workerd with
#                                local KV and Durable Objects), Miniflare and Chromium on loopback
#   bash scripts/test.sh quick   the quick check while working (a few minutes on a warm machine):
#                                formatting, native clippy, the native tests, the layer check, one
#                                fast build and the quickstart against wrangler dev
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
MODE="${1:-full}"
case "$MODE" in full|quick) ;; *) echo "usage: bash scripts/test.sh [quick]" >&2; exit 2 ;; esac
step() { printf '\n==> %s\n' "$*"; }
# Browser tests: the Chromium on PATH unless CHROMIUM_PATH names one.
if [ -z "${CHROMIUM_PATH:-}" ] && command -v chromium >/dev/null 2>&1; then
  CHROMIUM_PATH="$(command -v chromium)"; export CHROMIUM_PATH
fi

if [ "$MODE" = quick ]; then
  step "setup (what building and running needs, rustfmt and clippy)"
  bash scripts/setup.sh quick
  step "cargo fmt --check"
  cargo fmt --check
  step "cargo clippy (native)"
  cargo clippy --all-targets -- -D warnings
  cargo clippy -p gatehouse-ed25519 --all-targets -- -D warnings
  step "module layers"
  node scripts/check-layers.mjs
  step "cargo test (native)"
  cargo test
  cargo test -p gatehouse-ed25519
  step "one fast wasm build (the all-in-one Worker, wasm-dev profile)"
  bash scripts/build.sh dev
  step "workerd smoke test: the README's quickstart against wrangler dev"
  node --test --test-concurrency=1 tests/e2e/quickstart.test.mjs
  exit 0
fi

step "setup (pinned tools)"
bash scripts/setup.sh test

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy (native)"
cargo clippy --all-targets -- -D warnings
cargo clippy -p gatehouse-ed25519 --all-targets -- -D warnings

step "cargo clippy (wasm32: the all-in-one, edge and issuer Workers, and the crates they link)"
cargo clippy --all-targets --target wasm32-unknown-unknown -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --no-default-features --features edge -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --no-default-features --features issuer -- -D warnings
cargo clippy -p gatehouse-ed25519 -p gatehouse-worker --lib --target wasm32-unknown-unknown -- -D warnings

step "module layers (no import cycles, pure modules never reach the runtime)"
node scripts/check-layers.mjs

step "cargo deny (licences, bans, sources; advisories when the RustSec database can be had)"
bash scripts/deny.sh

step "cargo test (native)"
cargo test
cargo test -p gatehouse-ed25519

step "fuzzing (cargo fuzz, each target ${FUZZ_SECONDS:-20} s from its seeds)"
if [ "${FUZZ:-1}" != 0 ] && cargo +nightly --version >/dev/null 2>&1; then
  (cd fuzz && cargo +nightly fuzz build -O)
  for target in token jwks bodies family mfa json; do
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

step "wrangler deploy --dry-run of every config, top level and [env.production]"
bash scripts/check-deploy.sh

step "end-to-end tests (wrangler dev)"
node --test --test-concurrency=1 tests/e2e/

#!/usr/bin/env bash
# Installs every tool gatehouse builds and tests with, at pinned versions, skipping what is
# already installed at that version. Safe to run repeatedly; used by scripts/dev.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130
CARGO_FUZZ_VERSION=0.13.2

log() { printf '[setup] %s\n' "$*" >&2; }

export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
for comp in rustfmt clippy; do
  rustup component list --installed | grep -q "^$comp" || rustup component add "$comp"
done

if ! worker-build --version 2>/dev/null | grep -qw "$WORKER_BUILD_VERSION"; then
  log "installing worker-build $WORKER_BUILD_VERSION (a few minutes on a new machine)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --force
fi

if ! wasm-bindgen --version 2>/dev/null | grep -qw "$WASM_BINDGEN_VERSION"; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes on a new machine)"
  # No --locked: one locked dependency of this release is missing from the registry.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# cargo-fuzz drives libFuzzer; it needs the nightly toolchain, which this machine image carries.
if ! cargo fuzz --version 2>/dev/null | grep -qw "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force
fi

# Debian's Chromium for the browser tests (playwright's own browser download cannot work here).
if ! command -v chromium >/dev/null 2>&1; then
  log "installing Debian's chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x node_modules/.bin/wrangler ] || ! npm ls --silent >/dev/null 2>&1; then
  log "installing npm devDependencies (wrangler, binaryen, esbuild, jose, playwright-core)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi

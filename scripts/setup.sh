#!/usr/bin/env bash
# Installs what gatehouse builds and tests with, at pinned versions, skipping whatever is already
# installed at that version. Safe to run repeatedly.
#   bash scripts/setup.sh dev    what running the Worker needs (scripts/dev.sh, scripts/deploy.sh):
#                                the wasm32 target, worker-build, wasm-bindgen-cli, the npm packages
#   bash scripts/setup.sh quick  what running needs, plus rustfmt and clippy (scripts/test.sh quick)
#   bash scripts/setup.sh test   all of that, plus what the tests need (scripts/test.sh): rustfmt,
#                                clippy, cargo-deny, cargo-fuzz (with a nightly toolchain) and Chromium
# Needs: rustup (https://rustup.rs), Node.js 20 or later with npm, git, a C compiler (cargo builds
# the tools), and for the browser tests a Chromium (Debian/Ubuntu: installed here with apt; elsewhere
# install one and set CHROMIUM_PATH=/path/to/chromium). Works on Linux and macOS.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-test}"
case "$MODE" in dev|quick|test) ;; *) echo "usage: bash scripts/setup.sh [dev|quick|test]" >&2; exit 2 ;; esac

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130
CARGO_FUZZ_VERSION=0.13.2
CARGO_DENY_VERSION=0.20.2

log() { printf '[setup] %s\n' "$*" >&2; }
need() { printf '[setup] MISSING: %s\n' "$*" >&2; exit 1; }

export PATH="$HOME/.cargo/bin:$PATH"

command -v rustup >/dev/null 2>&1 || need "rustup (Rust's installer: https://rustup.rs); then run this again"
command -v node >/dev/null 2>&1 || need "Node.js 20 or later (https://nodejs.org, or your package manager)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  need "Node.js 20 or later (this is $(node --version))"
command -v npm >/dev/null 2>&1 || need "npm (comes with Node.js)"
command -v cc >/dev/null 2>&1 || command -v clang >/dev/null 2>&1 ||
  need "a C compiler (Debian: apt-get install build-essential; macOS: xcode-select --install)"

# Each listing is read whole before it is searched: with pipefail, `lister | grep -q` fails whenever
# grep stops reading at its match and the lister is killed writing the next line (SIGPIPE).
has_line() { grep -q "$1" <<<"$2"; }
has_word() { grep -qwF "$1" <<<"$2"; }

if ! has_line '^wasm32-unknown-unknown$' "$(rustup target list --installed)"; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# cargo install [--locked] NAME VERSION, unless `CHECK` already prints that version.
install_pinned() {
  local name="$1" version="$2" check="$3" locked="$4" why="$5"
  if ! has_word "$version" "$(eval "$check" 2>/dev/null || true)"; then
    log "installing $name $version ($why)"
    cargo install "$name" --version "$version" $locked --force
  fi
}

install_pinned worker-build "$WORKER_BUILD_VERSION" "worker-build --version" --locked "a few minutes on a new machine"
# No --locked: one locked dependency of this release is missing from the registry.
install_pinned wasm-bindgen-cli "$WASM_BINDGEN_VERSION" "wasm-bindgen --version" "" "a few minutes on a new machine"

if [ ! -x node_modules/.bin/wrangler ] || ! npm ls --silent >/dev/null 2>&1; then
  log "installing the npm devDependencies (wrangler, binaryen, esbuild, ...) from package-lock.json"
  npm ci --no-audit --no-fund
fi

[ "$MODE" = dev ] && exit 0

components="$(rustup component list --installed || true)"
for comp in rustfmt clippy; do
  has_line "^$comp" "$components" || rustup component add "$comp"
done

[ "$MODE" = quick ] && exit 0

install_pinned cargo-deny "$CARGO_DENY_VERSION" "cargo deny --version" --locked "licences, bans, advisories; several minutes on a new machine"

# cargo-fuzz drives libFuzzer, which needs a nightly toolchain; scripts/test.sh skips the fuzzing
# loudly on a machine without one.
install_pinned cargo-fuzz "$CARGO_FUZZ_VERSION" "cargo fuzz --version" --locked "the fuzzing step"

# A Chromium for the browser tests (playwright's own browser download cannot work here).
if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] || need "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable"
elif ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's chromium for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium >/dev/null
  else
    need "a Chromium for the browser tests: install one (macOS: brew install --cask chromium; Fedora: dnf install chromium; Arch: pacman -S chromium) and set CHROMIUM_PATH=/path/to/it if it is not on PATH as 'chromium'"
  fi
fi

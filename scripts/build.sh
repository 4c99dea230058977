#!/usr/bin/env bash
# Builds release wasm workers with the pinned, locally installed tools (no downloads):
#   bash scripts/build.sh            the all-in-one Worker (features edge + issuer) into build/
#   bash scripts/build.sh edge       the edge Worker (feature edge) into build-edge/
#   bash scripts/build.sh issuer     the issuer Worker (feature issuer) into build-issuer/
#   bash scripts/build.sh all        all three
#   bash scripts/build.sh dev        the all-in-one Worker into build/, fast: the `wasm-dev` profile
#                                    (no LTO, parallel codegen) and no wasm-opt (scripts/dev.sh)
# Extra arguments after the flavour go to worker-build (e.g. --no-opt).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"
flavour="${1:-full}"
[ $# -gt 0 ] && shift
# worker-build builds crates/worker (gatehouse linked as a cdylib, so that LTO runs), run from that
# crate's directory: its optional PATH argument would otherwise swallow the first cargo flag passed
# through (e.g. --locked). Its output directory is relative to the crate, hence the absolute paths.
ROOT="$PWD"
build() {
  local out
  case "$1" in
    full) out=(--release --out-dir "$ROOT/build" "${@:2}") ;;
    dev) out=(--profile wasm-dev --no-opt --out-dir "$ROOT/build" "${@:2}") ;;
    edge) out=(--release --out-dir "$ROOT/build-edge" "${@:2}" --no-default-features --features edge) ;;
    issuer) out=(--release --out-dir "$ROOT/build-issuer" "${@:2}" --no-default-features --features issuer) ;;
    *) echo "unknown flavour $1 (full, edge, issuer, all, dev)" >&2; exit 2 ;;
  esac
  (cd crates/worker && worker-build "${out[@]}")
}
if [ "$flavour" = all ]; then
  for f in full edge issuer; do build "$f" "$@"; done
elif [ "$flavour" = full ] || [ "${flavour#-}" != "$flavour" ]; then
  # No flavour given, only worker-build options: the all-in-one build.
  if [ "${flavour#-}" != "$flavour" ]; then set -- "$flavour" "$@"; fi
  build full "$@"
else
  build "$flavour" "$@"
fi

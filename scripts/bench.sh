#!/usr/bin/env bash
# Runs the benchmarks (not tests): installs the pinned tools and wrk, builds the release worker and
# the no-op workers-rs baseline, then runs
#   bench/throughput.mjs  requests/s of gatehouse vs jose workers vs no-op workers (workerd, wrk), the
#                         wasm size, the cold start, and KV reads per request
#   bench/verify.mjs      one verification in V8 (gatehouse's wasm, jose) and natively (criterion)
#   bench/login.mjs       login timing and argon2id cost per hash (wrangler dev)
#   bench/limits.mjs      the abuse limits under a bounded load with production's limits (wrangler dev)
#   bench/size.mjs        what each crate costs in the edge and issuer wasm (name section of a build
#                         that keeps it, in target/size/)
#   bench/cold-parts.mjs  (by hand, `node bench/cold-parts.mjs`) the cold start's "ready" phase taken apart
#   bench/profile.mjs     (`bash scripts/bench.sh profile` only) V8's CPU profile of the edge Worker in
#                         workerd: the fast path under wrk's load, and an isolate's first request
# `bash scripts/bench.sh throughput`, `... verify`, `... login`, `... limits` or `... size` runs one. Results go in
# docs/BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
bash scripts/build.sh
which="${1:-all}"
if [ "$which" = all ] || [ "$which" = throughput ]; then
  (cd bench/noop-rs && WASM_BINDGEN_BIN="$(command -v wasm-bindgen)" WASM_OPT_BIN="$PWD/../../node_modules/.bin/wasm-opt" \
    ESBUILD_BIN="$PWD/../../node_modules/.bin/esbuild" worker-build --release)
  node bench/throughput.mjs
fi
if [ "$which" = all ] || [ "$which" = verify ]; then
  node bench/verify.mjs
fi
if [ "$which" = all ] || [ "$which" = login ]; then
  node bench/login.mjs
fi
if [ "$which" = all ] || [ "$which" = limits ]; then
  node bench/limits.mjs
fi
if [ "$which" = profile ]; then
  # The edge build with its name section kept (CARGO_PROFILE_RELEASE_STRIP=false, wasm-opt -Oz -g) in
  # build-profile/, for V8's profiler to name wasm functions; then the fast path under load, and an
  # isolate's first request. Not part of `all`: a profile explains figures, it is not one.
  CARGO_PROFILE_RELEASE_STRIP=false bash scripts/build.sh edge --no-opt
  rm -rf build-profile && cp -r build-edge build-profile
  node_modules/.bin/wasm-opt -Oz -g --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-exception-handling \
    build-profile/index_bg.wasm -o build-profile/index_bg.wasm
  bash scripts/build.sh edge
  node bench/profile.mjs
  FIRST=1 node bench/profile.mjs
fi
if [ "$which" = all ] || [ "$which" = size ]; then
  node bench/size.mjs edge
  node bench/size.mjs issuer
fi

#!/usr/bin/env bash
# Runs the benchmarks (not tests): installs the pinned tools, builds the release worker once, then
# runs bench/login.mjs against wrangler dev on loopback. N=40 bash scripts/bench.sh for more tries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
node bench/login.mjs

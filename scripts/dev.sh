#!/usr/bin/env bash
# Runs gatehouse locally: installs what running it needs (scripts/setup.sh dev: no test tools), makes
# a fast development build (the wasm-dev profile: no LTO, no wasm-opt), makes dev keys in .dev.vars if
# there are none, and starts wrangler dev with edge and issuer in one Worker (wrangler.toml) on
# 127.0.0.1:${PORT:-8787}, local KV and Durable Objects persisted under .wrangler/state.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8787}"
bash scripts/setup.sh dev
bash scripts/build.sh dev
node scripts/dev-keys.mjs .dev.vars
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false SKIP_WORKER_BUILD=1
exec node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$PORT" --inspector-port "$((PORT + 1000))" \
  --persist-to .wrangler/state --show-interactive-dev-session=false \
  --var "ISSUER:http://127.0.0.1:$PORT"

#!/usr/bin/env bash
# Runs gatehouse locally: installs tools, builds, makes dev keys if missing, and starts wrangler dev
# on 127.0.0.1:${PORT:-8787} with local KV and Durable Objects persisted under .wrangler/state.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8787}"
bash scripts/setup.sh
bash scripts/build.sh
node scripts/dev-keys.mjs .dev.vars
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false SKIP_WORKER_BUILD=1
exec node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$PORT" --inspector-port "$((PORT + 1000))" \
  --persist-to .wrangler/state --show-interactive-dev-session=false \
  --var "ISSUER:http://127.0.0.1:$PORT"

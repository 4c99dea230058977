#!/usr/bin/env bash
# `wrangler deploy --dry-run` of every wrangler config, at the top level and in each [env.*]: a config
# wrangler would refuse fails here (scripts/test.sh), offline, with the builds already made
# (scripts/build.sh all). Nothing is sent anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false SKIP_WORKER_BUILD=1 CI=true
checked=0
for config in wrangler.toml wrangler.edge.toml wrangler.issuer.toml; do
  envs=$(node -e '
    const { parse } = require("smol-toml");
    const c = parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(["", ...Object.keys(c.env ?? {})].join("\n"));' "$config")
  while IFS= read -r env; do
    label="$config${env:+ --env $env}"
    if ! node_modules/.bin/wrangler deploy --dry-run --outdir "$out/$checked" -c "$config" ${env:+--env "$env"} \
      >"$out/log" 2>&1; then
      cat "$out/log" >&2
      echo "wrangler deploy --dry-run FAILED for $label" >&2
      exit 1
    fi
    echo "ok: $label ($(du -sk "$out/$checked" | cut -f1) KiB bundle)"
    checked=$((checked + 1))
  done <<<"$envs"
done
echo "$checked dry-run deploys passed"

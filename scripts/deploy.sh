#!/usr/bin/env bash
# Deploys gatehouse to your Cloudflare account (docs/DEPLOY.md): `bash scripts/deploy.sh --help`.
# Sets up the build tools (scripts/setup.sh dev) unless --dry-run finds the builds already there,
# then runs scripts/deploy.mjs. Log in first with `node_modules/.bin/wrangler login` (or set
# CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID).
set -euo pipefail
cd "$(dirname "$0")/.."
case " $* " in
  *" --help "*|*" -h "*) ;;
  *" --skip-build "*) [ -x node_modules/.bin/wrangler ] || bash scripts/setup.sh dev ;;
  *) bash scripts/setup.sh dev ;;
esac
exec node scripts/deploy.mjs "$@"

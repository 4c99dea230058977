#!/usr/bin/env bash
# `cargo deny check` with deny.toml (docs/TESTING.md "Supply chain"). Licences, bans and sources are
# checked always, offline. Advisories need the RustSec database, a git repository cargo-deny fetches
# from GitHub: checked when it can be fetched, or against the copy cargo-deny already holds (with its
# age), and otherwise SKIPPED, said loudly, never passed in silence.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

cargo deny --log-level error check licenses bans sources
echo "cargo deny: licenses, bans, sources ok"

db_dir="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
# A bounded fetch where `timeout` exists (macOS has none by default: the fetch's own limits apply).
bounded() { if command -v timeout >/dev/null 2>&1; then timeout "${DENY_FETCH_SECONDS:-60}" "$@"; else "$@"; fi; }
if bounded cargo deny --log-level error fetch db >/dev/null 2>&1; then
  cargo deny --log-level error check --disable-fetch advisories
  echo "cargo deny: advisories ok (database fetched now)"
elif compgen -G "$db_dir/*/.git" >/dev/null; then
  newest=$(git -C "$(dirname "$(compgen -G "$db_dir/*/.git" | head -n 1)")" log -1 --format=%cs 2>/dev/null || echo "unknown")
  echo "cargo deny: the advisory database cannot be fetched; checking against the copy in $db_dir (last change $newest)" >&2
  cargo deny --log-level error check --disable-fetch advisories
  echo "cargo deny: advisories ok against the copy of $newest"
else
  cat >&2 <<MSG
********************************************************************************
cargo deny: advisories SKIPPED. The RustSec advisory database is fetched from GitHub, which this
machine cannot reach, and there is no copy in $db_dir. Licences, bans and sources were checked.
To check advisories here, put a clone of https://github.com/RustSec/advisory-db where cargo-deny
keeps it (run 'cargo deny fetch db' on a connected machine and copy $db_dir).
********************************************************************************
MSG
fi

#!/usr/bin/env bash
# Dependency audit with cargo-deny and deny.toml: licenses, bans (wildcard versions,
# duplicates) and sources (crates.io only) always; RustSec advisories when the advisory
# database can be fetched from GitHub. Exit status non-zero on any refused finding.
#   .ci/audit.sh                     everything that can run here
#   AUDIT_ADVISORIES=0 .ci/audit.sh  leave advisories out
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "audit: installing cargo-deny from crates.io" >&2
  cargo install cargo-deny --locked
fi
cargo deny --log-level error check licenses bans sources
advisory_db="https://github.com/rustsec/advisory-db"
if [ "${AUDIT_ADVISORIES:-1}" = 0 ]; then
  echo "audit: advisories SKIPPED (AUDIT_ADVISORIES=0)" >&2
elif timeout 30 git ls-remote "$advisory_db" HEAD >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "audit: advisories SKIPPED: the RustSec advisory database ($advisory_db) cannot be reached from this machine; run .ci/audit.sh where GitHub is reachable" >&2
fi
echo "audit: ok" >&2

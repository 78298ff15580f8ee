#!/usr/bin/env bash
# The one test command (README, CI): installs and starts what the tests need
# on non-default ports — Redis from Debian's packages, a MongoDB-compatible
# server built once into ~/.cache/omnibiz-tools — runs the whole workspace's
# tests, and stops what it started.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -- --nocapture  # extra arguments go to `cargo test`
#
# Set MONGODB_URI / REDIS_URL to use servers of your own instead.
# With CI=true it also checks formatting and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

cleanup() { scripts/services.sh stop || true; }
trap cleanup EXIT
eval "$(scripts/services.sh start)"
echo "[test] MONGODB_URI=${MONGODB_URI%%\?*}  REDIS_URL=${REDIS_URL}"

if [ "${CI:-}" = "true" ]; then
  echo "[test] cargo fmt --check"
  cargo fmt --all -- --check
  echo "[test] cargo clippy"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

cargo test --workspace "$@"
echo "[test] all green in $(( $(date +%s) - start ))s"

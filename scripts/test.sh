#!/usr/bin/env bash
# The one test command (README, CI): installs and starts what the tests need
# on non-default ports — Redis from Debian's packages, a MongoDB-compatible
# server built once into ~/.cache/omnibiz-tools, the official socket.io-client
# from npm — runs the whole workspace's
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
export OMNIBIZ_REDIS_CLUSTER=1
eval "$(scripts/services.sh start)"
# The official socket.io-client for tests/node_client.rs (exact versions from the lockfile).
if [ ! -d tests/node/node_modules/socket.io-client ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
  echo "[test] npm ci in tests/node"
  (cd tests/node && npm ci --silent --no-audit --no-fund)
fi
echo "[test] MONGODB_URI=${MONGODB_URI%%\?*}  REDIS_URL=${REDIS_URL}"

echo "[test] k8s manifests"
scripts/k8s-validate.sh

if [ "${CI:-}" = "true" ]; then
  echo "[test] cargo fmt --check"
  cargo fmt --all -- --check
  echo "[test] cargo clippy"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

cargo test --workspace "$@"
echo "[test] all green in $(( $(date +%s) - start ))s"

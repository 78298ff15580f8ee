#!/usr/bin/env bash
# The one test command (README, CI): installs and starts what the tests need
# on non-default ports — Redis from Debian's packages, a MongoDB-compatible
# server built once into ~/.cache/omnibiz-tools, Chromium from Debian's
# packages, moto's S3 server from PyPI, socket.io-client, mongoose and
# playwright-core from npm — runs the
# whole workspace's
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
# Third-party artefacts the tests run against, exact versions from the
# lockfile: the official socket.io-client, mongoose (the seed's models,
# tests/e2e/legacy.rs) and playwright-core (tests/e2e/browser.rs and tests/e2e/console.rs,
# which drive Debian's chromium: no browser download).
scripts/services.sh browser
scripts/services.sh ops-tools
eval "$(scripts/services.sh chaos-tools)"
eval "$(scripts/services.sh s3-tools)"
eval "$(scripts/services.sh notify-tools)"
if [ ! -d tests/node/node_modules/playwright-core ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
  echo "[test] npm ci in tests/node"
  (cd tests/node && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund)
fi
echo "[test] MONGODB_URI=${MONGODB_URI%%\?*}  REDIS_URL=${REDIS_URL}"

# The web console ships socket.io-client's browser bundle (api/console/vendor/)
# so `cargo build` needs no Node; it must be exactly what the lockfile pins.
echo "[test] console bundle"
scripts/console-vendor.sh --check

echo "[test] k8s manifests"
scripts/k8s-validate.sh

echo "[test] alerting rules: promtool check and unit tests"
scripts/prometheus-rules.sh

if [ "${CI:-}" = "true" ]; then
  echo "[test] cargo fmt --check"
  cargo fmt --all -- --check
  echo "[test] module circles (scripts/module-cycles.py)"
  python3 scripts/module-cycles.py
  echo "[test] cargo clippy"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

cargo test --workspace "$@"

echo "[test] Schemathesis against /api/openapi.json, as owner and as customer"
scripts/schemathesis.sh

echo "[test] official Engine.IO / Socket.IO compliance suites against sio/examples/conformance.rs"
scripts/conformance.sh
echo "[test] all green in $(( $(date +%s) - start ))s"

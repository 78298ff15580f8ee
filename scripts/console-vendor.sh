#!/usr/bin/env bash
# The web console (api/console/) has no build step: the browser runs our
# HTML, CSS and JavaScript as written. Its one third-party file is the
# official socket.io-client ES module bundle, pinned with its integrity hash
# by api/console/package-lock.json. This script installs exactly that
# (`npm ci`) and copies the bundle to api/console/vendor/, so `cargo build`
# needs no Node.js.
#
#   scripts/console-vendor.sh          refresh vendor/ from the lockfile
#   scripts/console-vendor.sh --check  fail when vendor/ differs from it (CI)
set -euo pipefail
cd "$(dirname "$0")/../api/console"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
src=node_modules/socket.io-client/dist/socket.io.esm.min.js
dst=vendor/socket.io.esm.min.js
if [[ "${1:-}" == "--check" ]]; then
  if ! cmp -s "$src" "$dst"; then
    echo "console-vendor: $dst differs from the socket.io-client that package-lock.json pins;" >&2
    echo "  run scripts/console-vendor.sh and commit the result" >&2
    exit 1
  fi
  echo "console-vendor: $dst matches package-lock.json"
else
  mkdir -p vendor
  cp "$src" "$dst"
  echo "console-vendor: copied $(node -p 'require("socket.io-client/package.json").version') to $dst"
fi

#!/usr/bin/env bash
# Runs the official server compliance suites of the Socket.IO project
# (socketio/engine.io-protocol and socketio/socket.io-protocol, mocha) against
# the echo servers built on our protocol crate (sio/examples/conformance.rs).
#
# The suites are third-party test material kept beside the project, in
# ../shared/conformance (or $OMNIBIZ_CONFORMANCE_DIR, or /work/shared/
# conformance for a checkout elsewhere on this workspace); they are copied, never
# edited, into a folder outside the repository (~/.cache/omnibiz-tools/
# conformance), where their npm dependencies are installed once. Every case
# must pass and none may be skipped. The suites talk to http://localhost:3000.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Where the suites are: $OMNIBIZ_CONFORMANCE_DIR, else beside the checkout
# (../shared/conformance), else the workspace's shared folder.
SRC=${OMNIBIZ_CONFORMANCE_DIR:-}
if [ -z "$SRC" ]; then
  for candidate in "$ROOT/../shared/conformance" /work/shared/conformance; do
    if [ -f "$candidate/engine.io-protocol/test-suite.js" ]; then SRC=$candidate; break; fi
  done
fi
SRC=${SRC:-$ROOT/../shared/conformance}
WORK=${OMNIBIZ_TOOLS:-$HOME/.cache/omnibiz-tools}/conformance
SUITES="engine.io-protocol socket.io-protocol"

log() { printf '[conformance] %s\n' "$*" >&2; }

for suite in $SUITES; do
  if [ ! -f "$SRC/$suite/test-suite.js" ]; then
    log "the official suites are not at $SRC/$suite (set OMNIBIZ_CONFORMANCE_DIR)"
    exit 1
  fi
  mkdir -p "$WORK/$suite"
  cp "$SRC/$suite/package.json" "$SRC/$suite/test-suite.js" "$SRC/$suite/node-imports.js" "$WORK/$suite/"
  if [ ! -d "$WORK/$suite/node_modules/mocha" ]; then
    log "npm install in $WORK/$suite"
    (cd "$WORK/$suite" && npm install --silent --no-audit --no-fund)
  fi
done

cd "$ROOT"
cargo build --quiet -p omnibiz-sio --example conformance
if (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null; then
  log "port 3000 is taken; the suites need it"
  exit 1
fi
"${CARGO_TARGET_DIR:-target}/debug/examples/conformance" >"$WORK/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null && break
  sleep 0.1
done

status=0
for suite in $SUITES; do
  out="$WORK/$suite.out"
  if (cd "$WORK/$suite" && npx mocha --reporter dot test-suite.js) >"$out" 2>&1; then :; else status=1; fi
  summary=$(grep -E "passing|failing|pending" "$out" | tr -s ' ' | tr '\n' ' ')
  log "$suite: $summary"
  if grep -q "pending" "$out"; then
    log "$suite: skipped cases are not allowed"
    status=1
  fi
  if [ $status -ne 0 ]; then cat "$out" >&2; fi
done
exit $status

#!/usr/bin/env bash
# Hostile input for the REST API: Schemathesis (from PyPI, pinned, in the
# cached venv) generates requests from /api/openapi.json against a fresh
# `omnibiz serve`, as a business owner and as a customer, with every check
# (tests/schemathesis/schemathesis.toml). Fails on any 5xx, undocumented
# status, response that breaks its schema, or accepted invalid input.
#
#   scripts/schemathesis.sh [path/to/omnibiz]    (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${OMNIBIZ_TOOLS:-$HOME/.cache/omnibiz-tools}
VENV=$TOOLS/venv
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-40}
BIN=${1:-${CARGO_TARGET_DIR:-target}/debug/omnibiz}
[ -x "$BIN" ] || { echo "schemathesis: $BIN is missing (cargo build first)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
[ -x "$VENV/bin/st" ] || "$VENV/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATA_DIR=$work HOST=127.0.0.1 PORT=$port JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))') LOG_LEVEL=error
unset MONGODB_URI REDIS_URL
# Thousands of requests from two tokens: the rate limits (tested on their own
# in tests/e2e/rate_limits.rs; a 429 is documented on every operation) would
# otherwise answer most of them.
for r in SEND WRITE RECEIPT READ SEARCH UPLOAD; do export "OMNIBIZ_${r}_RATE=1000000"; done
"$BIN" seed --customers-per-owner 3 --tokens-out "$work/tokens.json" >/dev/null
"$BIN" serve >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; [ -n "${SCHEMATHESIS_KEEP:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
token() { python3 -c "import json,sys; t=json.load(open('$work/tokens.json'))['owners'][0]; print(t['token'] if sys.argv[1]=='owner' else t['customers'][0]['token'])" "$1"; }

status=0
# One worker: with two, Schemathesis 4.32.5 itself intermittently fails with a
# KeyError in its coverage phase (a race in its own caches), which is no
# finding about the API but fails the run.
for who in owner customer; do
  echo "[schemathesis] as $who"
  if ! ("$VENV/bin/st" --config-file tests/schemathesis/schemathesis.toml run "http://127.0.0.1:$port/api/openapi.json" \
        -H "Authorization: Bearer $(token $who)" -n "$EXAMPLES" --workers 1 \
        --no-color --seed 20261202 >"$work/st-$who.log" 2>&1); then
    status=1
  fi
  grep -E "generated|passed|failures|Failures|ST[0-9]{3}|^_{5,}|^\[[0-9]{3}\]|^    curl|^    \`" "$work/st-$who.log" | tail -60
done
if grep -q "Internal Server Error\|panicked" "$work/serve.log"; then
  echo "[schemathesis] the server logged a panic or a 500:" >&2; tail -20 "$work/serve.log" >&2; status=1
fi
exit $status

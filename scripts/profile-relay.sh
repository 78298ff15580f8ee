#!/usr/bin/env bash
# Where the relay's CPU goes: two relay-only gateways (OMNIBIZ_BENCH_RELAY_ONLY,
# one tokio worker each, as in scripts/bench.sh) on one Redis, 200 pairs
# sending across them at 2 000 msgs/s, and while that runs either a `perf`
# profile of both gateways or `strace -c` of each, with system calls per
# relayed message. docs/profile-relay.md is its output, explained.
#
#   scripts/profile-relay.sh perf|strace [omnibiz binary] [loadtest binary]
#
# Binaries default to the dist build (cargo build --profile dist -p omnibiz
# -p omnibiz-loadtest). Knobs: PROFILE_RATE=2000, PROFILE_SECS=20 (the run;
# the profile takes 8 s of it, from its 6th second), PROFILE_OUT=target/profile-relay.
# Needs perf (linux-perf) or strace.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: scripts/profile-relay.sh perf|strace [omnibiz] [omnibiz-loadtest]}
BIN=$(realpath "${2:-target/dist/omnibiz}")
LT=$(realpath "${3:-target/dist/omnibiz-loadtest}")
RATE=${PROFILE_RATE:-2000}; SECS=${PROFILE_SECS:-20}
OUT=${PROFILE_OUT:-target/profile-relay}
mkdir -p "$OUT"; OUT=$(realpath "$OUT")
case "$MODE" in perf | strace) command -v "$MODE" >/dev/null || { echo "$MODE is not installed" >&2; exit 1; } ;;
  *) echo "mode: perf or strace, not $MODE" >&2; exit 2 ;; esac

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
eval "$(scripts/services.sh start)"
ulimit -n "$(ulimit -Hn)" || true
export JWT_SECRET=profile-secret-0123456789abcdef-0123456789 LOG_LEVEL=warn MONGODB_DATABASE=omnibiz_profile_$(date +%s)
export OMNIBIZ_SEND_RATE=1000000 OMNIBIZ_MAX_SOCKETS_PER_PRINCIPAL=1000000 OMNIBIZ_CONNECT_RATE=1000000 \
  OMNIBIZ_CONNECT_RATE_PER_IP=1000000 OMNIBIZ_JOIN_RATE=1000000
"$BIN" seed --owners 1 --customers-per-owner 200 --tokens-out "$OUT/tokens.json" >/dev/null
for port in 7111 7112; do
  env PORT=$port HOST=127.0.0.1 TOKIO_WORKER_THREADS=1 OMNIBIZ_BENCH_RELAY_ONLY=true "$BIN" gateway >"$OUT/gateway-$port.log" 2>&1 &
  PIDS+=("$!")
done
receiving=${PIDS[0]} sending=${PIDS[1]}
for port in 7111 7112; do
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
done

# Starts once the load generator has connected and is sending.
if [ "$MODE" = perf ]; then
  (sleep 6 && perf record -F 999 -g -o "$OUT/perf.data" -p "$receiving,$sending" -- sleep 8 >/dev/null 2>&1) &
else
  (sleep 6 && timeout -s INT 5 strace -c -f -p "$receiving" -o "$OUT/strace-receiving.txt" 2>/dev/null || true
    timeout -s INT 5 strace -c -f -p "$sending" -o "$OUT/strace-sending.txt" 2>/dev/null || true) &
fi
tracer=$!
"$LT" fanout --tokens "$OUT/tokens.json" --url ws://127.0.0.1:7111 --senders-url ws://127.0.0.1:7112 \
  --pairs 200 --rate "$RATE" --duration-secs "$SECS" --pids "$receiving,$sending" --label relay >"$OUT/fanout.txt"
wait "$tracer" || true
grep -E "delivered_per_cpu_sec|latency_ms|lost" "$OUT/fanout.txt"

if [ "$MODE" = perf ]; then
  echo "## by object"
  perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -6
  echo "## inclusive"
  perf report -i "$OUT/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -16
  echo "## self"
  perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -25
else
  # Each gateway was traced for 5 s at RATE messages/s.
  for side in receiving sending; do
    echo "## $side gateway: calls per relayed message"
    # strace -c: % time, seconds, usecs/call, calls, [errors,] syscall.
    awk -v n="$(( RATE * 5 ))" '$1 ~ /^[0-9.]+$/ && $NF != "total" && $4 / n >= 0.005 { printf "  %-14s %6.2f\n", $NF, $4 / n }' \
      "$OUT/strace-$side.txt" | sort -k2 -nr | head -8
  done
fi

#!/usr/bin/env bash
# A/B of two omnibiz builds on what every direct (1:1) conversation costs:
# server memory per idle connection, and server CPU per delivered message on
# the relay (validated, not stored) and the stored path (api → MongoDB →
# Redis → gateways). Same machine, same run; the two builds take turns
# (A, B, A, B, …) so drift of the machine falls on both alike.
#
#   scripts/bench-ab.sh <omnibiz A> <omnibiz B> [loadtest binary]
#
# Knobs: AB_ROUNDS=3, AB_CONNECTIONS=10000, AB_RATE=2000 (relay), AB_STORED_RATE=400,
# AB_PAIRS=200, AB_DURATION=10, AB_SCENARIOS="idle relay stored" (any of them). Writes target/bench-ab/results.jsonl and prints
# the median of each figure per build, and B/A.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
A=$(realpath "$1"); B=$(realpath "$2")
LT=$(realpath "${3:-target/dist/omnibiz-loadtest}")
ROUNDS=${AB_ROUNDS:-3}; N=${AB_CONNECTIONS:-10000}; RATE=${AB_RATE:-2000}
STORED=${AB_STORED_RATE:-400}; PAIRS=${AB_PAIRS:-200}; DUR=${AB_DURATION:-10}
SCENARIOS=" ${AB_SCENARIOS:-idle relay stored} "
want() { [[ "$SCENARIOS" == *" $1 "* ]]; }
OUT=$ROOT/target/bench-ab; RESULTS=$OUT/results.jsonl
mkdir -p "$OUT"; rm -f "$RESULTS"
PIDS=()
log() { printf '[ab] %s\n' "$*" >&2; }
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop || true
}
trap cleanup EXIT
eval "$(scripts/services.sh start)"
ulimit -n "$(ulimit -Hn)" || true
export JWT_SECRET=bench-secret-0123456789abcdef-0123456789 LOG_LEVEL=warn
export OMNIBIZ_SEND_RATE=1000000 OMNIBIZ_TYPING_RATE=1000000 OMNIBIZ_JOIN_RATE=1000000 OMNIBIZ_RECEIPT_RATE=1000000 \
  OMNIBIZ_WRITE_RATE=1000000 OMNIBIZ_READ_RATE=1000000 OMNIBIZ_MAX_SOCKETS_PER_PRINCIPAL=1000000 \
  OMNIBIZ_MAX_CONNECTIONS=19900 OMNIBIZ_CONNECT_RATE=1000000 OMNIBIZ_CONNECT_RATE_PER_IP=1000000
SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
WORKERS=$(( (N + 15999) / 16000 ))

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; log "port $1 never opened"; return 1; }
start() { # start <bin> <target> <port> [env...] → echoes pid
  local bin=$1 target=$2 port=$3; shift 3
  env PORT="$port" HOST=127.0.0.1 TOKIO_WORKER_THREADS=1 "$@" "$bin" "$target" >"$OUT/$target-$port.log" 2>&1 &
  echo $!
}

for label in A B; do
  bin=$A; [ "$label" = B ] && bin=$B
  log "seeding for $label"
  MONGODB_DATABASE=omnibiz_ab_$label "$bin" seed --owners $(( (N + 999) / 1000 )) --customers-per-owner 1000 \
    --tokens-out "$OUT/tokens-$label.json" >/dev/null
done

for round in $(seq 1 "$ROUNDS"); do
  for label in A B; do
    bin=$A; [ "$label" = B ] && bin=$B
    export MONGODB_DATABASE=omnibiz_ab_$label
    tokens=$OUT/tokens-$label.json
    if want idle; then
      log "round $round, $label: $N idle connections"
      g=$(start "$bin" gateway 7320); PIDS+=("$g"); wait_port 7320
      "$LT" connections --tokens "$tokens" --url ws://127.0.0.1:7320 --count "$N" --workers "$WORKERS" \
        --sources "$SOURCES" --pids "$g" --label "$label" --out "$RESULTS"
      kill "$g"; wait "$g" 2>/dev/null || true
    fi
    if want relay; then
      log "round $round, $label: relay at $RATE/s"
      r1=$(start "$bin" gateway 7311 OMNIBIZ_BENCH_RELAY_ONLY=true); r2=$(start "$bin" gateway 7312 OMNIBIZ_BENCH_RELAY_ONLY=true)
      PIDS+=("$r1" "$r2"); wait_port 7311; wait_port 7312
      "$LT" fanout --tokens "$tokens" --url ws://127.0.0.1:7311 --senders-url ws://127.0.0.1:7312 --pairs "$PAIRS" \
        --rate "$RATE" --duration-secs "$DUR" --pids "$r1,$r2" --label "$label-relay" --out "$RESULTS"
      kill "$r1" "$r2"; wait "$r1" "$r2" 2>/dev/null || true
    fi
    if want stored; then
      log "round $round, $label: stored at $STORED/s"
      api=$(start "$bin" api 7300); g1=$(start "$bin" gateway 7301); g2=$(start "$bin" gateway 7302)
      PIDS+=("$api" "$g1" "$g2"); wait_port 7300; wait_port 7301; wait_port 7302
      "$LT" fanout --tokens "$tokens" --url ws://127.0.0.1:7301 --senders-url ws://127.0.0.1:7302 --pairs "$PAIRS" \
        --rate "$STORED" --duration-secs "$DUR" --pids "$g1,$g2" --label "$label-stored" --out "$RESULTS"
      kill "$api" "$g1" "$g2"; wait "$api" "$g1" "$g2" 2>/dev/null || true
    fi
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(label, key, scenario):
    v = [r["result"][key] for r in rows if r["label"] == label and r["scenario"] == scenario]
    return statistics.median(v) if v else float("nan")
print("| figure | A | B | B/A |")
print("|---|---|---|---|")
for name, key, la, lb, sc in [
    ("server KiB per idle connection", "server_rss_kib_per_connection", "A", "B", "connections"),
    ("relay: delivered per server CPU-second", "delivered_per_cpu_sec", "A-relay", "B-relay", "fanout"),
    ("relay: p99 ms", None, "A-relay", "B-relay", "fanout"),
    ("stored: delivered per gateway CPU-second", "delivered_per_cpu_sec", "A-stored", "B-stored", "fanout"),
    ("stored: p99 ms", None, "A-stored", "B-stored", "fanout"),
]:
    if not any(r["label"] == la for r in rows):
        continue
    if key is None:
        a = statistics.median([r["result"]["latency_ms"]["p99"] for r in rows if r["label"] == la])
        b = statistics.median([r["result"]["latency_ms"]["p99"] for r in rows if r["label"] == lb])
    else:
        a, b = med(la, key, sc), med(lb, key, sc)
    print(f"| {name} | {a:.3g} | {b:.3g} | {b / a:.3f} |")
# Each round's B/A: the noise between rounds beside the difference.
for la, lb, key in [("A-relay", "B-relay", "delivered_per_cpu_sec"), ("A-stored", "B-stored", "delivered_per_cpu_sec"),
                    ("A", "B", "server_rss_kib_per_connection")]:
    a = [r["result"][key] for r in rows if r["label"] == la]
    b = [r["result"][key] for r in rows if r["label"] == lb]
    if a:
        print(f"- {la} → {lb} {key}, per round B/A: " + ", ".join(f"{y / x:.3f}" for x, y in zip(a, b))
              + f"; means {statistics.mean(a):.4g} → {statistics.mean(b):.4g} ({statistics.mean(b) / statistics.mean(a):.3f})")
PY

#!/usr/bin/env bash
# The soak: 10 minutes of mixed load on one `api` and two gateways (release
# build, MongoDB-compatible server, Redis): 200 customers whose sockets leave
# and come back every 20–40 s (rejoining with lastSeq), 100 REST sends/s,
# typing, read receipts. Writes docs/bench-soak.md — memory and latency per
# minute, RSS growth, latency drift, losses — and puts it in BENCHMARKS.md.
#
#   SOAK_DURATION=600 SOAK_PAIRS=200 SOAK_RATE=100 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DUR=${SOAK_DURATION:-600}
PAIRS=${SOAK_PAIRS:-200}
RATE=${SOAK_RATE:-100}
OUT=$ROOT/target/soak
RESULTS=$OUT/results.jsonl
mkdir -p "$OUT"
rm -f "$RESULTS"
PIDS=()
log() { printf '[soak] %s\n' "$*" >&2; }
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop || true
}
trap cleanup EXIT

eval "$(scripts/services.sh start)"
log "building the dist binaries (what the image ships; Cargo.toml: profile.dist)"
cargo build --profile dist --quiet -p omnibiz -p omnibiz-loadtest
BIN=$ROOT/target/dist/omnibiz
LT=$ROOT/target/dist/omnibiz-loadtest
export JWT_SECRET=soak-secret-0123456789abcdef-0123456789 MONGODB_DATABASE=omnibiz_soak_$(date +%s) LOG_LEVEL=warn
export OMNIBIZ_CONNECT_RATE=1000000 OMNIBIZ_CONNECT_RATE_PER_IP=1000000 OMNIBIZ_SEND_RATE=1000000 OMNIBIZ_TYPING_RATE=1000000 OMNIBIZ_JOIN_RATE=1000000 OMNIBIZ_RECEIPT_RATE=1000000 OMNIBIZ_WRITE_RATE=1000000 OMNIBIZ_READ_RATE=1000000 OMNIBIZ_MAX_SOCKETS_PER_PRINCIPAL=1000000
"$BIN" seed --owners 1 --customers-per-owner "$PAIRS" --fresh-customers 0 --tokens-out "$OUT/tokens.json" >/dev/null

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; log "port $1 never opened"; return 1; }
start() { # start <target> <port> → echoes pid
  env PORT="$2" HOST=127.0.0.1 TOKIO_WORKER_THREADS=1 "$BIN" "$1" >"$OUT/$1-$2.log" 2>&1 &
  echo $!
}
api=$(start api 7400); g1=$(start gateway 7401); g2=$(start gateway 7402)
PIDS+=("$api" "$g1" "$g2")
for p in 7400 7401 7402; do wait_port "$p"; done
sleep 2
log "soak: ${DUR}s, $PAIRS conversations, $RATE REST sends/s, clients reconnecting every 20-40 s"
"$LT" soak --tokens "$OUT/tokens.json" --url ws://127.0.0.1:7401 --url ws://127.0.0.1:7402 \
  --api http://127.0.0.1:7400 --pairs "$PAIRS" --rate "$RATE" --duration-secs "$DUR" \
  --pids "$api,$g1,$g2" --label omnibiz --out "$RESULTS"

python3 - "$RESULTS" "$ROOT/docs/bench-soak.md" "$(git rev-parse --short HEAD)" "$DUR" "$PAIRS" "$RATE" <<'PY'
import json, sys, datetime
results, out, rev, dur, pairs, rate = sys.argv[1:]
r = json.loads(open(results).read().splitlines()[-1])["result"]
lines = [
    "<!-- soak -->",
    "## Soak",
    "",
    f"`scripts/soak.sh` on {datetime.date.today()} ({rev}, release build, one tokio worker per process): "
    f"{int(dur)//60} minutes on one `api` and two gateways over MongoDB and Redis — {pairs} customers whose sockets "
    f"leave and come back every 20–40 s (rejoining with `lastSeq`), {rate} REST sends/s from their owner, "
    "typing every 5 s, a read receipt every 10 messages.",
    "",
    f"- sent and acknowledged: {r['sent']}; **lost {r['lost']}, duplicated {r['duplicated']}**; reconnects {r['reconnects']}",
    f"- server RSS (api + 2 gateways), first minute → last minute: {r['rss_first_window_kib']/1024:.1f} MiB → "
    f"{r['rss_last_window_kib']/1024:.1f} MiB (**{r['rss_growth_pct']:+.1f} %**)",
    f"- delivery p99, first minute → last minute: {r['p99_first_window_ms']} ms → {r['p99_last_window_ms']} ms",
    "",
    "| minute | sends | p50 ms | p99 ms | RSS MiB |",
    "|---:|---:|---:|---:|---:|",
]
for w in r["windows"]:
    lines.append(f"| {w['minute']} | {w['sent']} | {w['p50_ms']} | {w['p99_ms']} | {w['rss_kib']/1024:.1f} |")
lines += ["", "<!-- /soak -->", ""]
open(out, "w").write("\n".join(lines))
PY
# BENCHMARKS.md keeps one soak section (scripts/bench.sh includes docs/bench-soak.md too).
python3 - "$ROOT/BENCHMARKS.md" "$ROOT/docs/bench-soak.md" <<'PY'
import re, sys
bench, soak = sys.argv[1:]
text, section = open(bench).read(), open(soak).read()
text = re.sub(r"<!-- soak -->.*?<!-- /soak -->\n?", "", text, flags=re.S).rstrip("\n") + "\n\n" + section
open(bench, "w").write(text)
PY
log "wrote docs/bench-soak.md and its section in BENCHMARKS.md"
cat "$ROOT/docs/bench-soak.md"

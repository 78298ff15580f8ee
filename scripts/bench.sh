#!/usr/bin/env bash
# One command, one run, every stack: builds the `dist` binaries (Cargo.toml), starts Redis and
# the MongoDB-compatible server (scripts/services.sh), our API and gateways,
# and the Node.js reference peer (loadtest/peer) on Node's HTTP server
# (node-peer) and on uWebSockets.js (node-uws, the tuned one), and the seed's
# whole stack, Express + socket.io + Mongoose storing every message on the
# same database (node-seed, loadtest/peer/seed.js), runs the same scenarios
# against each, measures the database's own insert rate beside the stored
# path, and writes BENCHMARKS.md.
#
# Knobs (environment):
#   BENCH_CONNECTIONS=10000  idle connections per single-process comparison
#   BENCH_FLEET=0            e.g. 100000: also hold that many across a gateway fleet
#   BENCH_PAIRS=200          conversations in the relay scenarios
#   BENCH_RATE=2000          offered messages/s in fanout and rest-send
#   BENCH_DURATION=10        seconds per relay run
#   BENCH_RAMP_MAX=50000     highest rate the ramp tries (from 1000, step 1000, 5 s each)
#   BENCH_STORED_RATE=200    sends/s of the side-by-side stored runs (ours and the seed's stack)
#   BENCH_STORED_SECS=30     seconds of each of those runs (long enough that the database's
#                            periodic work, a checkpoint, weighs the same on both)
#   BENCH_ROOMS="10 100 1000"  receivers per room in the large-room scenarios
#   BENCH_ROOM_DELIVERIES=10000  deliveries/s offered there (messages/s = this ÷ receivers)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${BENCH_CONNECTIONS:-10000}
FLEET=${BENCH_FLEET:-0}
PAIRS=${BENCH_PAIRS:-200}
RATE=${BENCH_RATE:-2000}
DUR=${BENCH_DURATION:-10}
RAMP_MAX=${BENCH_RAMP_MAX:-50000}
STORED_RATE=${BENCH_STORED_RATE:-200}
STORED_SECS=${BENCH_STORED_SECS:-30}
ROOMS=${BENCH_ROOMS:-10 100 1000}
ROOM_DELIVERIES=${BENCH_ROOM_DELIVERIES:-10000}
OUT=$ROOT/target/bench
RESULTS=$OUT/results.jsonl
mkdir -p "$OUT" "$ROOT/docs"
rm -f "$RESULTS"
PIDS=()

log() { printf '[bench] %s\n' "$*" >&2; }
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop || true
}
trap cleanup EXIT

eval "$(scripts/services.sh start)"
# The database server's PID (when services.sh started it): its CPU per
# message in the stored-path scenarios.
DBPID=$(cat "${OMNIBIZ_RUN:-$ROOT/target/services}/mongo.pid" 2>/dev/null || true)
log "building the dist binaries (what the image ships; Cargo.toml: profile.dist)"
cargo build --profile dist --quiet -p omnibiz -p omnibiz-loadtest
(cd loadtest/peer && npm ci --silent --no-audit --no-fund)
# The seed's Mongoose models live with the drop-in tests (tests/node/legacy/models.cjs).
(cd tests/node && npm ci --silent --no-audit --no-fund)
BIN=$ROOT/target/dist/omnibiz
LT=$ROOT/target/dist/omnibiz-loadtest

export JWT_SECRET=bench-secret-0123456789abcdef-0123456789
export MONGODB_DATABASE=omnibiz_bench_$(date +%s)
export LOG_LEVEL=warn
# Web Push for the notify scenario (every api pod: the same key, as in production).
OMNIBIZ_VAPID_PRIVATE_KEY=$(openssl ecparam -name prime256v1 -genkey -noout -outform DER | tail -c +8 | head -c 32 | base64 | tr '+/' '-_' | tr -d '=')
export OMNIBIZ_VAPID_PRIVATE_KEY OMNIBIZ_VAPID_SUBJECT=mailto:bench@example.com OMNIBIZ_WEBHOOK_ALLOW_PRIVATE=true
export OMNIBIZ_SEND_RATE=1000000 OMNIBIZ_TYPING_RATE=1000000 OMNIBIZ_JOIN_RATE=1000000 OMNIBIZ_RECEIPT_RATE=1000000 OMNIBIZ_WRITE_RATE=1000000 OMNIBIZ_READ_RATE=1000000 OMNIBIZ_MAX_SOCKETS_PER_PRINCIPAL=1000000 OMNIBIZ_MAX_CONNECTIONS=19900 OMNIBIZ_CONNECT_RATE=1000000 OMNIBIZ_CONNECT_RATE_PER_IP=1000000
SEEDN=$(( N > FLEET ? N : FLEET ))
OWNERS=$(( (SEEDN + 999) / 1000 ))
log "seeding $OWNERS owners x 1000 customers"
"$BIN" seed --owners "$OWNERS" --customers-per-owner 1000 --tokens-out "$OUT/tokens.json" >/dev/null

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; log "port $1 never opened"; return 1; }
start_ours() { # start_ours <target> <port> [env...]  → echoes pid
  local target=$1 port=$2; shift 2
  # One tokio worker per gateway: the shape of a 1-CPU pod, and of the
  # single-threaded peer process it is compared with.
  env PORT="$port" HOST=127.0.0.1 TOKIO_WORKER_THREADS=1 "$@" "$BIN" "$target" >"$OUT/$target-$port.log" 2>&1 &
  echo $!
}
start_peer() { # start_peer <port> [node|uws] → echoes pid
  PORT=$1 PEER_ENGINE=${2:-node} node "$ROOT/loadtest/peer/server.js" >"$OUT/peer-$1.log" 2>&1 &
  echo $!
}
start_seed() { # start_seed <port> → echoes pid (the seed's stack on our database)
  PORT=$1 node "$ROOT/loadtest/peer/seed.js" >"$OUT/seed-$1.log" 2>&1 &
  echo $!
}

# --- Idle connections: a fresh process per measurement, same N ------------------
ulimit -n "$(ulimit -Hn)" || true
# A server's RSS "before" is read once its start has settled, not the moment
# its port opens, so no start-up work is counted as the connections'. Every
# stack gets the same wait. (Measured: it did not move our gateway's
# baseline — 36.2 MB read at the port's opening, 35.3 MB after the wait, in
# two runs of the same build; the spread of RSS per connection between runs
# is in the "after".)
START_SETTLE=${BENCH_START_SETTLE:-3}
ready_idle() { wait_port "$1" && sleep "$START_SETTLE"; }
SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
WORKERS=$(( (N + 15999) / 16000 ))
pid=$(start_ours gateway 7120); PIDS+=("$pid"); ready_idle 7120
log "connections: omnibiz gateway (native Socket.IO layer), N=$N"
"$LT" connections --tokens "$OUT/tokens.json" --url ws://127.0.0.1:7120 --count "$N" --workers "$WORKERS" \
  --sources "$SOURCES" --pids "$pid" --label omnibiz --out "$RESULTS"
kill "$pid"
pid=$(start_peer 7220); PIDS+=("$pid"); ready_idle 7220
log "connections: node peer, N=$N"
"$LT" connections --tokens "$OUT/tokens.json" --url ws://127.0.0.1:7220 --count "$N" --workers "$WORKERS" \
  --sources "$SOURCES" --pids "$pid" --label node-peer --out "$RESULTS"
kill "$pid"
pid=$(start_peer 7230 uws); PIDS+=("$pid"); ready_idle 7230
log "connections: node peer on uWebSockets.js, N=$N"
"$LT" connections --tokens "$OUT/tokens.json" --url ws://127.0.0.1:7230 --count "$N" --workers "$WORKERS" \
  --sources "$SOURCES" --pids "$pid" --label node-uws --out "$RESULTS"
kill "$pid"
# At 3 000 connections too (the size of one busy tenant's gateway), each stack afresh.
for spec in "omnibiz gateway 7121" "node-peer node 7221" "node-uws uws 7231"; do
  set -- $spec
  if [ "$1" = omnibiz ]; then pid=$(start_ours gateway "$3"); else pid=$(start_peer "$3" "$2"); fi
  PIDS+=("$pid"); ready_idle "$3"
  log "connections: $1, N=3000"
  "$LT" connections --tokens "$OUT/tokens.json" --url "ws://127.0.0.1:$3" --count 3000 --workers 1 \
    --sources "$SOURCES" --pids "$pid" --label "$1@3k" --out "$RESULTS"
  kill "$pid"
done

# --- Relay: fanout across two nodes, ours (stored / relay-only) and the peer ------
g1=$(start_ours gateway 7101); g2=$(start_ours gateway 7102); api=$(start_ours api 7100)
r1=$(start_ours gateway 7111 OMNIBIZ_BENCH_RELAY_ONLY=true); r2=$(start_ours gateway 7112 OMNIBIZ_BENCH_RELAY_ONLY=true)
p1=$(start_peer 7201); p2=$(start_peer 7202); u1=$(start_peer 7211 uws); u2=$(start_peer 7212 uws)
# The seed's stack starts with the others: its Mongoose models build their
# indexes on the shared database before anything is measured, so both stored
# stacks write to the same collections with the same indexes.
s1=$(start_seed 7251); s2=$(start_seed 7252)
PIDS+=("$g1" "$g2" "$api" "$r1" "$r2" "$p1" "$p2" "$u1" "$u2" "$s1" "$s2")
for p in 7100 7101 7102 7111 7112 7201 7202 7211 7212 7251 7252; do wait_port "$p"; done
fan() { # fan <label> <receivers port> <senders port> <pids> <rate> [seconds]
  log "fanout: $1 at $5/s, $PAIRS pairs, ${6:-$DUR}s"
  "$LT" fanout --tokens "$OUT/tokens.json" --url "ws://127.0.0.1:$2" --senders-url "ws://127.0.0.1:$3" \
    --pairs "$PAIRS" --rate "$5" --duration-secs "${6:-$DUR}" --pids "$4" ${DB_PIDS:+--db-pids "$DB_PIDS" --db-uri "$MONGODB_URI"} \
    --label "$1" --out "$RESULTS"
}
fan node-peer 7201 7202 "$p1,$p2" "$RATE"
fan node-uws 7211 7212 "$u1,$u2" "$RATE"
fan omnibiz-relay 7111 7112 "$r1,$r2" "$RATE"

# --- Large rooms: one sender, N receivers (the owner's sockets) across gateways ---
room() { # room <label> <receivers port> <sender port> <pids> <receivers>
  local rate=$(( ROOM_DELIVERIES / $5 > 0 ? ROOM_DELIVERIES / $5 : 1 ))
  log "room: $1, $5 receivers, $rate msgs/s, ${DUR}s"
  "$LT" room --tokens "$OUT/tokens.json" --url "ws://127.0.0.1:$2" --senders-url "ws://127.0.0.1:$3" \
    --receivers "$5" --rate "$rate" --duration-secs "$DUR" --pids "$4" --label "$1" --out "$RESULTS"
}
for n in $ROOMS; do
  room node-peer 7201 7202 "$p1,$p2" "$n"
  room node-uws 7211 7212 "$u1,$u2" "$n"
  room omnibiz-relay 7111 7112 "$r1,$r2" "$n"
done

# --- The stored path against the database's own ceiling ---------------------------
log "raw-insert: the driver inserting our message documents into the same server"
"$LT" raw-insert --mongodb "$MONGODB_URI" --database "$MONGODB_DATABASE" --duration-secs "$DUR" ${DBPID:+--pids "$DBPID"} \
  --out "$RESULTS"
RAW=$(tail -n 1 "$RESULTS" | sed -E 's/.*"inserts_per_sec":([0-9.]+).*/\1/'); RAW=${RAW%.*}
PAIR=$(tail -n 1 "$RESULTS" | sed -E 's/.*"pairs_per_sec":([0-9.]+).*/\1/'); PAIR=${PAIR%.*}
HALF=$(( RAW / 2 ))
log "raw insert rate: $RAW/s; stored sends at half of it: $HALF/s"
# A stack that fell behind keeps working off its backlog after a run: wait
# until its processes and the database are idle before the next one.
cpu_ticks() { # cpu_ticks <pid>...: their user + system CPU, in clock ticks
  local files=(); for p in "$@"; do [ -r "/proc/$p/stat" ] && files+=("/proc/$p/stat"); done
  [ ${#files[@]} -gt 0 ] && awk '{ s += $14 + $15 } END { print s + 0 }' "${files[@]}" || echo 0
}
settle() { # settle <pid>...
  local before after
  for _ in $(seq 1 120); do
    before=$(cpu_ticks "$@")
    sleep 1
    after=$(cpu_ticks "$@")
    [ $(( after - before )) -lt 10 ] && return 0
  done
}
rest_send() { # rest_send <label> <api port> <receivers port> <pids> <rate> [seconds]
  log "rest-send: $1, API → MongoDB → Redis → socket, at $5/s"
  "$LT" rest-send --tokens "$OUT/tokens.json" --api "http://127.0.0.1:$2" --url "ws://127.0.0.1:$3" \
    --pairs "$PAIRS" --rate "$5" --duration-secs "${6:-$DUR}" --pids "$4" ${DBPID:+--db-pids "$DBPID" --db-uri "$MONGODB_URI"} --label "$1" \
    --out "$RESULTS"
}
# Ours at half the raw insert rate (about the database's own send-pair rate),
# then at twice the pair rate (overload: what is not accepted is refused).
DB_PIDS="$DBPID" fan omnibiz 7101 7102 "$g1,$g2" "$HALF"
rest_send omnibiz 7100 7101 "$api,$g1" "$HALF"
settle ${DBPID:-} "$g1" "$g2" "$api"
DB_PIDS="$DBPID" fan omnibiz@2x 7101 7102 "$g1,$g2" "$(( PAIR * 2 ))"
settle ${DBPID:-} "$g1" "$g2"
rest_send omnibiz@2x 7100 7101 "$api,$g1" "$(( PAIR * 2 ))"
# Side by side with the seed's stack at one fixed rate both can take, same database.
settle ${DBPID:-} "$g1" "$g2" "$api"
DB_PIDS="$DBPID" fan omnibiz@fixed 7101 7102 "$g1,$g2" "$STORED_RATE" "$STORED_SECS"
settle ${DBPID:-} "$g1" "$g2"
DB_PIDS="$DBPID" fan node-seed@fixed 7251 7252 "$s1,$s2" "$STORED_RATE" "$STORED_SECS"
settle ${DBPID:-} "$s1" "$s2"
rest_send omnibiz@fixed 7100 7101 "$api,$g1" "$STORED_RATE" "$STORED_SECS"
settle ${DBPID:-} "$api" "$g1"
rest_send node-seed@fixed 7252 7251 "$s1,$s2" "$STORED_RATE" "$STORED_SECS"
settle ${DBPID:-} "$s1" "$s2"
# The highest stored rate with p99 <= 50 ms, over REST and over sockets, both
# stacks from the same start and step (the seed's stack breaks early: a low start).
START=$(( RAW / 32 > 25 ? RAW / 32 : 25 )); STEP=$START
stored_ramp() { # stored_ramp <label> <receivers port> <pids> (--api URL | --senders-url URL)
  local label=$1 port=$2 pids=$3; shift 3
  log "stored ramp: $label $*"
  "$LT" ramp --tokens "$OUT/tokens.json" --url "ws://127.0.0.1:$port" "$@" \
    --pairs "$PAIRS" --rate "$START" --step "$STEP" --max-rate "$(( RAW * 2 ))" --duration-secs 5 --p99-ms 50 \
    --pids "$pids" ${DBPID:+--db-pids "$DBPID"} --label "$label" --out "$RESULTS"
}
stored_ramp omnibiz 7101 "$api,$g1" --api http://127.0.0.1:7100
settle ${DBPID:-} "$api" "$g1"
stored_ramp node-seed 7251 "$s1,$s2" --api http://127.0.0.1:7252
settle ${DBPID:-} "$s1" "$s2"
stored_ramp omnibiz 7101 "$g1,$g2" --senders-url ws://127.0.0.1:7102
settle ${DBPID:-} "$g1" "$g2"
stored_ramp node-seed 7251 "$s1,$s2" --senders-url ws://127.0.0.1:7252
settle ${DBPID:-} "$s1" "$s2"

# --- Notifications: REST sends to offline customers without and with Web Push -------
# Every api pod has the VAPID key (exported above) and may post to the loadtest's
# push sink on loopback; a second api pod takes the sends, both run the worker.
npod=$(start_ours api 7110 OMNIBIZ_WEBHOOK_POLL_MS=50); PIDS+=("$npod"); wait_port 7110
log "notify: offline customers, without and with a push subscription each, then a burst of 10 000"
"$LT" notify --tokens "$OUT/tokens.json" --api http://127.0.0.1:7110 --pairs "$PAIRS" --rate "$(( HALF / 4 ))" \
  --duration-secs "$DUR" --burst 10000 --mongodb "$MONGODB_URI" --database "$MONGODB_DATABASE" \
  --pids "$api,$npod${DBPID:+,$DBPID}" --label omnibiz --out "$RESULTS"
kill "$npod"

# Saturation, pinned: the servers (both of a stack's processes, and Redis)
# on one core, the load generator on the other, for every stack alike — so
# the box's shared CPU stops deciding the result (with 2 cores).
REDISPID=$(cat "${OMNIBIZ_RUN:-$ROOT/target/services}/redis.pid" 2>/dev/null || true)
SERVER_CPU=$(( $(nproc) - 1 ))
pin() { # pin <cpu list> <pid>...: every thread of each process
  local cpus=$1; shift
  for p in "$@"; do [ -n "$p" ] && taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1 || true; done
}
ramp() {
  log "ramp (pinned: servers on CPU $SERVER_CPU, load generator on the rest): $1"
  pin "$SERVER_CPU" ${REDISPID:-} ${4//,/ }
  taskset -c "0-$(( SERVER_CPU > 0 ? SERVER_CPU - 1 : 0 ))" "$LT" ramp --tokens "$OUT/tokens.json" --url "ws://127.0.0.1:$2" --senders-url "ws://127.0.0.1:$3" \
    --pairs "$PAIRS" --rate 1000 --step 1000 --max-rate "$RAMP_MAX" --duration-secs 5 --p99-ms 50 \
    --pids "$4" --label "$1" --out "$RESULTS"
  pin "0-$SERVER_CPU" ${REDISPID:-} ${4//,/ }
}
ramp node-peer 7201 7202 "$p1,$p2"
ramp node-uws 7211 7212 "$u1,$u2"
ramp omnibiz-relay 7111 7112 "$r1,$r2"
log "forwarding: a polling request sent to the gateway holding its session, then to another one"
"$LT" forwarding --tokens "$OUT/tokens.json" --owner http://127.0.0.1:7101 --other http://127.0.0.1:7102 \
  --requests 3000 --pids "$g1,$g2" --label omnibiz --out "$RESULTS"
log "redis-raw: the physical limit"
"$LT" redis-raw --redis "$REDIS_URL" --messages 200000 --size 400 --out "$RESULTS"
kill "$g1" "$g2" "$api" "$r1" "$r2" "$p1" "$p2" "$u1" "$u2" "$s1" "$s2" 2>/dev/null || true

# --- Optional: the fleet (several gateways on one Redis, one number) --------------
if [ "$FLEET" -gt 0 ]; then
  GW=$(( (FLEET + 16999) / 17000 )); URLS=(); FPIDS=()
  for i in $(seq 1 "$GW"); do
    port=$(( 7300 + i )); pid=$(start_ours gateway "$port"); FPIDS+=("$pid"); PIDS+=("$pid"); URLS+=(--url "ws://127.0.0.1:$port")
  done
  for i in $(seq 1 "$GW"); do wait_port $(( 7300 + i )); done
  log "fleet: $FLEET connections over $GW gateways"
  # One loopback source address per 20 000 sockets: each gives ≈ 28 000
  # ephemeral ports, and a port search near exhaustion costs the kernel dearly.
  FSRC=$(for i in $(seq 2 $(( FLEET / 20000 + 3 ))); do printf '127.0.0.%s,' "$i"; done); FSRC=${FSRC%,}
  "$LT" connections --tokens "$OUT/tokens.json" "${URLS[@]}" --count "$FLEET" --workers "$(( (FLEET + 15999) / 16000 ))" \
    --sources "$FSRC" --concurrency 100 \
    --pids "$(IFS=,; echo "${FPIDS[*]}")" --label "omnibiz-fleet" --out "$RESULTS"
  # The gateways' own timing of those handshakes (connection opened → first
  # CONNECT accepted, what the 45 s deadline bounds), summed over the fleet.
  for i in $(seq 1 "$GW"); do curl -sf "http://127.0.0.1:$(( 7300 + i ))/metrics" || true; done | awk '
    /^gateway_handshake_duration_seconds_count / { n += $2 }
    /^gateway_handshake_duration_seconds_sum / { s += $2 }
    /^gateway_handshake_duration_seconds_bucket\{le="10"\} / { t += $2 }
    /^gateway_connections_refused_total\{reason="handshake_timeout"\} / { r += $2 }
    END { printf "{\"label\":\"omnibiz-fleet\",\"scenario\":\"fleet-handshakes\",\"params\":{},\"result\":{\"handshakes\":%d,\"mean_ms\":%.1f,\"over_10s\":%d,\"timed_out\":%d}}\n", n, (n ? 1000 * s / n : 0), n - t, r }' >>"$RESULTS"
  kill "${FPIDS[@]}" 2>/dev/null || true
fi

# --- BENCHMARKS.md ----------------------------------------------------------------
"$LT" report --results "$RESULTS" --plot docs/bench-latency.svg >"$OUT/tables.md"
{
  echo "# Benchmarks"
  echo
  echo "Generated by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) — every stack measured in the same run, on the same machine,"
  echo "load generator included. Absolute numbers on a 2-core box are noisy; read the ratios."
  echo
  echo "## Machine and versions"
  echo
  echo "- CPU: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), memory $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr)"
  echo "- $(rustc --version), node $(node --version), $(redis-server --version | cut -d' ' -f1-3), MongoDB-compatible server: secantus-mdb 0.5.3-beta.196"
  echo "- Node peers (loadtest/peer/server.js): socket.io 4.8.1 + @socket.io/redis-adapter 8.3.0 + redis 4.7.0 on Node's HTTP server (**node-peer**, the seed's real-time layer) and on uWebSockets.js through \`io.attachApp\` (**node-uws**, tuned: @trufflesuite/uws-js-unofficial 20.30.0, the build that loads on Node 20)"
  echo "- OmniBiz: $(git rev-parse --short HEAD), \`dist\` build (release with fat LTO and one codegen unit, what the image ships); Socket.IO and WebSocket layers: our own (the \`sio\` crate); each of our processes runs one tokio worker thread (\`TOKIO_WORKER_THREADS=1\`, as in a 1-CPU pod; each Node process is single-threaded too)"
  echo
  echo "## What is compared"
  echo
  echo "- **omnibiz**: the product as deployed: every \`send_message\` is validated, stored in MongoDB (seq assigned atomically), then published."
  echo "- **omnibiz-relay**: the same gateway with \`OMNIBIZ_BENCH_RELAY_ONLY=true\`: validated and relayed, not stored — like for like with the peer, which has no database."
  echo "- **node-peer**: the seed's real-time layer, no database. **node-uws**: the same application on uWebSockets.js, no database."
  echo "- **node-seed**: the seed's whole stack (loadtest/peer/seed.js): Express + socket.io 4.8.1 + Redis adapter + Mongoose $(node -p 'require("./tests/node/node_modules/mongoose/package.json").version') with the seed's models, storing each message and updating its conversation (\`lastMessage\`, \`unreadCount\`) as the Node service does, two nodes, on the same database as ours."
  echo "- **raw-insert**: the same driver inserting our message documents (same indexes) into the same MongoDB-compatible server, 16 in flight (one API process's append slots): the stored path's ceiling. A stored send is that insert plus the \`seq\` update."
  echo "- Relay scenarios are cross-node: receivers (owners) on node 1, senders (customers) on node 2, one Redis."
  echo "- Server CPU is read from /proc for the server processes only; memory per connection is (RSS after − RSS before) ÷ connections: before is read $START_SETTLE s after the server's port opens, after 4 s after the last connect."
  echo
  echo "## Commands"
  echo
  echo '```'
  echo "BENCH_CONNECTIONS=$N BENCH_FLEET=$FLEET BENCH_PAIRS=$PAIRS BENCH_RATE=$RATE BENCH_DURATION=$DUR scripts/bench.sh"
  echo '```'
  echo
  echo "## Results"
  echo
  cat "$OUT/tables.md"
  echo
  if [ -f "$ROOT/docs/bench-notes.md" ]; then cat "$ROOT/docs/bench-notes.md"; fi
  # The soak (scripts/soak.sh, 10 minutes) keeps its last figures across bench runs.
  if [ -f "$ROOT/docs/bench-soak.md" ]; then echo; cat "$ROOT/docs/bench-soak.md"; fi
} >"$ROOT/BENCHMARKS.md"
log "wrote BENCHMARKS.md (raw results: $RESULTS)"

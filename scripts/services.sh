#!/usr/bin/env bash
# Start or stop the real services the tests and benchmarks need, on non-default
# ports, installing them on first use:
#   - Redis 7 from Debian's packages (port 6390)
#   - secantus-mdb, a MongoDB wire-compatible server (port 27117), built once with
#     `cargo install` into $OMNIBIZ_TOOLS and reused afterwards. It is GPL-2.0 and
#     only ever runs as a separate process: nothing of it is linked into our code.
#
# With OMNIBIZ_REDIS_CLUSTER=1 it also starts a 3-master Redis Cluster on ports
# 7001-7003 (REDIS_CLUSTER_URL), for the sharded pub/sub tests.
#
# Usage: scripts/services.sh start|stop|env|browser|ops-tools
#   (browser: install Debian's chromium; ops-tools: HAProxy, nginx, Prometheus)
# When REDIS_URL / MONGODB_URI are already set, the matching service is left
# alone and the given URL is used instead (e.g. a real mongod).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${OMNIBIZ_RUN:-$ROOT/target/services}
TOOLS=${OMNIBIZ_TOOLS:-$HOME/.cache/omnibiz-tools}
REDIS_PORT=${OMNIBIZ_REDIS_PORT:-6390}
MONGO_PORT=${OMNIBIZ_MONGO_PORT:-27117}
SECANTUS_VERSION=0.5.3-beta.196

log() { printf '[services] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  log "installing $* from Debian's packages"
  as_root apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
}

ensure_mongo() {
  if [ -x "$TOOLS/bin/secantusd-rs" ]; then return; fi
  command -v cmake >/dev/null 2>&1 || apt_install cmake
  log "building secantus-mdb $SECANTUS_VERSION into $TOOLS (once; ~6 min on 2 cores)"
  cargo install secantus-mdb --version "$SECANTUS_VERSION" --locked \
    --ignore-rust-version --root "$TOOLS" --quiet
}

wait_for() { # wait_for <what> <command...>
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up; see $RUN"
  return 1
}

start() {
  mkdir -p "$RUN"
  if [ -z "${REDIS_URL:-}" ]; then
    ensure_redis
    if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
      redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$RUN/redis.log"
      wait_for redis redis-cli -p "$REDIS_PORT" ping
      log "redis on 127.0.0.1:$REDIS_PORT"
    fi
    echo "export REDIS_URL=redis://127.0.0.1:$REDIS_PORT" >"$RUN/redis.env"
  fi
  if [ -z "${MONGODB_URI:-}" ]; then
    ensure_mongo
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$MONGO_PORT") 2>/dev/null; then
      rm -rf "$RUN/mongo-data"; mkdir -p "$RUN/mongo-data"
      "$TOOLS/bin/secantusd-rs" --host 127.0.0.1 --port "$MONGO_PORT" \
        --storage-path "$RUN/mongo-data" --cache-size 256M --log-file-max 16MB \
        >"$RUN/mongo.log" 2>&1 &
      echo $! >"$RUN/mongo.pid"
      wait_for mongodb bash -c "exec 3<>/dev/tcp/127.0.0.1/$MONGO_PORT"
      log "mongodb-compatible server on 127.0.0.1:$MONGO_PORT"
    fi
    echo "export MONGODB_URI='mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true'" >"$RUN/mongo.env"
  fi
  if [ -n "${OMNIBIZ_REDIS_CLUSTER:-}" ] && [ -z "${REDIS_CLUSTER_URL:-}" ]; then
    start_cluster
  fi
}

start_cluster() {
  ensure_redis
  local ports=(7001 7002 7003)
  if redis-cli -p 7001 cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
    echo "export REDIS_CLUSTER_URL=redis-cluster://127.0.0.1:7001" >"$RUN/cluster.env"
    return
  fi
  for p in "${ports[@]}"; do
    mkdir -p "$RUN/cluster-$p"
    (cd "$RUN/cluster-$p" && rm -f nodes.conf && redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file nodes.conf --save "" --appendonly no --daemonize yes \
      --pidfile "$RUN/cluster-$p.pid" --logfile "$RUN/cluster-$p.log")
    wait_for "redis cluster node $p" redis-cli -p "$p" ping
  done
  redis-cli --cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 --cluster-replicas 0 --cluster-yes >"$RUN/cluster-create.log" 2>&1
  for _ in $(seq 1 100); do
    redis-cli -p 7001 cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  log "redis cluster on 127.0.0.1:7001-7003"
  echo "export REDIS_CLUSTER_URL=redis-cluster://127.0.0.1:7001" >"$RUN/cluster.env"
}

stop() {
  for p in 7001 7002 7003; do
    if [ -f "$RUN/cluster-$p.pid" ]; then
      redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$RUN/cluster-$p.pid")" 2>/dev/null || true
      rm -f "$RUN/cluster-$p.pid"
    fi
  done
  rm -f "$RUN/cluster.env"
  if [ -f "$RUN/redis.pid" ]; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$RUN/redis.pid")" 2>/dev/null || true
    rm -f "$RUN/redis.pid" "$RUN/redis.env"
  fi
  if [ -f "$RUN/mongo.pid" ]; then
    local pid; pid=$(cat "$RUN/mongo.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$RUN/mongo.pid" "$RUN/mongo.env"
  fi
}

env_lines() { cat "$RUN"/*.env 2>/dev/null || true; }

# Debian's Chromium, driven by playwright-core in tests/e2e/browser.rs.
ensure_browser() {
  command -v chromium >/dev/null 2>&1 || apt_install chromium
}

# Real balancers and Prometheus, run by the tests themselves on free ports
# (tests/e2e/balancers.rs, tests/e2e/prometheus.rs): Debian's packages. The
# packages' own services are not started (the tests start their own).
ensure_ops_tools() {
  command -v haproxy >/dev/null 2>&1 || apt_install haproxy
  command -v nginx >/dev/null 2>&1 || apt_install nginx-light
  command -v prometheus >/dev/null 2>&1 || apt_install prometheus
}

# An S3-protocol server for the attachment tests (tests/e2e/attachments.rs start
# their own, on free ports): moto's server from PyPI, pinned, in its own venv.
MOTO_VERSION=5.2.5
ensure_moto() {
  local venv=$TOOLS/moto-venv
  if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$venv/.version" 2>/dev/null)" != "$MOTO_VERSION" ]; then
    log "installing moto[server]==$MOTO_VERSION into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
    echo "$MOTO_VERSION" >"$venv/.version"
  fi
  echo "export OMNIBIZ_MOTO_BIN=$venv/bin/moto_server"
}

# Independent implementations the notification tests check us against
# (tests/push/receiver.py decrypts Web Push with Mozilla's http_ece and checks
# VAPID with py_vapid; the email tests run aiosmtpd): pinned, in their own venv.
NOTIFY_TOOLS="http-ece==1.2.1 py-vapid==1.9.6 aiosmtpd==1.4.6"
ensure_notify_tools() {
  local venv=$TOOLS/notify-venv
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.version" 2>/dev/null)" != "$NOTIFY_TOOLS" ]; then
    log "installing $NOTIFY_TOOLS into $venv"
    python3 -m venv "$venv" >&2
    # shellcheck disable=SC2086 # one word per package
    "$venv/bin/pip" install --quiet --disable-pip-version-check $NOTIFY_TOOLS >&2
    echo "$NOTIFY_TOOLS" >"$venv/.version"
  fi
  echo "export OMNIBIZ_NOTIFY_PYTHON=$venv/bin/python"
}

case "${1:-}" in
  start) start; env_lines ;;
  browser) ensure_browser ;;
  ops-tools) ensure_ops_tools ;;
  # The chaos suite starts, kills and restarts its own Redis and MongoDB-compatible
  # server: make sure both programs are installed, whatever MONGODB_URI/REDIS_URL say.
  chaos-tools) ensure_redis; ensure_mongo; echo "export OMNIBIZ_SECANTUS_BIN=$TOOLS/bin/secantusd-rs" ;;
  s3-tools) ensure_moto ;;
  notify-tools) ensure_notify_tools ;;
  stop) stop ;;
  env) env_lines ;;
  *) echo "usage: $0 start|stop|env|browser|ops-tools|chaos-tools|s3-tools|notify-tools" >&2; exit 2 ;;
esac

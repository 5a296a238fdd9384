#!/usr/bin/env bash
# Runs a real Conductor OSS server (Spring Boot jar from Maven Central) on loopback, backed by
# a private PostgreSQL cluster, for the contract tests.
#
#   scripts/conductor_oss.sh start   # fetch jar (cached), start postgres + conductor, print URL
#   scripts/conductor_oss.sh stop    # stop both
#   scripts/conductor_oss.sh url     # print the URL of a running server (exit 1 if none)
#   scripts/conductor_oss.sh status
#
# Environment:
#   CONDUCTOR_OSS_VERSION   jar version to use (default 3.21.22; when Maven Central does not
#                           have it, the fallbacks in CONDUCTOR_OSS_FALLBACKS are tried)
#   CONDUCTOR_OSS_HOME      state dir (default $HOME/.cache/perago/conductor-oss)
#   CONDUCTOR_OSS_PORT      server port (default: a free one)
#   CONDUCTOR_OSS_START_TIMEOUT  seconds to wait for /health (default 240)
#
# Exit codes: 0 ok, 1 failure, 3 a prerequisite (java, mvn, postgres) is missing.
set -euo pipefail

VERSION="${CONDUCTOR_OSS_VERSION:-3.21.22}"
FALLBACKS="${CONDUCTOR_OSS_FALLBACKS:-3.21.14}"
CACHE="${PERAGO_CACHE_DIR:-$HOME/.cache/perago}"
HOME_DIR="${CONDUCTOR_OSS_HOME:-$CACHE/conductor-oss}"
START_TIMEOUT="${CONDUCTOR_OSS_START_TIMEOUT:-240}"
# PostgreSQL refuses to run as root: as root the cluster lives in the postgres user's home,
# which that user can reach without loosening permissions on ours.
if [[ $(id -u) -eq 0 ]]; then
  PG_DIR="${CONDUCTOR_OSS_PG_DIR:-$(getent passwd postgres 2>/dev/null | cut -d: -f6)/perago-conductor-oss}"
else
  PG_DIR="${CONDUCTOR_OSS_PG_DIR:-$HOME_DIR/pg}"
fi
PGDATA_DIR="$PG_DIR/data"
PG_PORT_FILE="$HOME_DIR/pg.port"
PORT_FILE="$HOME_DIR/server.port"
PID_FILE="$HOME_DIR/server.pid"
LOG_FILE="$HOME_DIR/server.log"
CONF_FILE="$HOME_DIR/conductor.properties"

die() { echo "conductor_oss: $*" >&2; exit 1; }
missing() { echo "conductor_oss: $*" >&2; exit 3; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

pg_bin() {
  local name="$1"
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  local found
  found=$(ls -1d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n1 || true)
  [[ -n "$found" ]] && echo "$found"
}

# Runs a command as the unprivileged cluster owner when we are root (postgres refuses root).
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

server_url() {
  [[ -f "$PORT_FILE" ]] || return 1
  echo "http://127.0.0.1:$(cat "$PORT_FILE")"
}

server_running() {
  [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

healthy() {
  local url
  url=$(server_url) || return 1
  curl -fsS -m 3 "$url/health" >/dev/null 2>&1
}

fetch_jar() {
  command -v java >/dev/null 2>&1 || missing "java not found (Conductor needs Java 17: apt-get install -y openjdk-17-jre-headless)"
  mkdir -p "$CACHE"
  local v
  for v in "$VERSION" $FALLBACKS; do
    local jar="$CACHE/conductor-server-$v-boot.jar"
    if [[ -s "$jar" ]]; then echo "$jar"; return; fi
  done
  command -v mvn >/dev/null 2>&1 || missing "mvn not found (needed once to fetch the Conductor jar: apt-get install -y maven)"
  for v in "$VERSION" $FALLBACKS; do
    local jar="$CACHE/conductor-server-$v-boot.jar"
    if mvn -q dependency:copy "-Dartifact=org.conductoross:conductor-server:$v:jar:boot" \
      "-DoutputDirectory=$CACHE" >"$CACHE/mvn-$v.log" 2>&1 && [[ -s "$jar" ]]; then
      [[ "$v" != "$VERSION" ]] && echo "conductor_oss: $VERSION not on Maven Central, using $v" >&2
      echo "$jar"
      return
    fi
  done
  die "could not fetch org.conductoross:conductor-server:$VERSION:jar:boot (see $CACHE/mvn-$VERSION.log)"
}

start_postgres() {
  local initdb pg_ctl
  initdb=$(pg_bin initdb || true)
  pg_ctl=$(pg_bin pg_ctl || true)
  if [[ -z "$initdb" || -z "$pg_ctl" ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "conductor_oss: installing postgresql" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 || true
      initdb=$(pg_bin initdb || true)
      pg_ctl=$(pg_bin pg_ctl || true)
    fi
  fi
  [[ -n "$initdb" && -n "$pg_ctl" ]] || missing "PostgreSQL not found (apt-get install -y postgresql)"
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || missing "no postgres user to own the database cluster"
    [[ "$PG_DIR" != /perago-conductor-oss ]] || missing "the postgres user has no home directory"
  fi
  mkdir -p "$PG_DIR"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$PG_DIR"
  if [[ ! -f "$PGDATA_DIR/PG_VERSION" ]]; then
    rm -rf "$PGDATA_DIR"
    as_owner "$initdb" -D "$PGDATA_DIR" -U conductor --auth=trust -E UTF8 >"$HOME_DIR/initdb.log" 2>&1 ||
      die "initdb failed: $(tail -n 5 "$HOME_DIR/initdb.log")"
  fi
  if as_owner "$pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    return
  fi
  local port
  port=$(free_port)
  echo "$port" >"$PG_PORT_FILE"
  as_owner "$pg_ctl" -D "$PGDATA_DIR" -l "$PG_DIR/postgres.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $PG_DIR" start >/dev/null ||
    die "postgres did not start: $(tail -n 5 "$PG_DIR/postgres.log" 2>/dev/null)"
  # Create the database (ignore "already exists").
  local psql
  psql=$(pg_bin psql || true)
  [[ -n "$psql" ]] || missing "psql not found"
  "$psql" -h 127.0.0.1 -p "$port" -U conductor -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='conductor'" | grep -q 1 ||
    "$psql" -h 127.0.0.1 -p "$port" -U conductor -d postgres -qc "CREATE DATABASE conductor" >/dev/null
}

write_conf() {
  local pg_port="$1" port="$2"
  cat >"$CONF_FILE" <<EOF
conductor.db.type=postgres
conductor.queue.type=postgres
spring.datasource.url=jdbc:postgresql://127.0.0.1:${pg_port}/conductor
spring.datasource.username=conductor
spring.datasource.password=conductor
conductor.postgres.deadlockRetryMax=3
conductor.indexing.enabled=false
conductor.elasticsearch.clusterHealthColor=yellow
loadSample=false
conductor.app.ownerEmailMandatory=false
conductor.workflow-execution-lock.type=local_only
conductor.app.workflow-execution-lock-enabled=false
conductor.external-payload-storage.type=dummy
server.address=127.0.0.1
server.port=${port}
management.health.redis.enabled=false
EOF
}

cmd_start() {
  mkdir -p "$HOME_DIR"
  if server_running && healthy; then
    server_url
    return
  fi
  local jar
  jar=$(fetch_jar)
  start_postgres
  local port
  port="${CONDUCTOR_OSS_PORT:-$(free_port)}"
  echo "$port" >"$PORT_FILE"
  write_conf "$(cat "$PG_PORT_FILE")" "$port"
  if server_running; then kill "$(cat "$PID_FILE")" 2>/dev/null || true; fi
  (
    cd "$HOME_DIR"
    exec setsid java -Xms256m -Xmx1g -DCONDUCTOR_CONFIG_FILE="$CONF_FILE" -jar "$jar" \
      --server.port="$port" --server.address=127.0.0.1 >"$LOG_FILE" 2>&1 </dev/null
  ) &
  echo $! >"$PID_FILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until healthy; do
    if ! server_running; then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "conductor exited during start-up (log: $LOG_FILE)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "conductor not healthy after ${START_TIMEOUT}s (log: $LOG_FILE)"
    fi
    sleep 2
  done
  server_url
}

cmd_stop() {
  if server_running; then
    local pid
    pid=$(cat "$PID_FILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  local pg_ctl
  pg_ctl=$(pg_bin pg_ctl || true)
  if [[ -n "$pg_ctl" && -f "$PGDATA_DIR/PG_VERSION" ]]; then
    as_owner "$pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  url)
    if server_running && healthy; then server_url; else die "not running"; fi
    ;;
  status)
    if server_running && healthy; then echo "running at $(server_url)"; else echo "stopped"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|url|status" >&2
    exit 2
    ;;
esac

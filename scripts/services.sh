#!/usr/bin/env bash
# Bring up, check and stop the real services soar's tests use:
#   es      Elasticsearch 9 (Maven Central integ-test zip) on 127.0.0.1:9200, as an unprivileged user
#   redis   Debian's redis-server on 127.0.0.1:6379
#   worker  a Celery worker of soar's own app (needs the project's virtualenv)
#   lab     SSH test hosts in network namespaces (scripts/lab.sh), root only
#   telemetry  the lab hosts' own auth logs -> rsyslog -> Elasticsearch as system.auth (scripts/lab_telemetry.sh), root only
#   slack   the Slack Web API stand-in on loopback (scripts/slack_standin.py)
# Usage: scripts/services.sh up|down|status|restart [component...]   (default: all)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ES_VERSION=${SOARDEV_ES_VERSION:-9.5.0}
ES_PORT=${SOARDEV_ES_PORT:-9200}
REDIS_PORT=${SOARDEV_REDIS_PORT:-6379}
SERVICES_DIR=${SOARDEV_SERVICES_DIR:-/var/lib/soar-services}
RUN_DIR=$ROOT/.cache/run
CACHE_DIR=$ROOT/.cache/es
ES_USER=soar-es
ES_HOME=$SERVICES_DIR/elasticsearch-$ES_VERSION
ES_DATA=$SERVICES_DIR/es-data
VENV=${SOARDEV_VENV:-$ROOT/.venv}
ALL=(redis es worker lab telemetry slack)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
mkdir -p "$RUN_DIR"

pid_alive() {  # a zombie is not alive
  [ -f "$1" ] || return 1
  local stat; stat=$(ps -o stat= -p "$(cat "$1")" 2>/dev/null) || return 1
  [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ]
}

apt_install() { "$ROOT/scripts/ensure_packages.sh" "$@" || die "could not install $*"; }

find_jdk() {
  # Debian keeps JVMs in /usr/lib/jvm; Elasticsearch 9 needs Java >= 21.
  local best="" best_major=0 dir major
  for dir in ${SOARDEV_ES_JAVA_HOME:-} /usr/lib/jvm/*; do
    [ -x "$dir/bin/java" ] || continue
    major=$("$dir/bin/java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1)
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if [ "$major" -ge 21 ] && [ "$major" -gt "$best_major" ]; then best=$dir; best_major=$major; fi
  done
  if [ -z "$best" ]; then
    log "no JDK >= 21 in /usr/lib/jvm; installing Debian's default JDK headless"
    apt_install default-jdk-headless
    for dir in /usr/lib/jvm/*; do
      major=$("$dir/bin/java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1)
      if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -ge 21 ]; then best=$dir; fi
    done
  fi
  [ -n "$best" ] || die "Elasticsearch $ES_VERSION needs a JDK >= 21; none found in /usr/lib/jvm"
  echo "$best"
}

es_fetch() {
  local zip=$CACHE_DIR/elasticsearch-$ES_VERSION.zip
  if [ ! -f "$zip" ]; then
    command -v mvn >/dev/null || apt_install maven
    mkdir -p "$CACHE_DIR"
    log "fetching Elasticsearch $ES_VERSION (integ-test zip) from Maven Central"
    mvn -q -B dependency:copy \
      -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
      -DoutputDirectory="$CACHE_DIR" >&2 || die "could not fetch the Elasticsearch $ES_VERSION zip with mvn"
  fi
  echo "$zip"
}

es_install() {
  [ -x "$ES_HOME/bin/elasticsearch" ] && return 0
  local zip tmp
  zip=$(es_fetch)
  command -v unzip >/dev/null || apt_install unzip
  command -v curl >/dev/null || apt_install curl
  mkdir -p "$SERVICES_DIR"
  tmp=$(mktemp -d "$SERVICES_DIR/.unzip.XXXXXX")
  unzip -q "$zip" -d "$tmp"
  mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
  rmdir "$tmp"
}

es_user() {
  if is_root; then
    id "$ES_USER" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir "$SERVICES_DIR" --shell /usr/sbin/nologin "$ES_USER"
  fi
}

es_url() { echo "http://127.0.0.1:$ES_PORT"; }
es_healthy() { curl -fsS "$(es_url)/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null | grep -qE '"status":"(green|yellow)"'; }

es_up() {
  if es_healthy; then log "elasticsearch already up at $(es_url)"; return 0; fi
  es_install
  es_user
  local jdk; jdk=$(find_jdk)
  mkdir -p "$ES_DATA/data" "$ES_DATA/logs"
  cat > "$ES_HOME/config/elasticsearch.yml" <<YML
cluster.name: soar-test
node.name: soar-test-1
path.data: $ES_DATA/data
path.logs: $ES_DATA/logs
discovery.type: single-node
network.host: 127.0.0.1
http.port: $ES_PORT
transport.port: $((ES_PORT + 100))
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
YML
  if is_root; then chown -R "$ES_USER:" "$ES_HOME" "$ES_DATA"; fi
  log "starting Elasticsearch $ES_VERSION with $jdk (heap 1 GiB)"
  local cmd="ulimit -n 65535 2>/dev/null || true; ES_JAVA_HOME='$jdk' ES_JAVA_OPTS='-Xms1g -Xmx1g' '$ES_HOME/bin/elasticsearch' -d -p '$ES_DATA/es.pid' >/dev/null"
  if is_root; then su -s /bin/sh "$ES_USER" -c "$cmd"; else sh -c "$cmd"; fi
  local i
  for i in $(seq 1 180); do
    # yellow: every primary shard is active. A single node never assigns replicas, so an index or data
    # stream made with the default of one replica (an integration's template does that) stays yellow for good.
    if curl -fsS "$(es_url)/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null | grep -qE '"status":"(green|yellow)"'; then
      log "elasticsearch up at $(es_url)"; return 0
    fi
    sleep 1
  done
  tail -n 40 "$ES_DATA/logs/soar-test.log" >&2 2>/dev/null || true
  die "elasticsearch did not become ready (all primary shards active) within 180 s"
}

es_down() {
  if [ -f "$ES_DATA/es.pid" ]; then
    local pid; pid=$(cat "$ES_DATA/es.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$ES_DATA/es.pid"
  fi
}

es_status() { if es_healthy; then echo "es: up $(es_url)"; else echo "es: down"; return 1; fi; }

redis_up() {
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then log "redis already up on $REDIS_PORT"; return 0; fi
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server redis-tools
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RUN_DIR" \
    --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log" --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && { log "redis up on $REDIS_PORT"; return 0; }; sleep 0.2; done
  die "redis did not start (see $RUN_DIR/redis.log)"
}
redis_down() { redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; }
redis_status() { if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then echo "redis: up 127.0.0.1:$REDIS_PORT"; else echo "redis: down"; return 1; fi; }

worker_up() {
  if pid_alive "$RUN_DIR/worker.pid"; then log "worker already up"; return 0; fi
  [ -x "$VENV/bin/soar" ] || die "no soar in $VENV: run 'make install' first"
  # exec keeps the pid: the pid file names the worker itself, the leader of its own process group
  (cd "$ROOT" || exit 1; export SOAR_REDIS_URL=${SOAR_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
    exec setsid "$VENV/bin/soar" worker --concurrency 2 --loglevel INFO >"$RUN_DIR/worker.log" 2>&1 </dev/null) &
  echo $! >"$RUN_DIR/worker.pid"
  for _ in $(seq 1 100); do grep -q "ready" "$RUN_DIR/worker.log" 2>/dev/null && { log "celery worker ready"; return 0; }; sleep 0.2; done
  tail -n 30 "$RUN_DIR/worker.log" >&2 || true
  die "celery worker did not become ready (see $RUN_DIR/worker.log)"
}
worker_down() {
  if [ -f "$RUN_DIR/worker.pid" ]; then
    local pid; pid=$(cat "$RUN_DIR/worker.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    rm -f "$RUN_DIR/worker.pid"
  fi
}
worker_status() { if pid_alive "$RUN_DIR/worker.pid"; then echo "worker: up pid $(cat "$RUN_DIR/worker.pid")"; else echo "worker: down"; return 1; fi; }

# Optional components: present once their scripts exist.
lab_up() { [ -x "$ROOT/scripts/lab.sh" ] || return 0; is_root || { log "lab needs root; skipped"; return 0; }; "$ROOT/scripts/lab.sh" up; }
lab_down() { [ -x "$ROOT/scripts/lab.sh" ] && is_root && "$ROOT/scripts/lab.sh" down || true; }
lab_status() { [ -x "$ROOT/scripts/lab.sh" ] || { echo "lab: not part of this checkout"; return 0; }; "$ROOT/scripts/lab.sh" status; }

telemetry_up() { is_root || { log "telemetry needs root; skipped"; return 0; }; "$ROOT/scripts/lab_telemetry.sh" up; }
telemetry_down() { is_root && "$ROOT/scripts/lab_telemetry.sh" down || true; }
telemetry_status() { is_root || { echo "telemetry: needs root"; return 0; }; "$ROOT/scripts/lab_telemetry.sh" status; }

slack_port() { echo "${SOARDEV_SLACK_STANDIN_PORT:-8765}"; }
slack_healthy() { curl -fsS "http://127.0.0.1:$(slack_port)/_standin/health" >/dev/null 2>&1; }
slack_up() {
  [ -f "$ROOT/scripts/slack_standin.py" ] || return 0
  if slack_healthy; then log "slack stand-in already up on $(slack_port)"; return 0; fi
  (cd "$ROOT" || exit 1; exec setsid "$VENV/bin/python" scripts/slack_standin.py --port "$(slack_port)" \
    >"$RUN_DIR/slack.log" 2>&1 </dev/null) &
  echo $! >"$RUN_DIR/slack.pid"
  for _ in $(seq 1 50); do slack_healthy && { log "slack stand-in up on $(slack_port)"; return 0; }; sleep 0.2; done
  die "slack stand-in did not start (see $RUN_DIR/slack.log)"
}
stop_pidfile() {
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}
slack_down() { stop_pidfile "$RUN_DIR/slack.pid"; }
slack_status() { if slack_healthy; then echo "slack: up 127.0.0.1:$(slack_port)"; else echo "slack: down"; return 1; fi; }

action=${1:-status}; shift || true
components=("$@"); [ ${#components[@]} -gt 0 ] || components=("${ALL[@]}")
rc=0
case "$action" in
  up)      for c in "${components[@]}"; do "${c}_up"; done ;;
  down)    for ((i=${#components[@]}-1; i>=0; i--)); do "${components[$i]}_down"; done ;;
  restart) for c in "${components[@]}"; do "${c}_down"; "${c}_up"; done ;;
  status)  for c in "${components[@]}"; do "${c}_status" || rc=1; done ;;
  *) die "usage: $0 up|down|status|restart [${ALL[*]}]" ;;
esac
exit $rc

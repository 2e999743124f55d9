#!/usr/bin/env bash
# The lab's telemetry: the SSH lab hosts' own auth log lines, shipped into Elasticsearch as Elastic's
# system.auth data stream documents (ECS), by rsyslog alone (the test server has no ingest pipelines).
#
#   sshd, sudo, useradd, usermod... on lab host H ──syslog──► /run/soar-lab/log/H/log (H's /dev/log, see lab.sh)
#       ──► one rsyslogd here: one imuxsock input per host, HostName=H ──► integrations/rsyslog/soar-system-auth.conf
#       (the shaping, as in production) ──► omelasticsearch ──► data stream soar-lab-auth-default
#                                       └─► .cache/lab/hosts/H/auth.log (the raw lines, to read)
#
# The data stream's index template is soar's ECS events template (soar rules install-template --data-stream),
# installed before rsyslog writes. `up` is idempotent: it rewrites the configuration from the lab's host list
# and restarts rsyslogd only when that changed. Root only (the lab's sockets); needs Elasticsearch up.
# Usage: scripts/lab_telemetry.sh up|down|status
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=${SOARDEV_LAB_DIR:-$ROOT/.cache/lab}
RUN=$ROOT/.cache/run/telemetry
LOGDIR=/run/soar-lab/log
ES_PORT=${SOARDEV_ES_PORT:-9200}
VENV=${SOARDEV_VENV:-$ROOT/.venv}
STREAM=soar-lab-auth-default  # <type>-<dataset>-<namespace> as Fleet names them; soar-lab-* is soar's own
TEMPLATE=soar-lab-auth
PATTERN=soar-lab-auth-*
SHAPING=$ROOT/integrations/rsyslog/soar-system-auth.conf

log() { printf '[telemetry] %s\n' "$*" >&2; }
die() { printf '[telemetry] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "the lab's telemetry needs root (the lab hosts' log sockets)"

pid_alive() { [ -f "$RUN/rsyslogd.pid" ] && kill -0 "$(cat "$RUN/rsyslogd.pid")" 2>/dev/null; }
# the lab hosts reach their own sockets through /dev/log -> $LOGDIR/self/log (scripts/lab.sh); a machine whose
# own syslog daemon owns /dev/log gets their lines instead, and there is no per-host telemetry to speak of
devlog_ours() { [ -L /dev/log ] && [ "$(readlink /dev/log)" = "$LOGDIR/self/log" ]; }
hosts() { "$ROOT/scripts/lab.sh" hosts; }

write_config() {
  local out=$1 name
  {
    cat <<EOF
# written by scripts/lab_telemetry.sh up: the SSH lab hosts' auth lines -> $STREAM on 127.0.0.1:$ES_PORT
# shaping $(sha256sum "$SHAPING" | cut -c1-16) (a changed shaping restarts rsyslogd)
global(workDirectory="$RUN/spool" maxMessageSize="64k")
module(load="imuxsock" sysSock.use="off")  # never the machine's /dev/log: only the lab hosts' sockets below
module(load="omelasticsearch")
include(file="$SHAPING")

template(name="soar_lab_file" type="string" string="%timereported:::date-rfc3339% %hostname% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\n")
template(name="soar_lab_file_path" type="string" string="$LAB/hosts/%hostname%/auth.log")

# the default ruleset gets only rsyslogd's own messages here (no system socket): kept for diagnostics
action(type="omfile" file="$RUN/rsyslogd.log")

ruleset(name="soar_lab_auth") {
  # what /var/log/auth.log holds on Debian: the auth and authpriv facilities
  if prifilt("auth,authpriv.*") then {
    action(type="omfile" dynaFile="soar_lab_file_path" template="soar_lab_file" dynaFileCacheSize="64")
    call soar_system_auth_ecs
    action(type="omelasticsearch" server="127.0.0.1" serverport="$ES_PORT" esVersion.major="8"
           searchIndex="$STREAM" template="soar_system_auth_doc"
           writeoperation="create" bulkid="soar_system_auth_id" dynbulkid="on"
           bulkmode="on" maxbytes="1m" errorFile="$RUN/es-errors.json"
           queue.type="LinkedList" queue.size="50000" queue.dequeueBatchSize="500"
           action.resumeRetryCount="-1" action.resumeInterval="2")
  }
}
EOF
    for name in $(hosts); do
      printf 'input(type="imuxsock" socket="%s" hostName="%s" ruleset="soar_lab_auth" ratelimit.interval="0")\n' \
        "$LOGDIR/$name/log" "$name"
    done
  } >"$out"
}

ensure_template() {
  local env=(SOAR_ELASTICSEARCH_URL="http://127.0.0.1:$ES_PORT")
  [ -x "$VENV/bin/soar" ] || die "no soar in $VENV: run 'make install' first"
  # installed (again) before rsyslog writes: the stream's first write creates it from this template
  env "${env[@]}" "$VENV/bin/soar" rules install-template --pattern "$PATTERN" --name "$TEMPLATE" --data-stream >&2 ||
    die "could not install the $TEMPLATE index template (is Elasticsearch up on $ES_PORT?)"
}

# the stream is the lab's log: about two weeks of it are kept. This server has no delete_by_query (no reindex
# module) and a data stream is never deleted here, so: a weekly rollover, and backing indices past 14 days dropped.
prune_old() {
  "$VENV/bin/python" - "http://127.0.0.1:$ES_PORT" "$STREAM" <<'PY' || log "warning: could not prune $STREAM"
import sys, time
from elasticsearch import Elasticsearch

es, stream = Elasticsearch(sys.argv[1], request_timeout=30), sys.argv[2]
found = es.options(ignore_status=404).indices.get_settings(index=stream)
if found.meta.status == 200:
    es.indices.rollover(alias=stream, conditions={"max_age": "7d"})
    backing = es.indices.get_settings(index=stream).body
    write = max(backing, key=lambda name: int(name.rsplit("-", 1)[1]))
    for name, body in backing.items():
        age_days = (time.time() * 1000 - int(body["settings"]["index"]["creation_date"])) / 86_400_000
        if name != write and age_days > 14:
            es.indices.delete(index=name)
PY
}

up() {
  "$ROOT/scripts/ensure_packages.sh" rsyslog rsyslog-elasticsearch || die "could not install rsyslog"
  ensure_template
  prune_old
  mkdir -p "$RUN/spool"
  local name
  for name in $(hosts); do
    mkdir -p "$LOGDIR/$name" "$LAB/hosts/$name"
    # the raw lines are for reading; keep them from growing without bound across sessions
    if [ -f "$LAB/hosts/$name/auth.log" ] && [ "$(stat -c %s "$LAB/hosts/$name/auth.log")" -gt 20000000 ]; then
      : >"$LAB/hosts/$name/auth.log"
    fi
  done
  write_config "$RUN/rsyslog.conf.new"
  local out
  out=$(rsyslogd -N1 -f "$RUN/rsyslog.conf.new" 2>&1) || die "rsyslog refused the configuration: $out"
  if pid_alive && cmp -s "$RUN/rsyslog.conf.new" "$RUN/rsyslog.conf"; then
    rm -f "$RUN/rsyslog.conf.new"
    log "rsyslogd already up (pid $(cat "$RUN/rsyslogd.pid"))"
    return 0
  fi
  stop
  mv "$RUN/rsyslog.conf.new" "$RUN/rsyslog.conf"
  rsyslogd -f "$RUN/rsyslog.conf" -i "$RUN/rsyslogd.pid" >>"$RUN/rsyslogd.log" 2>&1 ||
    die "rsyslogd did not start (see $RUN/rsyslogd.log)"
  devlog_ours || log "warning: /dev/log is not the lab's link (a syslog daemon of this machine owns it?):" \
    "the lab hosts' lines go there, not to their own sockets"
  for _ in $(seq 1 50); do
    if pid_alive && sockets_ready; then
      log "rsyslogd up (pid $(cat "$RUN/rsyslogd.pid")): lab hosts' auth lines -> $STREAM"
      return 0
    fi
    sleep 0.1
  done
  die "rsyslogd did not open the lab hosts' sockets (see $RUN/rsyslogd.log)"
}

sockets_ready() {
  local name
  for name in $(hosts); do [ -S "$LOGDIR/$name/log" ] || return 1; done
}

stop() {
  [ -f "$RUN/rsyslogd.pid" ] || return 0
  local pid; pid=$(cat "$RUN/rsyslogd.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$RUN/rsyslogd.pid"
}

down() {
  stop
  rm -f "$RUN/rsyslog.conf" "$LOGDIR"/*/log
  log "telemetry down"
}

status() {
  if pid_alive && sockets_ready && ! devlog_ours; then
    echo "telemetry: broken: rsyslogd up, but /dev/log is not the lab's link to each host's socket"
    return 1
  elif pid_alive && sockets_ready; then
    echo "telemetry: up pid $(cat "$RUN/rsyslogd.pid") -> $STREAM"
  else
    echo "telemetry: down"
    return 1
  fi
}

case "${1:-status}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac

#!/usr/bin/env bash
# The SSH lab: test hosts as network namespaces, each with its own openssh-server and nftables.
#
#   root namespace (the controller, where tests run)  10.77.1.1 ──veth── bastion 10.77.1.2
#   back network (a bridge inside soar-lab-sw), 10.77.0.0/24, reachable from the controller
#   only by jumping through the bastion:
#       bastion 10.77.0.2   mgmt 10.77.0.3 (management peer; log-shipping endpoint on :9200)
#       peer 10.77.0.4 (attacker peer; sshd for probes, listener on :8080)
#       web1 10.77.0.11   db1 10.77.0.12   app1 10.77.0.13   (targets)   + t01..tNN 10.77.0.101.. when SOARDEV_LAB_EXTRA=N
# Tests that change a host hold .cache/lab/locks/<host>.lock (flock) while they do: the lab is shared.
#
# Each host's sshd runs in its own mount namespace where /run/soar-lab/log/self is the host's own folder
# /run/soar-lab/log/<host>, and /dev/log (a link this script makes when the machine has none) points into it:
# sshd, and sudo/useradd/... run in its sessions, log to the host's own socket there, which the lab's rsyslog
# (scripts/lab_telemetry.sh) reads with the host's name and ships to Elasticsearch as system.auth documents.
#
# `up` writes .cache/lab/{inventory.yml,known_hosts,id_ed25519,lab.env}; it is idempotent.
# `down` removes namespaces, veths, processes, the controller user and its sudoers entry.
# Root only. Installs openssh-server, nftables, iptables, iproute2 and sudo when missing.
# Usage: scripts/lab.sh up|down|status|hosts
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=${SOARDEV_LAB_DIR:-$ROOT/.cache/lab}
PREFIX=soar-lab
SW=$PREFIX-sw
CTL_USER=soar-ctl
SUDOERS=/etc/sudoers.d/soar-lab
EXTRA=${SOARDEV_LAB_EXTRA:-0}
PY=/usr/bin/python3
LOGDIR=/run/soar-lab/log  # <host>/log: each host's syslog socket (made by rsyslog); self: the mount point
DEVLOG_TARGET=$LOGDIR/self/log

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces, sshd)"

# name:back-address:role:criticality:owner
base_hosts() {
  cat <<EOF
bastion:10.77.0.2:bastion:high:secops
mgmt:10.77.0.3:management:high:secops
peer:10.77.0.4:probe:low:secops
web1:10.77.0.11:web:high:web-team
db1:10.77.0.12:database:critical:dba-team
app1:10.77.0.13:app:medium:app-team
EOF
  local i
  for ((i = 1; i <= EXTRA; i++)); do printf 't%02d:10.77.0.%d:web:low:web-team\n' "$i" $((100 + i)); done
}

ensure_packages() {
  local missing=()
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v nft >/dev/null || missing+=(nftables)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v sudo >/dev/null || missing+=(sudo)
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  [ -x "$PY" ] || missing+=(python3)  # http.server listeners for the log endpoint and the peer
  command -v ps >/dev/null || missing+=(procps)
  command -v unshare >/dev/null || missing+=(util-linux)  # each sshd's own mount namespace
  command -v useradd >/dev/null || missing+=(passwd)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

make_ns() {
  local ns=$1
  ns_exists "$ns" || ip netns add "$ns"
  nsx "$ns" ip link set lo up
}

# back-network link for one host: a veth from the host namespace to the bridge in $SW
attach_back() {
  local name=$1 addr=$2 ns=$PREFIX-$1 idx=$3
  local a=slab${idx}a b=slab${idx}b
  if ! nsx "$ns" ip link show eth0 >/dev/null 2>&1; then
    ip link add "$a" type veth peer name "$b"
    ip link set "$a" netns "$SW"
    ip link set "$b" netns "$ns"
    nsx "$SW" ip link set "$a" master br0 up
    nsx "$ns" ip link set "$b" name eth0
  fi
  nsx "$ns" ip addr replace "$addr/24" dev eth0
  nsx "$ns" ip link set eth0 up
}

ctl_user() {
  if ! id "$CTL_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh "$CTL_USER"
  fi
  local home; home=$(getent passwd "$CTL_USER" | cut -d: -f6)
  install -d -m 700 -o "$CTL_USER" -g "$CTL_USER" "$home/.ssh"
  install -m 600 -o "$CTL_USER" -g "$CTL_USER" "$LAB/id_ed25519.pub" "$home/.ssh/authorized_keys"
  printf '%s ALL=(root) NOPASSWD: ALL\n' "$CTL_USER" >"$SUDOERS.tmp"
  chmod 440 "$SUDOERS.tmp"
  mv "$SUDOERS.tmp" "$SUDOERS"
}

# writes the host's sshd_config; returns 0 when it changed (a running sshd is then told to reload it)
sshd_config() {
  local name=$1 listen=$2 dir=$LAB/hosts/$1
  cat >"$dir/sshd_config.tmp" <<EOF
# soar lab host $name: its own host key and pid file, listening only inside its namespace
ListenAddress $listen
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AuthorizedKeysFile .ssh/authorized_keys
AllowTcpForwarding $([ "$name" = bastion ] && echo yes || echo no)
X11Forwarding no
PrintMotd no
UseDNS no
MaxStartups 100:30:200
MaxSessions 64
SyslogFacility AUTH
LogLevel INFO
EOF
  if cmp -s "$dir/sshd_config.tmp" "$dir/sshd_config"; then rm -f "$dir/sshd_config.tmp"; return 1; fi
  mv "$dir/sshd_config.tmp" "$dir/sshd_config"
}

# /dev/log: a link into the mount point of each host's log folder (dangling outside the lab's sshd: the machine
# itself has no syslog socket then, as before). A machine with its own /dev/log keeps it: the lab's lines go there.
devlog_link() {
  mkdir -p "$LOGDIR/self"
  if [ -L /dev/log ] && [ "$(readlink /dev/log)" = "$DEVLOG_TARGET" ]; then return 0; fi
  if [ -e /dev/log ] || [ -L /dev/log ]; then
    log "warning: /dev/log belongs to this machine's logger; lab hosts log there, not to their own sockets"
    return 0
  fi
  ln -s "$DEVLOG_TARGET" /dev/log
}

# does the running sshd see its own log folder (started by this version of the script, in its own mount namespace)?
sshd_logs_own() {
  local pid=$1 name=$2
  [ "$(stat -L -c %i "/proc/$pid/root$LOGDIR/self" 2>/dev/null)" = "$(stat -c %i "$LOGDIR/$name")" ]
}

start_sshd() {
  local name=$1 reload=$2 ns=$PREFIX-$1 dir=$LAB/hosts/$1 pid
  mkdir -p "$LOGDIR/$name"
  if [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
    pid=$(cat "$dir/sshd.pid")
    if sshd_logs_own "$pid" "$name"; then
      # SIGHUP: sshd re-executes itself with the new configuration; open sessions are left alone
      if [ "$reload" = yes ]; then kill -HUP "$pid"; fi
      return 0
    fi
    # an sshd from before the per-host log folders: the listener restarts (open sessions are left alone)
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  mkdir -p /run/sshd
  local out
  out=$(nsx "$ns" /usr/sbin/sshd -t -f "$dir/sshd_config" 2>&1) || die "sshd of $name: bad configuration: $out"
  # a private mount namespace: the host's log folder on the mount point /dev/log leads to; children inherit it
  nsx "$ns" unshare --mount --propagation private /bin/sh -c \
    'mount --bind "$1" "$2" && exec /usr/sbin/sshd -f "$3"' sh "$LOGDIR/$name" "$LOGDIR/self" "$dir/sshd_config" \
    >>"$dir/sshd.log" 2>&1
}

start_listener() {
  local name=$1 addr=$2 port=$3 dir=$LAB/hosts/$1
  if [ -f "$dir/listener.pid" ] && kill -0 "$(cat "$dir/listener.pid")" 2>/dev/null; then return 0; fi
  local empty=$LAB/www; mkdir -p "$empty"
  nsx "$PREFIX-$name" setsid "$PY" -m http.server "$port" --bind "$addr" --directory "$empty" \
    >"$dir/listener.log" 2>&1 </dev/null &
  echo $! >"$dir/listener.pid"
}

write_inventory() {
  local inv=$LAB/inventory.yml.tmp
  {
    echo "# written by scripts/lab.sh up; addresses exist only inside the lab's network namespaces"
    echo "defaults:"
    echo "  user: $CTL_USER"
    echo "  key: id_ed25519"
    echo "  sudo: true"
    echo "  bastion: bastion"
    echo "  management: [10.77.0.2, 10.77.0.3]"
    echo "  log_endpoints: [\"10.77.0.3:9200\"]"
    echo "  protected_accounts: [$CTL_USER]"
    echo "  probe: peer"
    echo "hosts:"
    echo "  bastion:"
    echo "    address: 10.77.1.2"
    echo "    bastion: null"
    echo "    probe: null"
    echo "    aliases: [10.77.0.2]"
    echo "    labels: {env: lab, role: bastion, criticality: high, owner: secops}"
    base_hosts | while IFS=: read -r name addr role crit owner; do
      [ "$name" = bastion ] && continue
      echo "  $name:"
      echo "    address: $addr"
      echo "    aliases: [$name.lab.internal]"
      [ "$name" = peer ] || [ "$name" = mgmt ] && echo "    probe: null"
      # the probe peer answers for every target of a fleet-wide containment (sshd MaxSessions 64 below)
      [ "$name" = peer ] && echo "    max_sessions: 60"
      echo "    labels: {env: lab, role: $role, criticality: $crit, owner: $owner}"
    done
  } >"$inv"
  mv "$inv" "$LAB/inventory.yml"
}

write_known_hosts() {
  local kh=$LAB/known_hosts.tmp
  : >"$kh"
  base_hosts | while IFS=: read -r name addr _; do
    local key; key=$(cut -d' ' -f1,2 "$LAB/hosts/$name/ssh_host_ed25519_key.pub")
    if [ "$name" = bastion ]; then echo "10.77.1.2 $key" >>"$kh"; fi
    echo "$addr $key" >>"$kh"
  done
  mv "$kh" "$LAB/known_hosts"
}

up() {
  ensure_packages
  mkdir -p "$LAB/hosts"
  chmod 755 "$LAB"
  [ -f "$LAB/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C soar-lab-controller -f "$LAB/id_ed25519"
  ctl_user

  make_ns "$SW"
  nsx "$SW" ip link show br0 >/dev/null 2>&1 || nsx "$SW" ip link add br0 type bridge
  nsx "$SW" ip link set br0 up

  local idx=0
  while IFS=: read -r name addr _; do
    idx=$((idx + 1))
    mkdir -p "$LAB/hosts/$name"
    [ -f "$LAB/hosts/$name/ssh_host_ed25519_key" ] ||
      ssh-keygen -q -t ed25519 -N '' -C "soar-lab-$name" -f "$LAB/hosts/$name/ssh_host_ed25519_key"
    make_ns "$PREFIX-$name"
    attach_back "$name" "$addr" "$idx"
  done < <(base_hosts)

  # the controller's path: root namespace <-> bastion only
  if ! ip link show slab-ctl >/dev/null 2>&1; then
    ip link add slab-ctl type veth peer name slab-ctlb
    ip link set slab-ctlb netns "$PREFIX-bastion"
    nsx "$PREFIX-bastion" ip link set slab-ctlb name front
  fi
  ip addr replace 10.77.1.1/24 dev slab-ctl
  ip link set slab-ctl up
  # the back network is reachable only through the bastion: never via the root namespace's default route
  ip route replace unreachable 10.77.0.0/24
  nsx "$PREFIX-bastion" ip addr replace 10.77.1.2/24 dev front
  nsx "$PREFIX-bastion" ip link set front up

  devlog_link
  local listen reload
  while IFS=: read -r name addr _; do
    listen="$addr:22"
    [ "$name" = bastion ] && listen="10.77.1.2:22
ListenAddress $addr:22"
    if sshd_config "$name" "$listen"; then reload=yes; else reload=no; fi
    start_sshd "$name" "$reload"
  done < <(base_hosts)
  start_listener mgmt 10.77.0.3 9200
  start_listener peer 10.77.0.4 8080

  prune_extra
  write_known_hosts
  write_inventory
  cat >"$LAB/lab.env" <<EOF
SOAR_INVENTORY_FILE=$LAB/inventory.yml
SOAR_SSH_KNOWN_HOSTS=$LAB/known_hosts
EOF
  wait_ready
  # the lab's telemetry, when running, follows the host list (SOARDEV_LAB_EXTRA may have changed it)
  if "$ROOT/scripts/lab_telemetry.sh" status >/dev/null 2>&1; then
    "$ROOT/scripts/lab_telemetry.sh" up || log "warning: the lab's telemetry could not follow the host list"
  fi
  log "lab up: $(base_hosts | cut -d: -f1 | tr '\n' ' ')(inventory $LAB/inventory.yml)"
}

# extra targets beyond SOARDEV_LAB_EXTRA (left by an earlier benchmark run) are removed
prune_extra() {
  local ns n
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$PREFIX-t[0-9]+$" || true); do
    n=$((10#${ns#"$PREFIX-t"}))
    [ "$n" -le "$EXTRA" ] && continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
    rm -f "$LAB/hosts/${ns#"$PREFIX-"}/sshd.pid"
  done
}

wait_ready() {
  local name addr
  while IFS=: read -r name addr _; do
    for _ in $(seq 1 50); do
      nsx "$PREFIX-$name" timeout 1 bash -c "exec 3<>/dev/tcp/$addr/22" 2>/dev/null && continue 2
      sleep 0.1
    done
    die "sshd of $name did not come up (see $LAB/hosts/$name/sshd.log and auth.log)"
  done < <(base_hosts)
}

down() {
  local ns pidf
  "$ROOT/scripts/lab_telemetry.sh" down || true
  for pidf in "$LAB"/hosts/*/sshd.pid "$LAB"/hosts/*/listener.pid; do
    [ -f "$pidf" ] || continue
    kill "$(cat "$pidf")" 2>/dev/null || true
    rm -f "$pidf"
  done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true); do
    # anything still running inside (sessions, dead-man timers) goes with its namespace
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
  done
  ip link del slab-ctl 2>/dev/null || true
  ip route del unreachable 10.77.0.0/24 2>/dev/null || true
  if id "$CTL_USER" >/dev/null 2>&1; then
    pkill -KILL -u "$CTL_USER" 2>/dev/null || true
    userdel -r "$CTL_USER" 2>/dev/null || true
  fi
  rm -f "$SUDOERS" "$LAB/inventory.yml" "$LAB/known_hosts" "$LAB/lab.env"
  if [ -L /dev/log ] && [ "$(readlink /dev/log)" = "$DEVLOG_TARGET" ]; then rm -f /dev/log; fi
  rm -rf "$LOGDIR"
  log "lab down"
}

status() {
  local name rc=0 up=()
  while IFS=: read -r name _; do
    if [ -f "$LAB/hosts/$name/sshd.pid" ] && kill -0 "$(cat "$LAB/hosts/$name/sshd.pid")" 2>/dev/null; then
      up+=("$name")
    else
      rc=1
    fi
  done < <(base_hosts)
  if [ $rc = 0 ]; then echo "lab: up ${up[*]}"; else echo "lab: down (up: ${up[*]:-none})"; fi
  return $rc
}

case "${1:-status}" in
  hosts) base_hosts | cut -d: -f1 ;;  # the host names, one a line (scripts/lab_telemetry.sh reads them)
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status|hosts" ;;
esac

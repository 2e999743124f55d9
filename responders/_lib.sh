# Shared helpers, prepended by soar to every responder before it is piped to `sh -s`.
# Protocol: results are `soar: key=value` lines on stdout; exit 0 done / in the expected state,
# 2 bad argument, 3 not in the expected state (verify), 4 refused (protected target), 5 missing tool.
set -eu
umask 077
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH LC_ALL=C

say() { printf 'soar: %s=%s\n' "$1" "$2"; }
die() { code=$1; shift; printf 'soar-error: %s\n' "$*" >&2; say error "$*"; exit "$code"; }
have() { command -v "$1" >/dev/null 2>&1; }
# the kernel's boot id (a builtin read, no process): the containment watch tells a reboot by it
say_boot_id() { if read -r _boot </proc/sys/kernel/random/boot_id 2>/dev/null; then say boot_id "$_boot"; fi; }

# Strict patterns, the same as soar/hosts/validate.py: anything else is refused before use.
# Plain `case` patterns and arithmetic, no grep: a check costs no process, and verification runs them
# on every host of a fleet-wide containment (LC_ALL=C: bracket ranges are byte ranges).
is_user() {
  case $1 in '' | [!a-z_]* | *[!a-z0-9_-]*) return 1 ;; esac
  [ ${#1} -le 32 ]
}
is_uint() {
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ ${#1} -le 10 ]
}
is_octet() {
  case $1 in '' | *[!0-9]* | 0?*) return 1 ;; esac
  [ ${#1} -le 3 ] && [ "$1" -le 255 ]
}
is_ip4() {
  case $1 in *[!0-9.]* | .* | *. | *..*) return 1 ;; esac
  _ifs=$IFS; IFS=.
  # shellcheck disable=SC2086 # split on dots on purpose; only digits and dots remain, nothing to glob
  set -- $1
  IFS=$_ifs
  [ $# -eq 4 ] && is_octet "$1" && is_octet "$2" && is_octet "$3" && is_octet "$4"
}
is_ip6() {
  case $1 in *:*) ;; *) return 1 ;; esac
  case $1 in *[!0-9a-f:]*) return 1 ;; esac
  [ ${#1} -ge 2 ] && [ ${#1} -le 39 ]
}
is_net() {
  addr=${1%/*}
  if [ "$addr" != "$1" ]; then
    len=${1#*/}
    is_uint "$len" || return 1
    if is_ip4 "$addr"; then [ "$len" -le 32 ]; else is_ip6 "$addr" && [ "$len" -le 128 ]; fi
  else
    is_ip4 "$addr" || is_ip6 "$addr"
  fi
}
is_endpoint() {
  port=${1##*:}; addr=${1%:*}; addr=${addr#[}; addr=${addr%]}
  is_uint "$port" && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] && { is_ip4 "$addr" || is_ip6 "$addr"; }
}
is_path() {
  [ ${#1} -le 4096 ] || return 1
  case $1 in /*) ;; *) return 1 ;; esac
  case $1 in *[!A-Za-z0-9._/+-]*) return 1 ;; esac
  case $1/ in */../*) return 1 ;; esac
}
# a validated address (or CIDR) is IPv6 exactly when it has a colon
is_v6() { case $1 in *:*) return 0 ;; *) return 1 ;; esac; }

# Rules live in a network namespace, so their state is keyed by it (one host = one namespace).
# Only `apply` creates it (mkdir -p), so verify and revert leave nothing behind.
state_dir() { echo "/run/soar/net-$(stat -L -c %i /proc/self/ns/net)"; }

# Run "$@" detached after $1 seconds unless "$2" (an armed-file) is gone; prints the timer's pid.
# The timer outlives the SSH session on purpose: it is what restores the host if we lose it.
timer() {
  delay=$1; armed=$2; script=$3
  setsid sh -c 'sleep "$1"; if [ "$2" = - ] || [ -f "$2" ]; then sh "$3"; fi' soar-timer "$delay" "$armed" "$script" \
    </dev/null >/dev/null 2>&1 &
  echo $!
}
stop_timer() {
  if [ -f "$1" ]; then
    pid=$(cat "$1")
    if is_uint "$pid"; then kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; fi
    rm -f "$1"
  fi
}

# iptables leaves its table and built-in chains behind (iptables-nft creates `table ip filter` and the
# hooked chains a rule needs). The first soar apply that touches a family's filter table notes what did
# not exist yet; once no soar chain is left, a revert removes exactly that, if nothing else uses it.
# One note per namespace and family, shared by isolate and block_ip.
ipt_note() {  # TOOL (iptables|ip6tables): the note's path, written on first use
  note="$STATE/$1.created"
  [ -f "$note" ] && { echo "$note"; return 0; }
  fam=ip; [ "$1" = ip6tables ] && fam=ip6
  {
    if have nft; then
      if nft list table "$fam" filter >/dev/null 2>&1; then
        for c in INPUT FORWARD OUTPUT; do nft list chain "$fam" filter "$c" >/dev/null 2>&1 || echo "$c"; done
      else
        printf 'table\nINPUT\nFORWARD\nOUTPUT\n'
      fi
    elif [ -z "$("$1-save" -t filter 2>/dev/null)" ]; then
      printf 'INPUT\nFORWARD\nOUTPUT\n'  # without nft an empty table cannot be deleted; its chains can
    fi
  } >"$note"
  echo "$note"
}
# Shell code for a revert file (run later, maybe by a timer): tidy TOOL's filter table per its NOTE.
ipt_tidy_code() {  # TOOL NOTE
  cat <<'IPT'
ipt_tidy() {
  [ -f "$2" ] || return 0
  "$1" -S 2>/dev/null | grep -q '^-N SOAR-' && return 0
  for c in INPUT FORWARD OUTPUT; do
    grep -qx "$c" "$2" || continue
    [ "$("$1" -S "$c" 2>/dev/null)" = "-P $c ACCEPT" ] && "$1" -X "$c" 2>/dev/null
  done
  fam=ip; [ "$1" = ip6tables ] && fam=ip6
  if grep -qx table "$2" && command -v nft >/dev/null 2>&1 &&
    [ "$(nft list table "$fam" filter 2>/dev/null | tr -d ' \t\n')" = "table${fam}filter{}" ]; then
    nft delete table "$fam" filter
  fi
  rm -f "$2"
}
IPT
  printf "ipt_tidy %s '%s'\n" "$1" "$2"
}

# -- containment that survives a reboot ----------------------------------------------------------------------------
# An apply with --persist also keeps, on disk, the responder's own text (soar_self: the controller sends it only
# then) and its arguments, per network namespace. The boot hook re-applies them at boot: an isolation with a fresh
# dead-man timer (nobody confirming after the boot, e.g. the controller lost, lifts it again), a block with what is
# left of its expiry. Every revert (by soar, the dead-man timer or an expiry) drops the persisted copy, and the
# last one gone takes the boot hook with it.
PERSIST_ROOT=/var/lib/soar-containment
BOOT_HOOK=$PERSIST_ROOT/boot.sh
BOOT_UNIT=/etc/systemd/system/soar-containment.service

# the host's own namespace is "net-host" (its inode may differ after a reboot); another one keeps its inode
persist_dir() {
  _own=$(stat -L -c %i /proc/self/ns/net)
  if [ "$_own" = "$(stat -L -c %i /proc/1/ns/net 2>/dev/null || echo none)" ]; then
    echo "$PERSIST_ROOT/net-host"
  else
    echo "$PERSIST_ROOT/net-$_own"
  fi
}

# Run "$@" holding the persistence lock, so an apply that persists and a revert that removes the boot hook of
# another host sharing this filesystem (or of another containment of this one) never interleave: the hook's
# --tidy takes the same lock. Without flock (util-linux) the steps still work, one file rename at a time.
persist_locked() {
  if have flock; then
    mkdir -p /run/lock
    (flock 9 && "$@") 9>/run/lock/soar-containment.lock
  else
    "$@"
  fi
}

# NAME FILE: write the responder's own text as NAME in DIR, atomically (the caller checked soar_self exists)
persist_self() {
  soar_self >"$1/$2.tmp.$$"
  mv "$1/$2.tmp.$$" "$1/$2"
}

install_boot_hook() {
  mkdir -p "$PERSIST_ROOT"
  cat >"$BOOT_HOOK.tmp.$$" <<'HOOK'
#!/bin/sh
# soar's containment boot hook: written by soar's responders, removed with the last containment they persisted.
# Re-applies what soar persisted for this network namespace (isolation with a fresh dead-man timer, blocks with
# what is left of their expiry). Run at boot by soar-containment.service, or by another init.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 077
if [ "${1:-}" = --tidy ]; then  # what a revert runs: once nothing is persisted anywhere, remove this hook
  if [ -z "${SOAR_CONTAINMENT_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then  # one at a time (see persist_locked)
    mkdir -p /run/lock
    SOAR_CONTAINMENT_LOCKED=1 exec flock /run/lock/soar-containment.lock sh "$0" --tidy
  fi
  for d in /var/lib/soar-containment/net-*; do
    [ -d "$d" ] || continue
    for a in "$d"/*.args; do [ -f "$a" ] && exit 0; done
    rm -f "$d"/*.sh
    rmdir "$d" 2>/dev/null || true
  done
  if [ -f /etc/systemd/system/soar-containment.service ]; then
    systemctl disable soar-containment.service >/dev/null 2>&1 || true
    rm -f /etc/systemd/system/soar-containment.service
    systemctl daemon-reload >/dev/null 2>&1 || true
  fi
  rm -f /var/lib/soar-containment/boot.sh
  rmdir /var/lib/soar-containment 2>/dev/null || true
  exit 0
fi
own=$(stat -L -c %i /proc/self/ns/net)
if [ "$own" = "$(stat -L -c %i /proc/1/ns/net 2>/dev/null || echo none)" ]; then
  P=/var/lib/soar-containment/net-host
else
  P=/var/lib/soar-containment/net-$own
fi
rc=0
for a in "$P"/*.args; do
  [ -f "$a" ] || continue
  case ${a##*/} in isolate.args) s=isolate.sh ;; block-*.args) s=block_ip.sh ;; *) continue ;; esac
  sh "$P/$s" boot "$a" || { echo "soar-containment: $a: re-apply failed" >&2; rc=1; }
done
exit $rc
HOOK
  mv "$BOOT_HOOK.tmp.$$" "$BOOT_HOOK"
  if [ -d /run/systemd/system ] && have systemctl; then
    if [ ! -f "$BOOT_UNIT" ]; then
      cat >"$BOOT_UNIT.tmp.$$" <<UNIT
[Unit]
Description=soar: re-apply host containment persisted by soar (isolation, address blocks)
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
KillMode=process
ExecStart=/bin/sh $BOOT_HOOK

[Install]
WantedBy=sysinit.target
UNIT
      mv "$BOOT_UNIT.tmp.$$" "$BOOT_UNIT"
      systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    systemctl enable soar-containment.service >/dev/null 2>&1 || true
    say boot_hook systemd
  else
    say boot_hook "$BOOT_HOOK"
  fi
}

# Remove the boot hook once no namespace has anything persisted (the hook itself does it: revert files and timers
# run without this library).
tidy_boot_hook() { if [ -f "$BOOT_HOOK" ]; then sh "$BOOT_HOOK" --tidy; fi; }
boot_hook_tidy_code() { printf "if [ -f '%s' ]; then sh '%s' --tidy; fi\n" "$BOOT_HOOK" "$BOOT_HOOK"; }

# FILE: a persisted arguments file; its first line is the epoch after which it no longer applies (0: never)
read_persisted() {
  ARGS_UNTIL=$(sed -n 1p "$1")
  is_uint "$ARGS_UNTIL" || die 2 "boot: $1: its first line is not a time"
}

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

# kill_sessions: end every process (and so every login session) of one user. Refuses uid 0 and
# protected accounts like lock_account.
#   apply USER [--protect NAME]...   verify USER
mode=${1:-}; user=${2:-}
[ $# -ge 2 ] && shift 2 || die 2 "usage: apply|verify USER [--protect NAME]..."
PROTECT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --protect) is_user "${2:-}" || die 2 "--protect: not a user name"; PROTECT="$PROTECT $2"; shift 2 ;;
    *) die 2 "unknown argument" ;;
  esac
done
is_user "$user" || die 2 "not a valid user name"
entry=$(getent passwd "$user") || die 2 "no such user on this host"
uid=$(printf '%s' "$entry" | cut -d: -f3)
[ "$uid" = 0 ] && die 4 "refusing: $user has uid 0"
for p in $PROTECT $(grep -Ev '^[[:space:]]*(#|$)' /etc/soar/protected-accounts 2>/dev/null || true); do
  [ "$p" = "$user" ] && die 4 "refusing: $user is a protected account"
done
count() { pgrep -u "$uid" 2>/dev/null | wc -l | tr -d ' '; }

case "$mode" in
  apply)
    before=$(count)
    if [ "$before" -gt 0 ]; then
      have loginctl && loginctl terminate-user "$user" >/dev/null 2>&1 || true
      pkill -KILL -u "$uid" 2>/dev/null || true
      i=0
      while [ "$(count)" -gt 0 ] && [ $i -lt 20 ]; do pkill -KILL -u "$uid" 2>/dev/null || true; sleep 0.1; i=$((i + 1)); done
    fi
    say killed "$before"; say remaining "$(count)"
    [ "$(count)" = 0 ] || exit 3
    ;;
  verify)
    n=$(count); say remaining "$n"
    [ "$n" = 0 ] || exit 3
    ;;
  *) die 2 "mode must be apply or verify" ;;
esac

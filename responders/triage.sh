# triage: a read-only snapshot for the evidence bundle. Sections start with `=== name`.
#   collect [--hash PATH]...
mode=${1:-}; [ $# -gt 0 ] && shift
[ "$mode" = collect ] || die 2 "mode must be collect"
HASH=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hash) is_path "${2:-}" || die 2 "--hash: not an absolute path"; HASH="$HASH $2"; shift 2 ;;
    *) die 2 "unknown argument" ;;
  esac
done
section() { printf '\n=== %s\n' "$1"; shift; "$@" 2>&1 || printf '(%s failed)\n' "$*"; }
section time date -u +%Y-%m-%dT%H:%M:%SZ
section host uname -a
section processes ps -eo pid,ppid,user,lstart,args --sort pid
section connections ss -tanpu
section listening ss -tlnpu
section addresses ip -br addr
section logged_in who -a
section recent_logins last -n 50 -F
section crontabs sh -c 'for f in /etc/crontab /etc/cron.d/* /var/spool/cron/crontabs/*; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; true'
if have systemctl; then
  section systemd_units systemctl list-units --all --no-pager --no-legend
else
  section systemd_units sh -c 'echo "systemctl not present"'
fi
printf '\n=== hashes\n'
for f in $HASH; do
  if [ -f "$f" ]; then sha256sum "$f"; else echo "missing  $f"; fi
done
say sections 11

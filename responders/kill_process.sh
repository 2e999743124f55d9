# kill_process: kill one pid, only if its executable is the one the controller expects
# (a pid may have been reused since the alert). Never pid 1, never our own ancestors.
#   apply PID EXE   verify PID EXE
mode=${1:-}; pid=${2:-}; exe=${3:-}
[ $# -eq 3 ] || die 2 "usage: apply|verify PID EXE"
is_uint "$pid" && [ "$pid" -gt 1 ] || die 2 "not a process id"
is_path "$exe" || die 2 "not an absolute executable path"
[ "$pid" = $$ ] || [ "$pid" = "$PPID" ] && die 4 "refusing to kill the responder itself"
running() { [ -d "/proc/$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = "$exe" ]; }

case "$mode" in
  apply)
    if [ ! -d "/proc/$pid" ]; then say killed no; say running no; exit 0; fi
    actual=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    [ "$actual" = "$exe" ] || die 4 "refusing: pid $pid runs $actual, not $exe"
    kill -KILL "$pid"
    i=0
    while running && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
    say killed yes; say running "$(running && echo yes || echo no)"
    running && exit 3
    exit 0
    ;;
  verify)
    if running; then say running yes; exit 3; fi
    say running no
    ;;
  *) die 2 "mode must be apply or verify" ;;
esac

# logging: is the host's logging working? Read-only; for a host that went silent (soar's silence rules).
#   check
# Each service as systemd says (active, inactive, failed, ...), or by its process where there is no systemd;
# the audit rules loaded; the space and inodes left on the filesystem holding /var/log.
mode=${1:-}; [ $# -gt 0 ] && shift
[ "$mode" = check ] || die 2 "mode must be check"
[ $# -eq 0 ] || die 2 "unknown argument"
service() {
  state=""
  if have systemctl && [ -d /run/systemd/system ]; then
    state=$(systemctl is-active "$2" 2>/dev/null) || true
  fi
  if [ -z "$state" ] || [ "$state" = unknown ]; then
    if have pgrep && pgrep -x "$3" >/dev/null 2>&1; then state=running; else state=absent; fi
  fi
  say "$1" "$state"
}
service auditd auditd.service auditd
service rsyslog rsyslog.service rsyslogd
service journald systemd-journald.service systemd-journal
if have auditctl; then
  rules=$(auditctl -l 2>/dev/null) && say audit_rules "$(printf '%s\n' "$rules" | grep -vc '^No rules' || true)"
fi
# shellcheck disable=SC2046 # df's fields, split on purpose
set -- $(df -P /var/log 2>/dev/null | awk 'NR == 2 { print $4, $5, $6 }')
if [ $# -eq 3 ]; then
  say log_disk_free_kb "$1"; say log_disk_used_pct "${2%\%}"; say log_mount "$3"
fi
# shellcheck disable=SC2046
set -- $(df -Pi /var/log 2>/dev/null | awk 'NR == 2 { print $4, $5 }')
if [ $# -eq 2 ]; then
  say log_inodes_free "$1"; say log_inodes_used_pct "${2%\%}"
fi
say_boot_id

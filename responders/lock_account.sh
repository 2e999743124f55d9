# lock_account: password lock AND account expiry (usermod -L + chage -E 0), so key logins are refused
# too; optionally set authorized_keys aside. Refuses root (uid 0) and protected accounts, whatever
# the controller says: /etc/soar/protected-accounts on the host and --protect names.
#   apply USER [--disable-keys] [--protect NAME]...   verify USER [--disable-keys]   revert USER
# verify also proves it: a login that needs no password (su from root: PAM's account phase, which sshd
# runs for a key login too) is refused. revert says which state it restored (expect_locked/expect_expired).
mode=${1:-}; user=${2:-}
[ $# -ge 2 ] && shift 2 || die 2 "usage: apply|verify|revert USER [--disable-keys] [--protect NAME]..."
KEYS=no; PROTECT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --disable-keys) KEYS=yes; shift ;;
    --protect) is_user "${2:-}" || die 2 "--protect: not a user name"; PROTECT="$PROTECT $2"; shift 2 ;;
    *) die 2 "unknown argument" ;;
  esac
done
is_user "$user" || die 2 "not a valid user name"
entry=$(getent passwd "$user") || die 2 "no such user on this host"
uid=$(printf '%s' "$entry" | cut -d: -f3)
home=$(printf '%s' "$entry" | cut -d: -f6)
[ "$uid" = 0 ] && die 4 "refusing: $user has uid 0"
for p in $PROTECT $(grep -Ev '^[[:space:]]*(#|$)' /etc/soar/protected-accounts 2>/dev/null || true); do
  [ "$p" = "$user" ] && die 4 "refusing: $user is a protected account"
done
STATE=/var/lib/soar/accounts  # persistent: a lock outlives a reboot, so must what undoes it
STATEFILE=$STATE/$user.lock

shadow() { getent shadow "$user" | cut -d: -f"$1"; }
locked() { case "$(shadow 2)" in '!'*) return 0 ;; *) return 1 ;; esac; }
expired() { [ "$(shadow 8)" = 0 ]; }
keys_on() { [ -e "$home/.ssh/authorized_keys" ] || [ -e "$home/.ssh/authorized_keys2" ]; }
# ~/.ssh belongs to the (maybe compromised) user: it may be a link to another account's .ssh. Keys are
# only renamed from inside the real directory: cd there, and its physical path must be the home's .ssh.
in_ssh_dir() {  # run "$@" in the user's own ~/.ssh (none: nothing to do); status 4 when it leads elsewhere
  [ -e "$home/.ssh" ] || return 0
  (
    real_home=$(cd -P -- "$home" && pwd -P) && cd -P -- "$home/.ssh" && [ "$(pwd -P)" = "$real_home/.ssh" ] || exit 4
    "$@"
  )
}
keys_aside() {
  for f in authorized_keys authorized_keys2; do
    if [ -e "$f" ] || [ -L "$f" ]; then mv -f -- "$f" "$f.soar-locked"; fi
  done
}
keys_back() {
  for f in authorized_keys authorized_keys2; do
    if [ -e "$f.soar-locked" ] && [ ! -e "$f" ]; then mv -- "$f.soar-locked" "$f"; fi
  done
}
# a login without a password, as sshd's key login: PAM's account phase refuses a locked-out account
login_probe() {
  have su || { say login unprobed; return 1; }
  if su -s /bin/sh -c true "$user" </dev/null >/dev/null 2>&1; then say login allowed; return 1; fi
  say login refused
}

case "$mode" in
  apply)
    if [ ! -f "$STATEFILE" ]; then
      mkdir -p "$STATE"
      prev_locked=no; locked && prev_locked=yes
      { echo "prev_locked=$prev_locked"; echo "prev_expire=$(shadow 8)"; echo "keys=$KEYS"; } >"$STATEFILE.tmp"
      mv "$STATEFILE.tmp" "$STATEFILE"
      changed=yes
    else
      changed=no
    fi
    locked || usermod -L "$user"
    expired || chage -E 0 "$user"
    if [ "$KEYS" = yes ]; then
      sed -i 's/^keys=no$/keys=yes/' "$STATEFILE"
      # the account is locked and expired already; its keys are only touched inside its own home
      in_ssh_dir keys_aside || die 4 "refusing to set keys aside: $home/.ssh leads out of the home of $user"
    fi
    say locked yes; say expired yes; say keys_disabled "$KEYS"; say changed "$changed"
    ;;
  verify)
    say_boot_id
    ok=yes
    if locked; then say locked yes; else say locked no; ok=no; fi
    if expired; then say expired yes; else say expired no; ok=no; fi
    if [ "$KEYS" = yes ]; then
      if keys_on; then say keys_disabled no; ok=no; else say keys_disabled yes; fi
    fi
    login_probe || ok=no
    [ "$ok" = yes ] || exit 3
    ;;
  revert)
    if [ ! -f "$STATEFILE" ]; then
      # not locked by soar: nothing to restore, the account stays as it is
      say changed no; say expect_locked "$(locked && echo yes || echo no)"; say expect_expired "$(expired && echo yes || echo no)"
      exit 0
    fi
    prev_locked=$(sed -n 's/^prev_locked=//p' "$STATEFILE")
    prev_expire=$(sed -n 's/^prev_expire=//p' "$STATEFILE")
    if [ "$prev_locked" = no ] && locked; then usermod -U "$user"; fi
    if is_uint "$prev_expire"; then chage -E "$prev_expire" "$user"; else chage -E -1 "$user"; fi
    in_ssh_dir keys_back || true  # apply never set keys aside through a link out of the home
    rm -f "$STATEFILE"
    rmdir "$STATE" /var/lib/soar 2>/dev/null || true
    say changed yes; say locked "$(locked && echo yes || echo no)"; say expired "$(expired && echo yes || echo no)"
    say expect_locked "$prev_locked"; say expect_expired "$([ "$prev_expire" = 0 ] && echo yes || echo no)"
    ;;
  *) die 2 "mode must be apply, verify or revert" ;;
esac

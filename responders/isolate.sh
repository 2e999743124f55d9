# isolate: cut the host off the network except loopback, management/bastion addresses and
# log-shipping endpoints. A dead-man timer reverts unless the controller confirms in time.
#   apply   --mgmt ADDR|CIDR... [--log IP:PORT]... [--deadman SECONDS] [--release-after SECONDS] [--backend nft|iptables]
#           [--persist [--boot-deadman SECONDS]]   (kept on disk and re-applied at boot, see _lib.sh)
#   confirm (disarm the dead-man timer)   verify   revert   boot FILE (what the boot hook runs)
mode=${1:-}; [ $# -gt 0 ] && shift
MGMT=""; LOGS=""; DEADMAN=60; RELEASE=0; BACKEND=""; PERSIST=no; BOOT_DEADMAN=900; BOOTING=no
PERSISTED=$(persist_dir)
if [ "$mode" = boot ]; then
  [ "${1:-}" = "$PERSISTED/isolate.args" ] && [ -f "$1" ] || die 2 "boot: not this namespace's isolate.args"
  read_persisted "$1"
  saved=$(sed -n '2,$p' "$1")
  set --
  while IFS= read -r line; do [ -n "$line" ] && set -- "$@" "$line"; done <<SAVED
$saved
SAVED
  now=$(date +%s)
  if [ "$ARGS_UNTIL" -gt 0 ] && [ "$now" -ge "$ARGS_UNTIL" ]; then
    mode=revert; set --  # its release time passed while the host was down
  else
    mode=apply; BOOTING=yes
    if [ "$ARGS_UNTIL" -gt 0 ]; then set -- "$@" --release-after $((ARGS_UNTIL - now)); fi
  fi
fi
while [ $# -gt 0 ]; do
  case "$1" in
    --persist) PERSIST=yes; shift ;;
    --boot-deadman) is_uint "${2:-}" && [ "$2" -ge 1 ] || die 2 "--boot-deadman: not whole seconds"; BOOT_DEADMAN=$2; shift 2 ;;
    --mgmt) is_net "${2:-}" || die 2 "--mgmt: not an address or CIDR"; MGMT="$MGMT $2"; shift 2 ;;
    --log) is_endpoint "${2:-}" || die 2 "--log: not ip:port"; LOGS="$LOGS $2"; shift 2 ;;
    --deadman) is_uint "${2:-}" && [ "$2" -ge 1 ] || die 2 "--deadman: not whole seconds"; DEADMAN=$2; shift 2 ;;
    --release-after) is_uint "${2:-}" || die 2 "--release-after: not whole seconds"; RELEASE=$2; shift 2 ;;
    --backend) case "${2:-}" in nft|iptables) BACKEND=$2 ;; *) die 2 "--backend: nft or iptables" ;; esac; shift 2 ;;
    *) die 2 "unknown argument" ;;
  esac
done
STATE=$(state_dir)
TABLE=soar_isolate
if [ -z "$BACKEND" ]; then
  if [ -f "$STATE/isolate.backend" ]; then BACKEND=$(cat "$STATE/isolate.backend");
  elif have nft; then BACKEND=nft; elif have iptables; then BACKEND=iptables; else die 5 "neither nft nor iptables"; fi
fi

nft_ruleset() {
  m4=""; m6=""
  for a in $MGMT; do if is_v6 "$a"; then m6="$m6${m6:+, }$a"; else m4="$m4${m4:+, }$a"; fi; done
  echo "table inet $TABLE {}"
  echo "delete table inet $TABLE"
  echo "table inet $TABLE {"
  [ -n "$m4" ] && echo "  set mgmt4 { type ipv4_addr; flags interval; elements = { $m4 } }"
  [ -n "$m6" ] && echo "  set mgmt6 { type ipv6_addr; flags interval; elements = { $m6 } }"
  echo "  chain input { type filter hook input priority -200; policy drop;"
  echo "    iif lo accept"
  [ -n "$m4" ] && echo "    ip saddr @mgmt4 accept"
  [ -n "$m6" ] && echo "    ip6 saddr @mgmt6 accept"
  for e in $LOGS; do
    port=${e##*:}; addr=${e%:*}; addr=${addr#[}; addr=${addr%]}; fam=ip; is_v6 "$addr" && fam=ip6
    echo "    $fam saddr $addr tcp sport $port ct state established accept"
  done
  echo "  }"
  echo "  chain output { type filter hook output priority -200; policy drop;"
  echo "    oif lo accept"
  [ -n "$m4" ] && echo "    ip daddr @mgmt4 accept"
  [ -n "$m6" ] && echo "    ip6 daddr @mgmt6 accept"
  for e in $LOGS; do
    port=${e##*:}; addr=${e%:*}; addr=${addr#[}; addr=${addr%]}; fam=ip; is_v6 "$addr" && fam=ip6
    echo "    $fam daddr $addr tcp dport $port accept"
  done
  echo "  }"
  echo "  chain forward { type filter hook forward priority -200; policy drop; }"
  echo "}"
}

# iptables has one tool per family: IPv4 rules in iptables, IPv6 ones in ip6tables (when the kernel has
# IPv6), so an iptables host is cut off on both, as the inet nft table does.
ipt6() { have ip6tables && have ip6tables-restore && ip6tables -S INPUT >/dev/null 2>&1; }
tools() { echo iptables; if ipt6; then echo ip6tables; fi; }
of_tool() { if is_v6 "$2"; then [ "$1" = ip6tables ]; else [ "$1" = iptables ]; fi; }  # TOOL ADDR

ipt_restore() {  # TOOL
  echo "*filter"
  echo ":SOAR-ISO-IN - [0:0]"
  echo ":SOAR-ISO-OUT - [0:0]"
  echo "-F SOAR-ISO-IN"
  echo "-F SOAR-ISO-OUT"
  echo "-A SOAR-ISO-IN -i lo -j ACCEPT"
  echo "-A SOAR-ISO-OUT -o lo -j ACCEPT"
  for a in $MGMT; do
    of_tool "$1" "$a" || continue
    echo "-A SOAR-ISO-IN -s $a -j ACCEPT"
    echo "-A SOAR-ISO-OUT -d $a -j ACCEPT"
  done
  for e in $LOGS; do
    port=${e##*:}; addr=${e%:*}; addr=${addr#[}; addr=${addr%]}
    of_tool "$1" "$addr" || continue
    echo "-A SOAR-ISO-IN -s $addr -p tcp --sport $port -m conntrack --ctstate ESTABLISHED -j ACCEPT"
    echo "-A SOAR-ISO-OUT -d $addr -p tcp --dport $port -j ACCEPT"
  done
  echo "-A SOAR-ISO-IN -j DROP"
  echo "-A SOAR-ISO-OUT -j DROP"
  "$1" -C INPUT -j SOAR-ISO-IN 2>/dev/null || echo "-I INPUT 1 -j SOAR-ISO-IN"
  "$1" -C OUTPUT -j SOAR-ISO-OUT 2>/dev/null || echo "-I OUTPUT 1 -j SOAR-ISO-OUT"
  "$1" -C FORWARD -j DROP -m comment --comment soar-isolate 2>/dev/null ||
    echo "-I FORWARD 1 -m comment --comment soar-isolate -j DROP"
  echo "COMMIT"
}

ipt_undo_code() {  # TOOL: shell code removing its chains (for the revert file)
  printf 'while %s -D INPUT -j SOAR-ISO-IN 2>/dev/null; do :; done\n' "$1"
  printf 'while %s -D OUTPUT -j SOAR-ISO-OUT 2>/dev/null; do :; done\n' "$1"
  printf 'while %s -D FORWARD -m comment --comment soar-isolate -j DROP 2>/dev/null; do :; done\n' "$1"
  printf '%s -F SOAR-ISO-IN 2>/dev/null; %s -X SOAR-ISO-IN 2>/dev/null\n' "$1" "$1"
  printf '%s -F SOAR-ISO-OUT 2>/dev/null; %s -X SOAR-ISO-OUT 2>/dev/null\n' "$1" "$1"
  ipt_tidy_code "$1" "$STATE/$1.created"
}

write_revert() {
  if [ "$BACKEND" = nft ]; then
    printf 'nft list table inet %s >/dev/null 2>&1 && nft delete table inet %s\n' "$TABLE" "$TABLE" >"$STATE/isolate.revert"
  else
    : >"$STATE/isolate.revert"
    for t in iptables ip6tables; do have "$t" && ipt_undo_code "$t" >>"$STATE/isolate.revert"; done
  fi
  echo "rm -f '$STATE/isolate.armed' '$STATE/isolate.backend' '$STATE/isolate.deadman.pid' '$STATE/isolate.release.pid' '$STATE/isolate.revert'" \
    >>"$STATE/isolate.revert"
  # a host restored by its dead-man or release timer must not be isolated again by the next boot
  echo "rm -f '$PERSISTED/isolate.args' '$PERSISTED/isolate.sh'" >>"$STATE/isolate.revert"
  boot_hook_tidy_code >>"$STATE/isolate.revert"
  echo "rmdir '$STATE' /run/soar 2>/dev/null || true" >>"$STATE/isolate.revert"
}

persist_isolation() {  # under persist_locked: the responder and its arguments, then the hook that reads them
  mkdir -p "$PERSISTED"
  persist_self "$PERSISTED" isolate.sh
  {
    if [ "$RELEASE" -gt 0 ]; then echo $(( $(date +%s) + RELEASE )); else echo 0; fi
    for a in $MGMT; do printf -- '--mgmt\n%s\n' "$a"; done
    for e in $LOGS; do printf -- '--log\n%s\n' "$e"; done
    printf -- '--deadman\n%s\n--backend\n%s\n' "$BOOT_DEADMAN" "$BACKEND"
  } >"$PERSISTED/isolate.args.tmp.$$"
  mv "$PERSISTED/isolate.args.tmp.$$" "$PERSISTED/isolate.args"
  install_boot_hook
}

present() {
  if [ "$BACKEND" = nft ]; then nft list table inet "$TABLE" >/dev/null 2>&1; return; fi
  iptables -C INPUT -j SOAR-ISO-IN 2>/dev/null || { have ip6tables && ip6tables -C INPUT -j SOAR-ISO-IN 2>/dev/null; }
}

case "$mode" in
  apply)
    [ -n "$MGMT" ] || die 2 "refusing to isolate without a management address (it would cut the controller off)"
    [ "$BACKEND" = nft ] && ! have nft && die 5 "nft is not installed"
    have "$BACKEND" || die 5 "$BACKEND is not installed"
    was=no; present && was=yes
    mkdir -p "$STATE"
    echo "$BACKEND" >"$STATE/isolate.backend"
    if [ "$BACKEND" = iptables ]; then for t in $(tools); do ipt_note "$t" >/dev/null; done; fi
    write_revert
    # Arm first: if the connection dies after the rules go in, the timer still restores the host.
    stop_timer "$STATE/isolate.deadman.pid"
    date +%s >"$STATE/isolate.armed"
    timer "$DEADMAN" "$STATE/isolate.armed" "$STATE/isolate.revert" >"$STATE/isolate.deadman.pid"
    if [ "$BACKEND" = nft ]; then
      nft_ruleset | nft -f -
    else
      for t in $(tools); do ipt_restore "$t" | "$t-restore" --noflush; done
    fi
    stop_timer "$STATE/isolate.release.pid"
    if [ "$RELEASE" -gt 0 ]; then timer "$RELEASE" - "$STATE/isolate.revert" >"$STATE/isolate.release.pid"; fi
    if [ "$BOOTING" = yes ]; then
      say booted yes
    elif [ "$PERSIST" = yes ]; then
      command -v soar_self >/dev/null 2>&1 || die 2 "--persist: the responder's own text was not sent"
      persist_locked persist_isolation
      say persisted yes; say boot_deadman "$BOOT_DEADMAN"
    else
      rm -f "$PERSISTED/isolate.args" "$PERSISTED/isolate.sh"  # this apply asked for none: an older copy goes
      tidy_boot_hook
      say persisted no
    fi
    say backend "$BACKEND"; say deadman "$DEADMAN"; say release_after "$RELEASE"; say was_isolated "$was"
    say isolated yes
    ;;
  confirm)
    present || die 3 "not isolated (the dead-man timer may already have restored the host)"
    rm -f "$STATE/isolate.armed"
    stop_timer "$STATE/isolate.deadman.pid"
    say confirmed yes
    ;;
  verify)
    say_boot_id
    if [ "$BACKEND" = nft ]; then
      # one listing, one lookup: verification runs on every host of a fleet-wide containment
      rules=$(nft list table inet "$TABLE" 2>/dev/null) || { say isolated no; exit 3; }
      say isolated yes; say backend nft
      [ "$(printf '%s\n' "$rules" | grep -c 'policy drop;')" -ge 3 ] || { say policy open; exit 3; }
      m4=""; m6=""
      for a in $MGMT; do if is_v6 "$a"; then m6="$m6${m6:+, }$a"; else m4="$m4${m4:+, }$a"; fi; done
      if [ -n "$m4" ]; then nft get element inet "$TABLE" mgmt4 "{ $m4 }" >/dev/null 2>&1 || { say management_missing "$m4"; exit 3; }; fi
      if [ -n "$m6" ]; then nft get element inet "$TABLE" mgmt6 "{ $m6 }" >/dev/null 2>&1 || { say management_missing "$m6"; exit 3; }; fi
    else
      if ! present; then say isolated no; exit 3; fi
      say isolated yes; say backend iptables
      for t in $(tools); do
        "$t" -C INPUT -j SOAR-ISO-IN 2>/dev/null && "$t" -C SOAR-ISO-IN -j DROP 2>/dev/null || { say open "$t"; exit 3; }
        for a in $MGMT; do
          of_tool "$t" "$a" || continue
          "$t" -C SOAR-ISO-IN -s "$a" -j ACCEPT 2>/dev/null || { say management_missing "$a"; exit 3; }
        done
      done
    fi
    if [ -f "$STATE/isolate.armed" ]; then say deadman armed; else say deadman disarmed; fi
    if [ -f "$PERSISTED/isolate.args" ]; then say persisted yes; else say persisted no; fi
    ;;
  revert)
    changed=no
    if present; then changed=yes; fi
    stop_timer "$STATE/isolate.deadman.pid"
    stop_timer "$STATE/isolate.release.pid"
    if [ -f "$STATE/isolate.revert" ]; then sh "$STATE/isolate.revert"; elif present; then write_revert; sh "$STATE/isolate.revert"; fi
    rm -f "$STATE/isolate.revert" "$PERSISTED/isolate.args" "$PERSISTED/isolate.sh"
    tidy_boot_hook
    present && die 1 "rules still present after revert"
    rmdir "$STATE" /run/soar 2>/dev/null || true
    say changed "$changed"; say isolated no
    ;;
  *) die 2 "mode must be apply, confirm, verify, revert or boot" ;;
esac

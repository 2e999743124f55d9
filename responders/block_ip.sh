# block_ip: drop traffic from and to one address or network, optionally expiring by itself.
#   apply ADDR|CIDR [--expire SECONDS] [--backend nft|iptables] [--persist]   verify ADDR|CIDR   revert ADDR|CIDR
#   boot FILE (what the boot hook runs: re-apply a persisted block with what is left of its expiry; see _lib.sh)
# nft: set block4/block6 of table inet soar_block, per-element timeouts (the kernel expires them).
# iptables (when nft is absent, or asked for): chains SOAR-BLOCK-IN/OUT, and expiry is a detached timer
# on the host running the address's revert file, the same mechanism as isolate's dead-man timer.
# verify and revert look at both backends, so neither needs to be told which one apply used.
mode=${1:-}; target=${2:-}
[ $# -ge 2 ] && shift 2 || die 2 "usage: apply|verify|revert ADDR|CIDR [--expire SECONDS] [--backend nft|iptables]"
EXPIRE=0; BACKEND=""; PERSIST=no; BOOTING=no
PERSISTED=$(persist_dir)
if [ "$mode" = boot ]; then
  case $target in "$PERSISTED"/block-*.args) ;; *) die 2 "boot: not one of this namespace's block-*.args" ;; esac
  [ -f "$target" ] || die 2 "boot: $target does not exist"
  read_persisted "$target"
  file=$target
  saved=$(sed -n '2,$p' "$file")
  set --
  while IFS= read -r line; do [ -n "$line" ] && set -- "$@" "$line"; done <<SAVED
$saved
SAVED
  target=${1:-}; [ $# -gt 0 ] && shift
  now=$(date +%s)
  if [ "$ARGS_UNTIL" -gt 0 ] && [ "$now" -ge "$ARGS_UNTIL" ]; then
    mode=expired  # it expired while the host was down: its persisted copy goes, nothing is applied
  else
    mode=apply; BOOTING=yes
    if [ "$ARGS_UNTIL" -gt 0 ]; then set -- "$@" --expire $((ARGS_UNTIL - now)); fi
  fi
fi
while [ $# -gt 0 ]; do
  case "$1" in
    --persist) PERSIST=yes; shift ;;
    --expire) is_uint "${2:-}" || die 2 "--expire: not whole seconds"; EXPIRE=$2; shift 2 ;;
    --backend) case "${2:-}" in nft|iptables) BACKEND=$2 ;; *) die 2 "--backend: nft or iptables" ;; esac; shift 2 ;;
    *) die 2 "unknown argument" ;;
  esac
done
is_net "$target" || die 2 "not an address or CIDR"
if [ -z "$BACKEND" ]; then
  if have nft; then BACKEND=nft; elif have iptables; then BACKEND=iptables; else die 5 "neither nft nor iptables"; fi
fi
TABLE=soar_block
SET=block4; IPT=iptables
if is_v6 "$target"; then SET=block6; IPT=ip6tables; fi
STATE=$(state_dir)
KEY=$(printf '%s' "$target" | tr '/:' '__')
REVERT="$STATE/block-$KEY.revert"
PIDF="$STATE/block-$KEY.pid"
ARGS="$PERSISTED/block-$KEY.args"

# drop this block's persisted copy (and the responder's, and the hook, once nothing is left); the _code form is
# for the iptables revert file, which an expiry timer runs without this library
persist_drop() {
  rm -f "$ARGS"
  for a in "$PERSISTED"/block-*.args; do [ -f "$a" ] && return 0; done
  rm -f "$PERSISTED/block_ip.sh"
  tidy_boot_hook
}
persist_drop_code() {
  printf "rm -f '%s'\n" "$ARGS"
  printf "for a in '%s'/block-*.args; do [ -f \"\$a\" ] && break; a=; done\n" "$PERSISTED"
  printf "[ -n \"\${a:-}\" ] || rm -f '%s/block_ip.sh'\n" "$PERSISTED"
  boot_hook_tidy_code
}
persist() {
  command -v soar_self >/dev/null 2>&1 || die 2 "--persist: the responder's own text was not sent"
  persist_locked persist_block
}
persist_block() {  # under persist_locked
  mkdir -p "$PERSISTED"
  persist_self "$PERSISTED" block_ip.sh
  {
    if [ "$EXPIRE" -gt 0 ]; then echo $(( $(date +%s) + EXPIRE )); else echo 0; fi
    printf '%s\n--backend\n%s\n' "$target" "$BACKEND"
  } >"$ARGS.tmp.$$"
  mv "$ARGS.tmp.$$" "$ARGS"
  install_boot_hook
}

nft_present() { have nft && nft get element inet "$TABLE" "$SET" "{ $target }" >/dev/null 2>&1; }
ipt_present() { have "$IPT" && "$IPT" -C SOAR-BLOCK-IN -s "$target" -j DROP 2>/dev/null; }
present() { nft_present || ipt_present; }

# one transaction: creates the table when absent, keeps the sets' elements, and writes each chain's rules
# afresh (declaring rules inside `table { chain { ... } }` would append a copy on every apply)
nft_table() {
  nft -f - <<NFT
table inet $TABLE {
  set block4 { type ipv4_addr; flags interval, timeout; }
  set block6 { type ipv6_addr; flags interval, timeout; }
  chain input { type filter hook input priority -190; }
  chain output { type filter hook output priority -190; }
  chain forward { type filter hook forward priority -190; }
}
flush chain inet $TABLE input
flush chain inet $TABLE output
flush chain inet $TABLE forward
add rule inet $TABLE input ip saddr @block4 drop
add rule inet $TABLE input ip6 saddr @block6 drop
add rule inet $TABLE output ip daddr @block4 drop
add rule inet $TABLE output ip6 daddr @block6 drop
add rule inet $TABLE forward ip saddr @block4 drop
add rule inet $TABLE forward ip6 saddr @block6 drop
NFT
}
empty_set() { ! nft list set inet "$TABLE" "$1" 2>/dev/null | grep -q 'elements'; }

nft_apply() {
  nft_table
  timeout=""; [ "$EXPIRE" -gt 0 ] && timeout=" timeout ${EXPIRE}s"
  if nft_present; then
    printf 'delete element inet %s %s { %s }\nadd element inet %s %s { %s%s }\n' \
      "$TABLE" "$SET" "$target" "$TABLE" "$SET" "$target" "$timeout" | nft -f -
  else
    nft add element inet "$TABLE" "$SET" "{ $target$timeout }"
  fi
}
nft_revert() {
  nft_present && nft delete element inet "$TABLE" "$SET" "{ $target }"
  if have nft && nft list table inet "$TABLE" >/dev/null 2>&1 && empty_set block4 && empty_set block6; then
    nft delete table inet "$TABLE"
  fi
}

# the address's own revert file: what unblock and the expiry timer run (idempotent; the chains go with
# the last address, then what the first soar rule made iptables create)
write_ipt_revert() {
  {
    printf "while %s -D SOAR-BLOCK-IN -s '%s' -j DROP 2>/dev/null; do :; done\n" "$IPT" "$target"
    printf "while %s -D SOAR-BLOCK-OUT -d '%s' -j DROP 2>/dev/null; do :; done\n" "$IPT" "$target"
    cat <<IPT
if [ -z "\$($IPT -S SOAR-BLOCK-IN 2>/dev/null | grep -v '^-N')\$($IPT -S SOAR-BLOCK-OUT 2>/dev/null | grep -v '^-N')" ]; then
  while $IPT -D INPUT -j SOAR-BLOCK-IN 2>/dev/null; do :; done
  while $IPT -D FORWARD -j SOAR-BLOCK-IN 2>/dev/null; do :; done
  while $IPT -D OUTPUT -j SOAR-BLOCK-OUT 2>/dev/null; do :; done
  $IPT -X SOAR-BLOCK-IN 2>/dev/null; $IPT -X SOAR-BLOCK-OUT 2>/dev/null
fi
IPT
    ipt_tidy_code "$IPT" "$STATE/$IPT.created"
    persist_drop_code
    printf "rm -f '%s' '%s'\n" "$PIDF" "$REVERT"
    printf "rmdir '%s' /run/soar 2>/dev/null || true\n" "$STATE"
  } >"$REVERT"
}
ipt_apply() {
  have "$IPT" || die 5 "$IPT is not installed"
  have "$IPT-restore" || die 5 "$IPT-restore is not installed"
  mkdir -p "$STATE"
  ipt_note "$IPT" >/dev/null
  write_ipt_revert
  {
    echo "*filter"
    "$IPT" -S SOAR-BLOCK-IN >/dev/null 2>&1 || echo ":SOAR-BLOCK-IN - [0:0]"
    "$IPT" -S SOAR-BLOCK-OUT >/dev/null 2>&1 || echo ":SOAR-BLOCK-OUT - [0:0]"
    "$IPT" -C INPUT -j SOAR-BLOCK-IN 2>/dev/null || echo "-I INPUT 1 -j SOAR-BLOCK-IN"
    "$IPT" -C FORWARD -j SOAR-BLOCK-IN 2>/dev/null || echo "-I FORWARD 1 -j SOAR-BLOCK-IN"
    "$IPT" -C OUTPUT -j SOAR-BLOCK-OUT 2>/dev/null || echo "-I OUTPUT 1 -j SOAR-BLOCK-OUT"
    ipt_present || printf -- '-A SOAR-BLOCK-IN -s %s -j DROP\n-A SOAR-BLOCK-OUT -d %s -j DROP\n' "$target" "$target"
    echo "COMMIT"
  } | "$IPT-restore" --noflush
  # a new apply replaces the expiry (none: permanent), as a new nft element timeout does
  stop_timer "$PIDF"
  if [ "$EXPIRE" -gt 0 ]; then timer "$EXPIRE" - "$REVERT" >"$PIDF"; fi
}
ipt_revert() {
  stop_timer "$PIDF"
  if [ -f "$REVERT" ]; then sh "$REVERT"; elif ipt_present; then mkdir -p "$STATE"; write_ipt_revert; sh "$REVERT"; fi
}

case "$mode" in
  apply)
    [ "$BACKEND" = nft ] && ! have nft && die 5 "nft is not installed"
    was=no; present && was=yes
    if [ "$BACKEND" = nft ]; then nft_apply; else ipt_apply; fi
    # established connections of the address die with their next packet; drop their conntrack entries too
    if have conntrack; then conntrack -D -s "${target%/*}" >/dev/null 2>&1 || true; fi
    if [ "$BOOTING" = yes ]; then
      say booted yes
    elif [ "$PERSIST" = yes ]; then
      persist; say persisted yes
    else
      persist_drop; say persisted no  # this apply asked for none: an older copy goes
    fi
    say backend "$BACKEND"; say blocked yes; say was_blocked "$was"; say expire "$EXPIRE"
    ;;
  expired)
    persist_drop
    say booted expired
    ;;
  verify)
    say_boot_id
    if nft_present; then say backend nft; elif ipt_present; then say backend iptables; fi
    if [ -f "$ARGS" ]; then say persisted yes; else say persisted no; fi
    if present; then say blocked yes; else say blocked no; exit 3; fi
    ;;
  revert)
    changed=no
    if present; then changed=yes; fi
    nft_revert
    ipt_revert
    persist_drop
    present && die 1 "still blocked after revert"
    say changed "$changed"; say blocked no
    ;;
  *) die 2 "mode must be apply, verify, revert or boot" ;;
esac

# block_ip: drop traffic from and to one address or network, optionally expiring by itself
# (an nftables set with per-element timeouts; iptables has no expiry, so it is refused there).
#   apply ADDR|CIDR [--expire SECONDS]   verify ADDR|CIDR   revert ADDR|CIDR
mode=${1:-}; target=${2:-}
[ $# -ge 2 ] && shift 2 || die 2 "usage: apply|verify|revert ADDR|CIDR [--expire SECONDS]"
EXPIRE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --expire) is_uint "${2:-}" || die 2 "--expire: not whole seconds"; EXPIRE=$2; shift 2 ;;
    *) die 2 "unknown argument" ;;
  esac
done
is_net "$target" || die 2 "not an address or CIDR"
have nft || die 5 "nft is not installed"
TABLE=soar_block
SET=block4; is_v6 "$target" && SET=block6

present() { nft get element inet "$TABLE" "$SET" "{ $target }" >/dev/null 2>&1; }
ensure_table() {
  nft -f - <<NFT
table inet $TABLE {
  set block4 { type ipv4_addr; flags interval, timeout; }
  set block6 { type ipv6_addr; flags interval, timeout; }
  chain input { type filter hook input priority -190; ip saddr @block4 drop; ip6 saddr @block6 drop; }
  chain output { type filter hook output priority -190; ip daddr @block4 drop; ip6 daddr @block6 drop; }
  chain forward { type filter hook forward priority -190; ip saddr @block4 drop; ip6 saddr @block6 drop; }
}
NFT
}
empty_set() { ! nft list set inet "$TABLE" "$1" 2>/dev/null | grep -q 'elements'; }

case "$mode" in
  apply)
    ensure_table
    was=no; present && was=yes
    timeout=""; [ "$EXPIRE" -gt 0 ] && timeout=" timeout ${EXPIRE}s"
    if [ "$was" = yes ]; then
      printf 'delete element inet %s %s { %s }\nadd element inet %s %s { %s%s }\n' \
        "$TABLE" "$SET" "$target" "$TABLE" "$SET" "$target" "$timeout" | nft -f -
    else
      nft add element inet "$TABLE" "$SET" "{ $target$timeout }"
    fi
    # established connections of the address die with their next packet; drop their conntrack entries too
    if have conntrack; then conntrack -D -s "${target%/*}" >/dev/null 2>&1 || true; fi
    say blocked yes; say was_blocked "$was"; say expire "$EXPIRE"
    ;;
  verify)
    if present; then say blocked yes; else say blocked no; exit 3; fi
    ;;
  revert)
    changed=no
    if present; then nft delete element inet "$TABLE" "$SET" "{ $target }"; changed=yes; fi
    if nft list table inet "$TABLE" >/dev/null 2>&1 && empty_set block4 && empty_set block6; then
      nft delete table inet "$TABLE"
    fi
    present && die 1 "still blocked after revert"
    say changed "$changed"; say blocked no
    ;;
  *) die 2 "mode must be apply, verify or revert" ;;
esac

# probe: can this host open a new TCP connection to ADDR:PORT? Used from a peer to prove containment.
#   check ADDR PORT SECONDS
mode=${1:-}; addr=${2:-}; port=${3:-}; secs=${4:-3}
[ "$mode" = check ] || die 2 "mode must be check"
{ is_ip4 "$addr" || is_ip6 "$addr"; } || die 2 "not an address"
is_uint "$port" && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die 2 "not a port"
is_uint "$secs" || die 2 "not whole seconds"
if have nc; then
  if nc -z -w "$secs" "$addr" "$port" >/dev/null 2>&1; then r=yes; else r=no; fi
elif have bash && have timeout; then
  if timeout "$secs" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$addr" "$port" >/dev/null 2>&1; then r=yes; else r=no; fi
else
  die 5 "neither nc nor bash+timeout to probe with"
fi
say reachable "$r"

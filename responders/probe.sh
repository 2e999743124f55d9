# probe: can this host open a new TCP connection to ADDR:PORT? Used from a peer to prove containment.
#   check ADDR PORT SECONDS
# reachable=yes: connected. reachable=no: no answer within SECONDS (the SYN was dropped, as isolation and
# blocks do). reachable=refused: something answered (a reset, an ICMP error): not reachable, yet no proof
# of a drop either (sshd down, a wrong address), so verification that expects "no" does not accept it.
mode=${1:-}; addr=${2:-}; port=${3:-}; secs=${4:-3}
[ "$mode" = check ] || die 2 "mode must be check"
{ is_ip4 "$addr" || is_ip6 "$addr"; } || die 2 "not an address"
is_uint "$port" && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die 2 "not a port"
is_uint "$secs" && [ "$secs" -ge 1 ] || die 2 "not whole seconds"
have timeout || die 5 "timeout (coreutils) is missing"
# `timeout` exits 124 when it had to stop the attempt: nothing answered
if have nc; then
  timeout "$secs" nc -z "$addr" "$port" >/dev/null 2>&1 && rc=0 || rc=$?
elif have bash; then
  timeout "$secs" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$addr" "$port" >/dev/null 2>&1 && rc=0 || rc=$?
else
  die 5 "neither nc nor bash to probe with"
fi
case $rc in 0) r=yes ;; 124) r=no ;; *) r=refused ;; esac
say reachable "$r"

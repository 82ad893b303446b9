# A lab of "hosts" on one machine: network namespaces joined by veth pairs to a bridge that
# lives in a namespace of its own, so nothing outside is touched. Source it (as root):
#
#   source cluster/netns/lab.sh
#   lab_up pl 4          # namespaces pl-h1..pl-h4 at 10.231.0.1..4/24, bridge in pl-br
#   ip netns exec pl-h1 prunelab-coordinator --worker-endpoint tcp://10.231.0.1:5555 ...
#   lab_link pl 3 down   # cut host 3 off (its cable), lab_link pl 3 up to heal
#   lab_fault pl 2 50 5  # 50 ms delay, 5 % loss on host 2's egress; lab_fault pl 2 0 0 clears it
#   lab_down pl
#
# Names stay within 15 characters for a PREFIX of up to 6 characters.
LAB_NET=${LAB_NET:-10.231.0}

lab_host() { echo "$1-h$2"; }
lab_addr() { echo "$LAB_NET.$2"; }

lab_up() {
  local p=$1 n=$2 i
  ip netns add "$p-br" || return 1
  ip netns exec "$p-br" ip link add br0 type bridge || return 1
  ip netns exec "$p-br" ip link set br0 up
  ip netns exec "$p-br" ip link set lo up
  for ((i = 1; i <= n; i++)); do
    ip netns add "$p-h$i" || return 1
    ip link add "$p-h${i}a" type veth peer name "$p-h${i}b" || return 1
    ip link set "$p-h${i}a" netns "$p-h$i"
    ip link set "$p-h${i}b" netns "$p-br"
    ip netns exec "$p-br" ip link set "$p-h${i}b" master br0 up
    ip netns exec "$p-h$i" ip link set lo up
    ip netns exec "$p-h$i" ip link set "$p-h${i}a" name eth0
    ip netns exec "$p-h$i" ip addr add "$LAB_NET.$i/24" dev eth0
    ip netns exec "$p-h$i" ip link set eth0 up
  done
}

# lab_link PREFIX I up|down: host I's cable, at the bridge's end (the host sees no link change
# beyond lost packets, as with a failed switch port).
lab_link() { ip netns exec "$1-br" ip link set "$1-h$2b" "$3"; }

# lab_fault PREFIX I DELAY_MS LOSS_PERCENT: delay and random loss on host I's egress, with
# tc netem where the kernel has sch_netem, else with an iptables NFQUEUE rule and netfault
# (cluster/netns/netfault.cc; $NETFAULT is its path). Prints which one it used.
# lab_fault PREFIX I 0 0 removes it.
lab_fault() {
  local p=$1 i=$2 delay=$3 loss=$4 ns="$1-h$2"
  ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
  ip netns exec "$ns" iptables -D OUTPUT -o eth0 -j NFQUEUE --queue-num "$i" 2>/dev/null || true
  if [ -f "/run/lab-netfault-$ns.pid" ]; then kill "$(cat "/run/lab-netfault-$ns.pid")" 2>/dev/null || true; rm -f "/run/lab-netfault-$ns.pid"; fi
  [ "$delay" = 0 ] && [ "$loss" = 0 ] && return 0
  if ip netns exec "$ns" tc qdisc add dev eth0 root netem delay "${delay}ms" loss "${loss}%" 2>/dev/null; then
    echo "tc netem"
    return 0
  fi
  [ -x "${NETFAULT:-}" ] || { echo "lab_fault: no sch_netem in this kernel and no netfault binary (\$NETFAULT)" >&2; return 1; }
  ip netns exec "$ns" iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num "$i" || return 1
  ip netns exec "$ns" "$NETFAULT" --queue "$i" --delay-ms "$delay" --loss "$(awk -v l="$loss" 'BEGIN{print l/100}')" >/dev/null \
    2>>"${LAB_LOG_DIR:-/tmp}/netfault-$ns.log" &
  echo $! >"/run/lab-netfault-$ns.pid"
  echo "netfault (NFQUEUE; this kernel has no sch_netem)"
}

lab_down() {
  local p=$1 ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^$p-"); do
    if [ -f "/run/lab-netfault-$ns.pid" ]; then kill "$(cat "/run/lab-netfault-$ns.pid")" 2>/dev/null || true; rm -f "/run/lab-netfault-$ns.pid"; fi
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

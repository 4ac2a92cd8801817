# shellcheck shell=bash
# Pods on one machine for the demo and the benchmarks: a "node" network namespace holding a
# bridge, pods = network namespaces with a veth on it + a cgroup v2 directory under a scratch
# cgroup that meshlet attaches to. Names start with the caller's PREFIX (e.g. mlt-demo) so a
# crashed run can be cleaned with `pods_cleanup PREFIX`.

cgroup2_root() {
  awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts
}

# pods_node_up PREFIX: node netns PREFIX-node with bridge br0, and cgroup <cg2>/PREFIX.
pods_node_up() {
  local prefix=$1 cg
  cg="$(cgroup2_root)/$prefix"
  mkdir -p "$cg"
  ip netns add "$prefix-node"
  ip -n "$prefix-node" link set lo up
  ip -n "$prefix-node" link add br0 type bridge
  ip -n "$prefix-node" link set br0 up
}

# pods_add PREFIX NAME IPV4 [IPV6]: netns PREFIX-NAME, veth to the bridge, cgroup PREFIX/NAME.
pods_add() {
  local prefix=$1 name=$2 ip4=$3 ip6=${4:-} idx host_if
  idx=$(ip -n "$prefix-node" -o link | grep -c 'master br0' || true)
  host_if="$(echo "$prefix" | tr -cd 'a-z0-9' | cut -c1-8)v$((idx + 1))"
  ip netns add "$prefix-$name"
  ip -n "$prefix-node" link add "$host_if" type veth peer name eth0 netns "$prefix-$name"
  ip -n "$prefix-node" link set "$host_if" master br0 up
  ip -n "$prefix-$name" link set lo up
  ip -n "$prefix-$name" addr add "$ip4/24" dev eth0
  [ -n "$ip6" ] && ip -n "$prefix-$name" addr add "$ip6/64" dev eth0 nodad
  ip -n "$prefix-$name" link set eth0 up
  ip -n "$prefix-$name" route add default dev eth0
  [ -n "$ip6" ] && ip -n "$prefix-$name" -6 route add default dev eth0
  mkdir -p "$(cgroup2_root)/$prefix/$name"
}

# pods_exec PREFIX NAME CMD...: run CMD in the pod (cgroup first, then netns: `ip netns exec`
# remounts /sys, so the cgroup move must come before it).
pods_exec() {
  local prefix=$1 name=$2
  shift 2
  sh -c 'echo $$ > "$0/cgroup.procs"; exec ip netns exec "$@"' \
    "$(cgroup2_root)/$prefix/$name" "$prefix-$name" "$@"
}

# pods_cleanup PREFIX: kill what runs in the pods' cgroups (by PID), delete netns and cgroups.
pods_cleanup() {
  local prefix=$1 cg ns pid
  cg="$(cgroup2_root)/$prefix"
  if [ -d "$cg" ]; then
    # Read each cgroup.procs whole (it shrinks as processes exit) and repeat until empty.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      local left=0 pids
      for procs in "$cg"/*/cgroup.procs "$cg/cgroup.procs"; do
        [ -f "$procs" ] || continue
        pids=$(cat "$procs")
        for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; left=1; done
      done
      [ "$left" = 0 ] && break
      sleep 0.2
    done
    for d in "$cg"/*/; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
    rmdir "$cg" 2>/dev/null || true
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
}

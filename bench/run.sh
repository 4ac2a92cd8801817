#!/usr/bin/env bash
# meshlet benchmarks, run by hand (not part of CI):
#   bench/run.sh [--quick] [--reps N] [--only p2p,conn,footprint,xnode,l7] [--no-build] [--hold]
#
#   1. same-node pod->pod: no mesh vs meshlet (splice) vs sidecar-like (haproxy + iptables)
#      vs a bare sockops + sk_msg redirect (bench/bare_redirect.bpf.c, the floor of splicing):
#      sockperf ping-pong latency (p50/p99) and iperf3 single-stream throughput
#   2. connection cost with 1 / 1 000 / 10 000 Services: meshlet vs kube-proxy-style iptables
#   3. agent footprint with 10 000 Services / 100 000 endpoints: RSS, BPF map memory, sync time
#   4. cross-node (two node netns, one agent each): plaintext vs meshlet mTLS (HBONE) vs a
#      stunnel pair: latency, throughput, new connection over the warm pool, agent CPU
#   5. same-node HTTP/1.1 through one L7 proxy (nginx server): no mesh vs meshlet's L7 path
#      vs haproxy in mode http: requests/s per proxy core at saturation (wrk), and p50/p99 and
#      proxy CPU at a fixed 1 000 req/s (bench/httpload.cc, open loop)
#
# Everything it creates is named mlt-bench*: network namespaces, the cgroup subtree
# <cgroup2>/mlt-bench (meshlet attaches only at its mesh/, xa/ and xb/ children, the bare
# redirect at bare/), the bpffs pin dirs /sys/fs/bpf/mlt-bench{,-xa,-xb,-bare} and
# /run/mlt-bench. Leftovers of an interrupted run are removed first. The medians land in the
# generated sections of bench/README.md (parts 1-3 in one, rewritten only by a run of all
# three; parts 4 and 5 in their own).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source tools/lib/pods.sh   # cgroup2_root
source bench/gen.sh

QUICK=0
REPS=5
ONLY=p2p,conn,footprint,xnode,l7
BUILD_AGENT=1
HOLD=0
usage() { echo "usage: bench/run.sh [--quick] [--reps N] [--only p2p,conn,footprint,xnode,l7] [--no-build] [--hold]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1; REPS=1 ;;
    --reps) REPS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --no-build) BUILD_AGENT=0 ;;   # use the meshletd/meshlet already in build-bench/
    --hold) HOLD=1 ;;              # parts 4 and 5: set up, then wait (for profiling by hand)
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) usage ;;
  esac
  shift
done
for part in ${ONLY//,/ }; do
  case $part in p2p|conn|footprint|xnode|l7) ;; *) usage ;; esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
# Parts 1-3 and 5 share one node and one agent; part 4 has two nodes and two agents of its own.
if want p2p || want conn || want footprint; then P123=1; else P123=0; fi
if [ "$P123" = 1 ] || want l7; then SINGLE=1; else SINGLE=0; fi
if [ "$QUICK" = 1 ]; then T_PP=2; T_IPERF=2; T_CONN=1; SYNC_REPS=2; else T_PP=5; T_IPERF=5; T_CONN=3; SYNC_REPS=5; fi
XRATE=5000                   # part 4: request/response rate for the CPU cost (1 KB each way)
# Part 5: wrk at saturation for T_WRK s with WRK_CONNS connections, then httpload at L7_RATE
# req/s for T_RATE s over L7_CONNS connections, per path and rep.
if [ "$QUICK" = 1 ]; then T_WRK=2; T_RATE=2; else T_WRK=6; T_RATE=8; fi
WRK_CONNS=16
L7_RATE=1000
L7_CONNS=8
L7_VIP=198.19.0.30           # Service web, port 80 named http: the L7 path

P=mlt-bench
NODE=mlt-bench-node          # also the agent's --node-name
RUN=/run/$P
BPFFS=/sys/fs/bpf/$P
SOCK=$RUN/admin.sock
CG2=$(cgroup2_root)
CG=$CG2/$P                   # whole subtree
CG_MESH=$CG/mesh             # meshlet attaches here
CG_PLAIN=$CG/plain           # no-mesh, sidecar and kube-proxy pods: nothing attached
CG_BARE=$CG/bare             # the bare sockops + sk_msg redirect (bench/bare_redirect.bpf.c)
BUILD=$ROOT/build-bench
MESHLETD=$BUILD/agent/meshletd
MESHLET=$BUILD/tools/meshlet/meshlet
AGENT_PID=""
BARE_SOCKS_SEEN=""
BUILT_FROM=""
RESULTS=$RUN/results.txt     # "key value" lines, one per measurement
README=$ROOT/bench/README.md
LOGS=/tmp/$P-logs            # logs of a failed run
# Part 4 (cross-node): node netns mlt-bench-xa / -xb, each agent attached at its own subtree
# and pinned under its own bpffs dir; both read the same cluster YAML and share one CA.
XA=$P-xa
XB=$P-xb
XNODE_A=$P-node-a            # the agents' --node-name
XNODE_B=$P-node-b
CG_XA=$CG/xa
CG_XB=$CG/xb
XRUN=$RUN/xnode
XAGENT_A=""
XAGENT_B=""

log() { printf '\033[1m[bench %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------- cleanup

kill_pid() {  # kill_pid PID: TERM, then KILL after 5 s
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  # A failed run keeps its logs for a look (the next run removes them).
  if [ "$rc" != 0 ] && [ -d "$RUN" ]; then
    rm -rf "$LOGS"; mkdir -p "$LOGS"; cp "$RUN"/*.log "$RUN"/*.cfg "$RUN"/config/*.yaml "$LOGS"/ 2>/dev/null
    echo "logs of the failed run: $LOGS" >&2
  fi
  if [ -n "$AGENT_PID" ]; then kill_pid "$AGENT_PID"; AGENT_PID=""; fi
  # An agent of an interrupted run: its pidfile, checked against the command line.
  if [ -f "$RUN/meshletd.pid" ]; then
    local pid
    pid=$(cat "$RUN/meshletd.pid")
    if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "--bpffs $BPFFS"; then kill_pid "$pid"; fi
  fi
  [ -x "$MESHLETD" ] && [ -d "$BPFFS" ] && "$MESHLETD" --uninstall --bpffs "$BPFFS" >/dev/null 2>&1
  # The bare redirect: its programs leave with the cgroup below, its pins here.
  [ -d "$CG_BARE" ] && bpftool cgroup detach "$CG_BARE" sock_ops pinned "$BPFFS-bare/bare_sockops" 2>/dev/null
  rm -rf "$BPFFS-bare"
  # The two cross-node agents, likewise.
  [ -n "$XAGENT_A" ] && kill_pid "$XAGENT_A"
  [ -n "$XAGENT_B" ] && kill_pid "$XAGENT_B"
  XAGENT_A=""; XAGENT_B=""
  local x
  for x in xa xb; do
    if [ -f "$RUN/meshletd-$x.pid" ]; then
      local xpid
      xpid=$(cat "$RUN/meshletd-$x.pid")
      if tr '\0' ' ' 2>/dev/null <"/proc/$xpid/cmdline" | grep -q -- "--bpffs $BPFFS-$x "; then kill_pid "$xpid"; fi
    fi
    [ -x "$MESHLETD" ] && [ -d "$BPFFS-$x" ] && "$MESHLETD" --uninstall --bpffs "$BPFFS-$x" >/dev/null 2>&1
  done
  # Processes of the pods, by PID, from every cgroup of the subtree. Read each cgroup.procs
  # whole before killing: it shrinks as processes exit, and reading it line by line while
  # killing skips PIDs. Repeat until the subtree is empty.
  if [ -d "$CG" ]; then
    local pids pid try
    for try in 1 2 3 4 5; do
      pids=$(find "$CG" -name cgroup.procs -exec cat {} + 2>/dev/null)
      [ -z "$pids" ] && break
      for pid in $pids; do kill -9 "$pid" 2>/dev/null; done
      sleep 0.3
    done
    find "$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$CG" ] && echo "warning: could not remove $CG (processes left: $pids)" >&2
  fi
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$RUN"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------- tools

need() {  # need CMD PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2"
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

install_tools() {
  need sockperf sockperf; need iperf3 iperf3; need haproxy haproxy; need iptables iptables
  need curl curl; need jq jq; need bpftool bpftool; need clang clang; need g++ g++; need cmake cmake; need ip iproute2
  need stunnel4 stunnel4; need openssl openssl
  need wrk wrk; need nginx nginx-light
}

build() {
  # What the binaries are built from, as the tree is now (it may change while the run goes on).
  BUILT_FROM="$(git -C "$ROOT" rev-parse --short HEAD)$([ -n "$(git -C "$ROOT" status --porcelain -- agent bpf tools 2>/dev/null)" ] && echo " (with uncommitted changes in the tree)")"
  if [ "$BUILD_AGENT" = 0 ]; then
    [ -x "$MESHLETD" ] && [ -x "$MESHLET" ] || die "--no-build: no meshletd/meshlet in $BUILD yet"
    log "--no-build: using $MESHLETD ($(stat -c %y "$MESHLETD" | cut -d. -f1)) and $MESHLET as they are"
    g++ -O2 -std=c++17 -o "$RUN/connbench" "$ROOT/bench/connbench.cc"
    g++ -O2 -std=c++17 -o "$RUN/httpload" "$ROOT/bench/httpload.cc"
    return
  fi
  log "building meshletd and meshlet in $BUILD (Release)"
  # -Wno-restrict: GCC 12's -Wrestrict false positive on std::string at -O3 (GCC PR105329)
  # breaks the -Werror build in Release; the code is fine.
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Wno-restrict >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target meshletd meshlet >"$RUN/build.log" 2>&1 ||
    { tail -30 "$RUN/build.log"; die "build failed (log above)"; }
  g++ -O2 -std=c++17 -o "$RUN/connbench" "$ROOT/bench/connbench.cc"
  g++ -O2 -std=c++17 -o "$RUN/httpload" "$ROOT/bench/httpload.cc"
}

# ---------------------------------------------------------------------------- pods

# pod NAME IP CGPARENT [NODE_NETNS GATEWAY]: netns mlt-bench-NAME, veth to the bridge br0 of
# the node netns (default mlt-bench-node, no gateway: one L2 segment), cgroup CGPARENT/NAME.
POD_IDX=0
pod() {
  local name=$1 ip=$2 parent=$3 node=${4:-$P-node} gw=${5:-} host_if
  POD_IDX=$((POD_IDX + 1))
  host_if="mltbv$POD_IDX"
  ip netns add "$P-$name"
  ip -n "$node" link add "$host_if" type veth peer name eth0 netns "$P-$name"
  ip -n "$node" link set "$host_if" master br0 up
  ip -n "$P-$name" link set lo up
  ip -n "$P-$name" addr add "$ip/24" dev eth0
  ip -n "$P-$name" link set eth0 up
  if [ -n "$gw" ]; then ip -n "$P-$name" route add default via "$gw"; else ip -n "$P-$name" route add default dev eth0; fi
  # Many short connections per second: the whole ephemeral range (per netns sysctl).
  ip netns exec "$P-$name" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
  mkdir -p "$parent/$name"
  POD_CG[$name]=$parent/$name
}
declare -A POD_CG

# inpod NAME CMD...: run CMD in pod NAME (cgroup first: `ip netns exec` remounts /sys).
inpod() {
  local name=$1
  shift
  sh -c 'echo $$ > "$0/cgroup.procs"; exec ip netns exec "$@"' "${POD_CG[$name]}" "$P-$name" "$@"
}

# podbg NAME LOGNAME CMD...: start CMD in pod NAME in the background (killed by cleanup).
podbg() {
  local name=$1 logname=$2
  shift 2
  inpod "$name" "$@" >"$RUN/$logname.log" 2>&1 &
}

wait_port() {  # wait_port POD IP PORT
  for _ in $(seq 100); do
    ip netns exec "$P-$1" ss -Hltn "src $2:$3" 2>/dev/null | grep -q . && return 0
    sleep 0.05
  done
  die "nothing listens on $2:$3 in pod $1"
}

setup_pods() {
  log "pods: node netns $P-node with bridge br0; meshed mc/ms, plain pc/ps, sidecar sc/ss, kube-proxy kc"
  mkdir -p "$CG_MESH" "$CG_PLAIN"
  ip netns add "$P-node"
  ip -n "$P-node" link set lo up
  ip -n "$P-node" link add br0 type bridge
  ip -n "$P-node" link set br0 up
  pod mc 198.18.0.2 "$CG_MESH"    # meshlet client (enrolled)
  pod ms 198.18.0.3 "$CG_MESH"    # meshlet server (enrolled)
  pod pc 198.18.0.4 "$CG_PLAIN"   # no-mesh client
  pod ps 198.18.0.5 "$CG_PLAIN"   # no-mesh server (also the kube-proxy backend)
  pod sc 198.18.0.6 "$CG_PLAIN"   # sidecar client: haproxy outbound + iptables OUTPUT
  pod ss 198.18.0.7 "$CG_PLAIN"   # sidecar server: haproxy inbound + iptables PREROUTING
  pod kc 198.18.0.8 "$CG_PLAIN"   # kube-proxy-style client: N services of DNAT rules
  pod bc 198.18.0.9 "$CG_BARE"    # bare redirect client
  pod bs 198.18.0.10 "$CG_BARE"   # bare redirect server

  # Servers: sockperf on 11111, iperf3 on 5201, connbench on 8080.
  for s in ms:198.18.0.3 ps:198.18.0.5 bs:198.18.0.10; do
    local name=${s%%:*} ip=${s#*:}
    podbg "$name" "$name-sockperf" sockperf sr --tcp -i "$ip" -p 11111
    podbg "$name" "$name-iperf3" iperf3 -s -B "$ip" -p 5201
    podbg "$name" "$name-connbench" "$RUN/connbench" serve "$ip" 8080
  done
  # Sidecar server pod: the apps listen on 127.0.0.1 only; inbound goes through haproxy.
  podbg ss ss-sockperf sockperf sr --tcp -i 127.0.0.1 -p 11111
  podbg ss ss-iperf3 iperf3 -s -B 127.0.0.1 -p 5201
  setup_sidecars
  wait_port ms 198.18.0.3 11111; wait_port ms 198.18.0.3 5201; wait_port ms 198.18.0.3 8080
  wait_port ps 198.18.0.5 11111; wait_port ps 198.18.0.5 5201; wait_port ps 198.18.0.5 8080
  wait_port bs 198.18.0.10 11111; wait_port bs 198.18.0.10 5201
  setup_bare_redirect
  wait_port ss 127.0.0.1 11111; wait_port ss 127.0.0.1 5201
}

# The floor of splicing: bench/bare_redirect.bpf.c at $CG_BARE, pod IP to pod IP (no Service).
# Its sockops program inserts the sockets established from now on, so it goes in before any
# client connects (the servers only listen yet).
setup_bare_redirect() {
  clang -g -O2 -target bpf -Wall -Werror -I/usr/include/x86_64-linux-gnu \
    -c "$ROOT/bench/bare_redirect.bpf.c" -o "$RUN/bare_redirect.bpf.o"
  bpftool prog loadall "$RUN/bare_redirect.bpf.o" "$BPFFS-bare" pinmaps "$BPFFS-bare/maps"
  bpftool cgroup attach "$CG_BARE" sock_ops pinned "$BPFFS-bare/bare_sockops"
  bpftool prog attach pinned "$BPFFS-bare/bare_sk_msg" msg_verdict pinned "$BPFFS-bare/maps/bare_socks"
}

# bare_socks: entries in the bare redirect's sockhash (its live spliced sockets).
bare_socks() { bpftool -j map dump pinned "$BPFFS-bare/maps/bare_socks" 2>/dev/null | jq 'length'; }

# What an Istio sidecar does, with haproxy (TCP mode) in place of Envoy: in the client pod
# iptables nat OUTPUT redirects connections to the Service address to the local outbound
# listener, which connects to the server pod; in the server pod nat PREROUTING redirects
# inbound connections to the inbound listener, which connects to the app on 127.0.0.1.
# haproxy's own connections go to pod IPs / 127.0.0.1, which the destination-based rules do
# not match (Istio uses an owner match instead; same effect).
setup_sidecars() {
  local common='global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m'
  printf '%s\nlisten out_latency\n  bind 127.0.0.1:15001\n  server s 198.18.0.7:11111\nlisten out_bulk\n  bind 127.0.0.1:15002\n  server s 198.18.0.7:5201\n' \
    "$common" >"$RUN/haproxy-sc.cfg"
  printf '%s\nlisten in_latency\n  bind 198.18.0.7:15006\n  server s 127.0.0.1:11111\nlisten in_bulk\n  bind 198.18.0.7:15007\n  server s 127.0.0.1:5201\n' \
    "$common" >"$RUN/haproxy-ss.cfg"
  haproxy -c -q -f "$RUN/haproxy-sc.cfg" && haproxy -c -q -f "$RUN/haproxy-ss.cfg"
  podbg sc haproxy-sc haproxy -db -f "$RUN/haproxy-sc.cfg"
  podbg ss haproxy-ss haproxy -db -f "$RUN/haproxy-ss.cfg"
  ip netns exec "$P-sc" iptables -t nat -A OUTPUT -p tcp -d 198.19.0.10 --dport 11111 -j REDIRECT --to-ports 15001
  ip netns exec "$P-sc" iptables -t nat -A OUTPUT -p tcp -d 198.19.0.11 --dport 5201 -j REDIRECT --to-ports 15002
  ip netns exec "$P-ss" iptables -t nat -A PREROUTING -i eth0 -p tcp --dport 11111 -j REDIRECT --to-ports 15006
  ip netns exec "$P-ss" iptables -t nat -A PREROUTING -i eth0 -p tcp --dport 5201 -j REDIRECT --to-ports 15007
  wait_port sc 127.0.0.1 15001; wait_port ss 198.18.0.7 15006
}

# ---------------------------------------------------------------------------- agent

CLI() { "$MESHLET" --admin-socket "$SOCK" --bpffs "$BPFFS" "$@"; }
# The CLI prints `status -o json` as a one-element array: unwrap it.
status_json() { CLI status -o json 2>/dev/null | jq -c 'if type == "array" then .[0] else . end'; }
generation() { status_json | jq -r '.generation // -1' 2>/dev/null || echo -1; }

start_agent() {  # start_agent CONFIG_DIR LOGNAME
  "$MESHLETD" --config-dir "$1" --node-name "$NODE" --cgroup "$CG_MESH" --bpffs "$BPFFS" \
    --admin-socket "$SOCK" --metrics-addr "127.0.0.1:$METRICS_PORT" --readiness-addr 127.0.0.1:0 \
    --cni-socket "$RUN/cni.sock" --state-dir "$RUN/state" >"$RUN/$2.log" 2>&1 &
  AGENT_PID=$!
  echo "$AGENT_PID" >"$RUN/meshletd.pid"
  for _ in $(seq 600); do
    kill -0 "$AGENT_PID" 2>/dev/null || { tail "$RUN/$2.log"; die "meshletd exited"; }
    [ "$(generation)" -ge 1 ] 2>/dev/null && break
    sleep 0.1
  done
  local st
  st=$(status_json)
  [ "$(jq -r .config_ok <<<"$st")" = true ] ||
    { tail "$RUN/$2.log"; die "config not applied: $(jq -r .last_error <<<"$st")"; }
}

stop_agent() {
  [ -n "$AGENT_PID" ] && kill_pid "$AGENT_PID"
  AGENT_PID=""
  "$MESHLETD" --uninstall --bpffs "$BPFFS" >/dev/null 2>&1 || true
}

# set_config DIR FILE CONTENT_FILE: atomically replace DIR/FILE, wait for the next generation.
set_config() {
  local dir=$1 file=$2 src=$3 gen st
  gen=$(generation)
  cp "$src" "$RUN/.staged.yaml"
  mv "$RUN/.staged.yaml" "$dir/$file"
  for _ in $(seq 1200); do
    st=$(status_json)
    [ "$(jq -r .generation <<<"$st")" -gt "$gen" ] && return 0
    if [ "$(jq -r .last_error <<<"$st")" != "" ] && [ "$(jq -r .config_ok <<<"$st")" = false ]; then
      die "config rejected: $(jq -r .last_error <<<"$st")"
    fi
    sleep 0.05
  done
  die "the agent did not apply $file within 60 s"
}

spliced_total() { status_json | jq -r '.spliced_connections // 0'; }

free_port() {
  local p
  for p in $(seq 19020 19120); do
    ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
  die "no free TCP port in 19020-19120 on 127.0.0.1"
}

# ---------------------------------------------------------------------------- measurements

record() { echo "$1 $2" >>"$RESULTS"; }

# sockperf_pp CLIENT IP PORT KEY: ping-pong, 64-byte messages; records KEY.p50 / KEY.p99 (us).
sockperf_pp() {
  local out
  out=$(inpod "$1" sockperf pp --tcp -i "$2" -p "$3" -m 64 -t "$T_PP" 2>&1) ||
    { echo "$out" | tail -5 >&2; die "sockperf $4 failed"; }
  local p50 p99
  p50=$(awk '/percentile 50.000/ {print $NF}' <<<"$out")
  p99=$(awk '/percentile 99.000/ {print $NF}' <<<"$out")
  [ -n "$p50" ] || { echo "$out" | tail -5 >&2; die "sockperf $4: no percentiles"; }
  record "$4.p50" "$p50"; record "$4.p99" "$p99"
  log "  $4 sockperf p50=${p50}us p99=${p99}us"
}

# iperf CLIENT IP KEY [PORT]: single stream, records KEY.gbps (receiver side).
iperf() {
  local out gbps
  out=$(inpod "$1" iperf3 -c "$2" -p "${4:-5201}" -t "$T_IPERF" -J 2>&1) ||
    { echo "$out" | tail -5 >&2; die "iperf3 $3 failed"; }
  gbps=$(jq -r '(.end.sum_received.bits_per_second // 0) / 1e9' <<<"$out")
  if [ "$(jq -r '.error // empty' <<<"$out")" != "" ]; then
    log "  $3 iperf3 reported an error: $(jq -r '.error' <<<"$out")"
  fi
  record "$3.gbps" "$gbps"
  log "  $3 iperf3 $(printf '%.2f' "$gbps") Gbit/s"
}

# conn CLIENT IP PORT KEY: short-lived connections; records KEY.cps, KEY.p50, KEY.p99 (us).
conn() {
  local out
  out=$(inpod "$1" "$RUN/connbench" connect "$2" "$3" "$T_CONN" 2>&1) ||
    { echo "$out" >&2; die "connbench $4 failed"; }
  local cps p50 p99
  cps=$(grep -o 'cps=[0-9.]*' <<<"$out" | cut -d= -f2)
  p50=$(grep -o 'connect_p50_us=[0-9.]*' <<<"$out" | cut -d= -f2)
  p99=$(grep -o 'connect_p99_us=[0-9.]*' <<<"$out" | cut -d= -f2)
  record "$4.cps" "$cps"; record "$4.p50" "$p50"; record "$4.p99" "$p99"
  log "  $4 connect p50=${p50}us p99=${p99}us ${cps}/s"
}

# ------------------------------------------------------------ 1. same-node pod->pod

bench_pod_to_pod() {
  log "1. same-node pod->pod: $REPS rep(s), sockperf -t $T_PP, iperf3 -t $T_IPERF"
  local before after nom=0 spl_before spl_after
  spl_before=$(spliced_total)
  for rep in $(seq "$REPS"); do
    log " rep $rep/$REPS"
    before=$(spliced_total)
    sockperf_pp pc 198.18.0.5 11111 p2p.nomesh
    sockperf_pp mc 198.19.0.10 11111 p2p.meshlet
    sockperf_pp sc 198.19.0.10 11111 p2p.sidecar
    sockperf_pp bc 198.18.0.10 11111 p2p.bare
    iperf pc 198.18.0.5 p2p.nomesh
    if [ "$rep" = 1 ]; then
      # The bare redirect must splice, or its row means nothing: its sockhash holds both ends
      # of the iperf3 connections while they run.
      inpod bc iperf3 -c 198.18.0.10 -p 5201 -t "$T_IPERF" -J >"$RUN/iperf-bare-probe.json" 2>&1 &
      local bprobe=$!
      sleep 1
      BARE_SOCKS_SEEN=$(bare_socks)
      wait "$bprobe" || die "iperf3 through the bare redirect failed"
      [ "${BARE_SOCKS_SEEN:-0}" -ge 2 ] || die "the bare redirect's sockhash held ${BARE_SOCKS_SEEN:-no} sockets during iperf3"
      record p2p.bare.gbps "$(jq -r '.end.sum_received.bits_per_second / 1e9' "$RUN/iperf-bare-probe.json")"
      log "  p2p.bare iperf3 $(printf '%.2f' "$(tail -1 "$RESULTS" | cut -d' ' -f2)") Gbit/s, $BARE_SOCKS_SEEN sockets in its sockhash"
    else
      iperf bc 198.18.0.10 p2p.bare
    fi
    if [ "$rep" = 1 ]; then
      # A look at the live connections while iperf3 runs through the Service address.
      inpod mc iperf3 -c 198.19.0.11 -p 5201 -t "$T_IPERF" -J >"$RUN/iperf-meshlet-probe.json" 2>&1 &
      local probe=$!
      sleep 1
      CLI connections -o json >"$RUN/connections.json"
      wait "$probe" || true
      record p2p.meshlet.gbps "$(jq -r '.end.sum_received.bits_per_second / 1e9' "$RUN/iperf-meshlet-probe.json")"
      log "  p2p.meshlet iperf3 (with connections probe) $(printf '%.2f' "$(tail -1 "$RESULTS" | cut -d' ' -f2)") Gbit/s"
    else
      iperf mc 198.19.0.11 p2p.meshlet
    fi
    iperf sc 198.19.0.11 p2p.sidecar
    after=$(spliced_total)
    nom=$((nom + after - before))
  done
  spl_after=$(spliced_total)
  SPLICED_P2P=$((spl_after - spl_before))
  # sockperf: 1 connection, iperf3: 2 (control + data) per rep, all through the Service address.
  P2P_MESHLET_CONNS=$((REPS * 3))
  SPLICED_SEEN=$(jq -r '[.[] | select(.service_address == "198.19.0.11:5201" and .state == "open")] |
    map(.path) | group_by(.) | map("\(.[0])=\(length)") | join(", ")' "$RUN/connections.json")
  log " spliced connections: $SPLICED_P2P (meshlet connections made: $P2P_MESHLET_CONNS); live during iperf3: $SPLICED_SEEN"
}

# ------------------------------------------------------------ 2. connection cost vs #services

bench_conn_cost() {
  log "2. connection cost with 1 / 1000 / 10000 services: $REPS rep(s), ${T_CONN}s each"
  local n rep t0 t1
  for n in 1 1000 10000; do
    gen_services "$n" "$NODE" 1 0 >"$RUN/svc-$n.yaml"
    gen_kube_proxy "$n" 198.18.0.5 8080 >"$RUN/kp-$n.rules"
  done
  for rep in $(seq "$REPS"); do
    log " rep $rep/$REPS"
    conn pc 198.18.0.5 8080 conn.direct
    for n in 1 1000 10000; do
      set_config "$CONFIG" 50-services.yaml "$RUN/svc-$n.yaml"
      t0=$(date +%s%N)
      ip netns exec "$P-kc" iptables-restore <"$RUN/kp-$n.rules"
      t1=$(date +%s%N)
      record "kp.restore_ms.$n" "$(( (t1 - t0) / 1000000 ))"
      # Let the agent settle after the reload; its idle CPU with N services is a cost too.
      sleep 1
      record "agent.cpu_pct.$n" "$(agent_cpu 2)"
      local vip
      vip=$(gen_vip "$n")
      # The agent's CPU while connbench runs: every connection leaves a record it collects.
      local a0 a1
      a0=$(awk '{print $14 + $15}' "/proc/$AGENT_PID/stat")
      conn mc "$vip" 80 "conn.meshlet.$n"
      a1=$(awk '{print $14 + $15}' "/proc/$AGENT_PID/stat")
      record "agent.conn_cpu_pct.$n" "$(awk -v a="$a0" -v b="$a1" -v hz="$(getconf CLK_TCK)" -v s="$T_CONN" 'BEGIN {printf "%.1f", (b - a) * 100 / hz / s}')"
      conn kc "$vip" 80 "conn.kp.$n"
    done
  done
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^meshlet_kernel_map_full_total' >"$RUN/map-full.txt" || true
}

# ------------------------------------------------------------ 3. agent footprint

# map_memory PID: the summed memlock (bytes) of the BPF maps the agent holds, and their count.
map_memory() {
  local pid=$1 ids=() f id
  for f in /proc/"$pid"/fdinfo/*; do
    id=$(awk '/^map_id:/ {print $2}' "$f" 2>/dev/null)
    [ -n "$id" ] && ids+=("$id")
  done
  # bpftool's view of the same maps (memlock as the kernel accounts it).
  local sum=0 count=0 m
  for id in $(printf '%s\n' "${ids[@]}" | sort -un); do
    m=$(bpftool -j map show id "$id" 2>/dev/null | jq -r '.bytes_memlock // 0')
    sum=$((sum + m)); count=$((count + 1))
  done
  echo "$sum $count"
}

# agent_cpu SECONDS: the agent's CPU use (% of one CPU) over SECONDS, from /proc/PID/stat.
agent_cpu() {
  local a b hz
  hz=$(getconf CLK_TCK)
  a=$(awk '{print $14 + $15}' "/proc/$AGENT_PID/stat")
  sleep "$1"
  b=$(awk '{print $14 + $15}' "/proc/$AGENT_PID/stat")
  awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$1" 'BEGIN {printf "%.1f", (b - a) * 100 / hz / s}'
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

bench_footprint() {
  log "3. agent footprint: 10000 services / 100000 endpoints"
  RSS_SMALL_KB=$(rss_kb "$AGENT_PID")   # the part-1/2 agent, 10 000 services x 1 endpoint now
  stop_agent
  local big=$RUN/config-big
  mkdir -p "$big"
  cp "$CONFIG/00-base.yaml" "$big/"
  gen_services 10000 "$NODE" 10 0 >"$RUN/big-0.yaml"
  gen_services 10000 "$NODE" 10 1 >"$RUN/big-1.yaml"
  BIG_YAML_MB=$(du -m "$RUN/big-0.yaml" | cut -f1)
  cp "$RUN/big-0.yaml" "$big/50-services.yaml"
  local t0 t1
  t0=$(date +%s%N)
  start_agent "$big" meshletd-big
  t1=$(date +%s%N)
  STARTUP_MS=$(( (t1 - t0) / 1000000 ))
  local st
  st=$(status_json)
  BIG_SERVICES=$(jq -r '.maps[] | select(.name == "meshlet_svc_v1") | .entries' <<<"$st")
  BIG_MAGLEV=$(jq -r '.maps[] | select(.name == "meshlet_maglev_v1") | .entries' <<<"$st")
  BIG_BACKENDS=$(jq -r '.maps[] | select(.name == "meshlet_backends_v1") | .entries' <<<"$st")
  FIRST_SYNC_MS=$(jq -r .last_sync_ms <<<"$st")
  sleep 2   # let the metrics collector run once
  RSS_BIG_KB=$(rss_kb "$AGENT_PID")
  CPU_BIG=$(agent_cpu 3)
  read -r MAP_BYTES MAP_COUNT < <(map_memory "$AGENT_PID")
  # Idle for more than the agent's 5 s: it has handed the heap's free pages back.
  sleep 3
  RSS_BIG_IDLE_KB=$(rss_kb "$AGENT_PID")
  log "  startup ${STARTUP_MS}ms, RSS $((RSS_BIG_KB / 1024)) MiB, idle $((RSS_BIG_IDLE_KB / 1024)) MiB, maps $MAP_COUNT / $((MAP_BYTES / 1048576)) MiB memlock"
  local i gen src t0 t1 st
  for i in $(seq "$SYNC_REPS"); do
    # Flip the first endpoint of every service (10 000 endpoints): not ready, then back.
    if [ $((i % 2)) = 1 ]; then src=$RUN/big-1.yaml; else src=$RUN/big-0.yaml; fi
    gen=$(generation)
    cp "$src" "$RUN/.staged.yaml"
    t0=$(date +%s%N)
    mv "$RUN/.staged.yaml" "$big/50-services.yaml"
    while :; do
      sleep 0.02
      st=$(status_json)
      [ "$(jq -r .generation <<<"$st")" -gt "$gen" ] && break
      [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 60 ] || die "no new generation within 60 s"
    done
    t1=$(date +%s%N)
    [ "$(jq -r .config_ok <<<"$st")" = true ] || die "flip rejected: $(jq -r .last_error <<<"$st")"
    record sync.agent_ms "$(jq -r .last_sync_ms <<<"$st")"
    record sync.outside_ms "$(( (t1 - t0) / 1000000 ))"
    log "  flip $i: agent last_sync_ms=$(jq -r .last_sync_ms <<<"$st"), file->status $(( (t1 - t0) / 1000000 ))ms"
    sleep 0.5
  done
  READY_AFTER=$(CLI services -o json | jq '[.[] | .ready] | add')
  RSS_BIG_AFTER_KB=$(rss_kb "$AGENT_PID")
  HWM_BIG_KB=$(hwm_kb "$AGENT_PID")
  sleep 6
  RSS_BIG_AFTER_IDLE_KB=$(rss_kb "$AGENT_PID")
  # kube-proxy's analogue of a sync: iptables-restore of 10 000 services (median of part 2).
}

# ------------------------------------------------------------ 4. cross-node

# node_ns NETNS N: a node: netns with the pods' bridge br0 at 198.18.N.254/24, forwarding on.
node_ns() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip -n "$1" link add br0 type bridge
  ip -n "$1" addr add "198.18.$2.254/24" dev br0
  ip -n "$1" link set br0 up
  ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
}

XCLI() { local n=$1; shift; "$MESHLET" --admin-socket "$XRUN/$n/admin.sock" --bpffs "$BPFFS-$n" "$@"; }
xstatus() { XCLI "$1" status -o json 2>/dev/null | jq -c 'if type == "array" then .[0] else . end'; }

# start_xagent xa|xb NODE_NAME CGROUP: sets XAGENT_PID.
start_xagent() {
  local n=$1 d=$XRUN/$1
  mkdir -p "$d/config"
  cp "$XRUN/cluster.yaml" "$d/config/cluster.yaml"
  # The agent runs inside the subtree it attaches to, as on a real node (attached at the root
  # cgroup): the kernel then splices the tunnel's loopback leg between the app and the agent.
  mkdir -p "$3/meshletd"
  sh -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$3/meshletd" \
    "$MESHLETD" --config-dir "$d/config" --node-name "$2" --cgroup "$3" --bpffs "$BPFFS-$n" \
    --admin-socket "$d/admin.sock" --metrics-addr 127.0.0.1:0 --readiness-addr 127.0.0.1:0 \
    --cni-socket "$d/cni.sock" --state-dir "$d/state" --ca-dir "$XRUN/ca" >"$RUN/meshletd-$n.log" 2>&1 &
  XAGENT_PID=$!
  echo "$XAGENT_PID" >"$RUN/meshletd-$n.pid"
}

# wait_xagent xa|xb PID POD: config applied, POD enrolled, its certificate issued.
wait_xagent() {
  local n=$1 pid=$2 pod=$3 st
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || { tail "$RUN/meshletd-$n.log"; die "meshletd ($n) exited"; }
    st=$(xstatus "$n")
    if [ "$(jq -r '.generation // 0' <<<"$st" 2>/dev/null)" -ge 1 ] 2>/dev/null &&
      [ "$(XCLI "$n" workloads -o json 2>/dev/null | jq --arg p "$pod" '[.[] | select(.name == $p and .enrolled)] | length')" = 1 ] &&
      [ "$(XCLI "$n" certs -o json 2>/dev/null | jq '[.[] | select(.state == "valid")] | length')" -ge 1 ]; then
      [ "$(jq -r .config_ok <<<"$st")" = true ] || die "agent $n: config not applied: $(jq -r .last_error <<<"$st")"
      return 0
    fi
    sleep 0.1
  done
  tail "$RUN/meshletd-$n.log"
  XCLI "$n" workloads || true
  die "agent $n: $pod not enrolled with a valid certificate within 30 s"
}

# issue_cert NAME: an ECDSA P-256 leaf for the stunnel side NAME, signed by the mesh's own root
# (the CA dir `meshlet ca init` wrote), with a SPIFFE URI SAN like the agents' own SVIDs.
issue_cert() {
  local n=$1 d=$XRUN/stunnel
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$n.key" \
    -subj "/O=mlt-bench/CN=$n" -out "$d/$n.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=URI:spiffe://cluster.local/ns/$BENCH_NS-x/sa/$n" \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyAgreement" \
    "extendedKeyUsage=serverAuth,clientAuth" >"$d/$n.ext"
  openssl x509 -req -in "$d/$n.csr" -CA "$XRUN/ca/ca-cert.pem" -CAkey "$XRUN/ca/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 12)" -days 2 -sha256 -extfile "$d/$n.ext" \
    -out "$d/$n.pem" 2>/dev/null
  openssl verify -CAfile "$XRUN/ca/ca-cert.pem" "$d/$n.pem" >/dev/null || die "stunnel cert $n does not verify"
}

# A userspace TLS proxy pair doing the same hop as HBONE: stunnel in the client pod (listening
# on 127.0.0.1) and in the server pod (on its pod IP, forwarding to the apps on 127.0.0.1).
# TLS 1.3 only, both sides present a certificate from the mesh's root and verify the peer's
# chain (the server requires a client certificate); TCP_NODELAY on every socket, as a proxy
# for request/response traffic would set. One stunnel process per side, a thread per
# connection (Debian's build). Ports: latency 15001 -> 15006 -> 11111, bulk 15002 -> 15007
# -> 5201, new connections 15003 -> 15009 -> 8080.
setup_stunnel() {
  local d=$XRUN/stunnel side
  mkdir -p "$d"
  issue_cert stunnel-client
  issue_cert stunnel-server
  for side in client server; do
    {
      printf 'foreground = yes\npid =\nsyslog = no\ndebug = 4\n'
      printf 'cert = %s\nkey = %s\nCAfile = %s\nverifyChain = yes\n' \
        "$d/stunnel-$side.pem" "$d/stunnel-$side.key" "$XRUN/ca/ca-cert.pem"
      printf 'sslVersionMin = TLSv1.3\nsslVersionMax = TLSv1.3\n'
      printf 'socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n'
      if [ "$side" = client ]; then
        printf 'client = yes\n'
        printf '[lat]\naccept = 127.0.0.1:15001\nconnect = 198.18.2.4:15006\n'
        printf '[bulk]\naccept = 127.0.0.1:15002\nconnect = 198.18.2.4:15007\n'
        printf '[conn]\naccept = 127.0.0.1:15003\nconnect = 198.18.2.4:15009\n'
      else
        printf '[lat]\naccept = 198.18.2.4:15006\nconnect = 127.0.0.1:11111\n'
        printf '[bulk]\naccept = 198.18.2.4:15007\nconnect = 127.0.0.1:5201\n'
        printf '[conn]\naccept = 198.18.2.4:15009\nconnect = 127.0.0.1:8080\n'
      fi
    } >"$RUN/stunnel-$side.cfg"
  done
  podbg xtc stunnel-client stunnel4 "$RUN/stunnel-client.cfg"
  podbg xts stunnel-server stunnel4 "$RUN/stunnel-server.cfg"
  wait_port xtc 127.0.0.1 15001; wait_port xtc 127.0.0.1 15002; wait_port xtc 127.0.0.1 15003
  wait_port xts 198.18.2.4 15006; wait_port xts 198.18.2.4 15007; wait_port xts 198.18.2.4 15009
}

# pids_of POD COMM: the PIDs in POD's cgroup whose command is COMM.
pids_of() {
  local pid
  for pid in $(cat "${POD_CG[$1]}/cgroup.procs"); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
  done
  return 0
}

# ticks PID...: utime + stime of the processes, in clock ticks.
ticks() {
  local pid sum=0 t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sum=$((sum + t))
  done
  echo "$sum"
}

setup_xnode() {
  log "4. cross-node: nodes $XA (pods 198.18.1.0/24) and $XB (198.18.2.0/24) joined by a veth pair"
  mkdir -p "$CG_XA" "$CG_XB" "$CG_PLAIN" "$XRUN"
  node_ns "$XA" 1
  node_ns "$XB" 2
  ip -n "$XA" link add mltbxa type veth peer name mltbxb netns "$XB"
  ip -n "$XA" addr add 198.18.250.1/30 dev mltbxa
  ip -n "$XB" addr add 198.18.250.2/30 dev mltbxb
  ip -n "$XA" link set mltbxa up
  ip -n "$XB" link set mltbxb up
  ip -n "$XA" route add 198.18.2.0/24 via 198.18.250.2
  ip -n "$XB" route add 198.18.1.0/24 via 198.18.250.1
  pod xmc 198.18.1.2 "$CG_XA" "$XA" 198.18.1.254      # meshed client (agent A)
  pod xpc 198.18.1.3 "$CG_PLAIN" "$XA" 198.18.1.254   # plain client
  pod xtc 198.18.1.4 "$CG_PLAIN" "$XA" 198.18.1.254   # stunnel client
  pod xms 198.18.2.2 "$CG_XB" "$XB" 198.18.2.254      # meshed server (agent B)
  pod xps 198.18.2.3 "$CG_PLAIN" "$XB" 198.18.2.254   # plain server
  pod xts 198.18.2.4 "$CG_PLAIN" "$XB" 198.18.2.254   # stunnel server (apps on 127.0.0.1)
  local s name ip
  for s in xms:198.18.2.2 xps:198.18.2.3 xts:127.0.0.1; do
    name=${s%%:*} ip=${s#*:}
    podbg "$name" "$name-sockperf" sockperf sr --tcp -i "$ip" -p 11111
    podbg "$name" "$name-iperf3" iperf3 -s -B "$ip" -p 5201
    podbg "$name" "$name-echo" "$RUN/connbench" echo "$ip" 8080
  done

  "$MESHLET" ca init --dir "$XRUN/ca" >"$RUN/ca-init.log" 2>&1 || { cat "$RUN/ca-init.log"; die "meshlet ca init failed"; }
  gen_xnode "$XNODE_A" "$XNODE_B" "$P" >"$XRUN/cluster.yaml"
  start_xagent xa "$XNODE_A" "$CG_XA"; XAGENT_A=$XAGENT_PID
  start_xagent xb "$XNODE_B" "$CG_XB"; XAGENT_B=$XAGENT_PID
  log "meshletd node A pid $XAGENT_A at $CG_XA, node B pid $XAGENT_B at $CG_XB; shared CA $XRUN/ca"
  setup_stunnel
  for s in xms:198.18.2.2 xps:198.18.2.3 xts:127.0.0.1; do
    name=${s%%:*} ip=${s#*:}
    wait_port "$name" "$ip" 11111; wait_port "$name" "$ip" 5201; wait_port "$name" "$ip" 8080
  done
  wait_xagent xa "$XAGENT_A" xmc
  wait_xagent xb "$XAGENT_B" xms
  STUNNEL_C=$(pids_of xtc stunnel4)
  SOCKPERF_PLAIN=$(pids_of xps sockperf)   # the plaintext server app: the CPU floor of a hop
  STUNNEL_S=$(pids_of xts stunnel4)
  [ -n "$STUNNEL_C" ] && [ -n "$STUNNEL_S" ] || die "stunnel processes not found"
  [ -n "$SOCKPERF_PLAIN" ] || die "the plaintext sockperf server was not found"
  # One exchange on each path before measuring: meshlet's pooled HBONE link is then warm.
  local p
  for p in "xpc 198.18.2.3 8080" "xmc 198.19.0.20 8080" "xtc 127.0.0.1 15003"; do
    set -- $p
    inpod "$1" "$RUN/connbench" rtt "$2" "$3" 0.2 >"$RUN/warmup-$1.log" 2>&1 ||
      { cat "$RUN/warmup-$1.log"; tail "$RUN/meshletd-xa.log" "$RUN/meshletd-xb.log" "$RUN/stunnel-client.log" "$RUN/stunnel-server.log"; die "no round trip from $1 to $2:$3"; }
  done
}

# rtt CLIENT IP PORT KEY: new connections one after the other, each with one 1-byte round trip;
# records KEY.new_p50 / KEY.new_p99 (us).
rtt() {
  local out p50 p99
  out=$(inpod "$1" "$RUN/connbench" rtt "$2" "$3" "$T_CONN" 2>&1) ||
    { echo "$out" >&2; die "connbench rtt $4 failed"; }
  p50=$(grep -o 'rtt_p50_us=[0-9.]*' <<<"$out" | cut -d= -f2)
  p99=$(grep -o 'rtt_p99_us=[0-9.]*' <<<"$out" | cut -d= -f2)
  record "$4.new_p50" "$p50"; record "$4.new_p99" "$p99"
  record "$4.new_failed" "$(grep -o 'failed=[0-9]*' <<<"$out" | cut -d= -f2)"
  log "  $4 new connection + first round trip p50=${p50}us p99=${p99}us ($(grep -o 'conns=[0-9]*' <<<"$out"), $(grep -o 'failed=[0-9]*' <<<"$out"))"
  # The same with a 1 ms pause after each connection: every process on the path is asleep when
  # the next one starts, and each wakeup of an idle vCPU costs what this machine makes it cost.
  out=$(inpod "$1" "$RUN/connbench" rtt "$2" "$3" "$T_CONN" 1000 2>&1) ||
    { echo "$out" >&2; die "connbench rtt $4 (paced) failed"; }
  record "$4.idle_new_p50" "$(grep -o 'rtt_p50_us=[0-9.]*' <<<"$out" | cut -d= -f2)"
}

# cpu_load CLIENT IP PORT KEY "PIDS_A" "PIDS_B": 1 KB requests, each answered with 1 KB
# (sockperf under-load, reply to every message) at XRATE/s on one connection; records the
# CPU (user + system) the processes on each side spent per request, scaled to vCPU per
# 1000 req/s: KEY.cpu_a / KEY.cpu_b, and the request rate reached: KEY.rps.
cpu_load() {
  local a0 b0 a1 b1 out sent hz runtime
  hz=$(getconf CLK_TCK)
  # shellcheck disable=SC2086
  a0=$(ticks $5); b0=$(ticks $6)
  out=$(inpod "$1" sockperf ul --tcp -i "$2" -p "$3" -m 1024 --mps "$XRATE" --reply-every 1 -t "$T_PP" 2>&1) ||
    { echo "$out" | tail -5 >&2; die "sockperf ul $4 failed"; }
  # shellcheck disable=SC2086
  a1=$(ticks $5); b1=$(ticks $6)
  sent=$(sed -n 's/.*\[Total Run\].*SentMessages=\([0-9]*\).*/\1/p' <<<"$out")
  runtime=$(sed -n 's/.*\[Total Run\] RunTime=\([0-9.]*\) sec.*/\1/p' <<<"$out")
  [ -n "$sent" ] && [ "$sent" -gt 0 ] || { echo "$out" | tail -5 >&2; die "sockperf ul $4: no messages"; }
  record "$4.cpu_a" "$(awk -v t=$((a1 - a0)) -v hz="$hz" -v n="$sent" 'BEGIN {printf "%.4f", t / hz / n * 1000}')"
  record "$4.cpu_b" "$(awk -v t=$((b1 - b0)) -v hz="$hz" -v n="$sent" 'BEGIN {printf "%.4f", t / hz / n * 1000}')"
  record "$4.rps" "$(awk -v n="$sent" -v r="$runtime" 'BEGIN {printf "%.0f", n / r}')"
  log "  $4 ${sent} x 1 KB req/resp: CPU client side $((a1 - a0)) ticks, server side $((b1 - b0)) ticks (${hz}/s) -> $(tail -3 "$RESULTS" | head -2 | cut -d' ' -f2 | tr '\n' ' ')vCPU per 1000 req/s"
}

# hold_xnode: the part-4 setup stays up until $RUN/hold is removed (or the script is
# interrupted), for measuring or profiling by hand; nothing is recorded.
hold_xnode() {
  touch "$RUN/hold"
  log "holding: agent A pid $XAGENT_A, agent B pid $XAGENT_B, stunnel $STUNNEL_C / $STUNNEL_S"
  log "  e.g. ip netns exec $P-xmc iperf3 -c 198.19.0.20 -t 5  (meshlet; from the pod's cgroup ${POD_CG[xmc]})"
  log "  e.g. ip netns exec $P-xtc iperf3 -c 127.0.0.1 -p 15002 -t 5  (stunnel)"
  log "  rm $RUN/hold to clean up and exit"
  while [ -e "$RUN/hold" ]; do sleep 1; done
}

# hbone_links POD: established TCP connections to port 15008 in the pod's netns (the agent's
# HBONE links, opened with setns into the client pod).
hbone_links() { ip netns exec "$P-$1" ss -Htn state established '( dport = :15008 )' | wc -l; }

bench_xnode() {
  log "4. cross-node: $REPS rep(s), sockperf -t $T_PP, iperf3 -t $T_IPERF, new connections ${T_CONN}s, CPU at $XRATE req/s"
  local rep hz a0 b0
  hz=$(getconf CLK_TCK)
  a0=$(ticks "$XAGENT_A"); b0=$(ticks "$XAGENT_B")
  sleep 2
  XIDLE_A=$(awk -v t=$(( $(ticks "$XAGENT_A") - a0 )) -v hz="$hz" 'BEGIN {printf "%.4f", t / hz / 2}')
  XIDLE_B=$(awk -v t=$(( $(ticks "$XAGENT_B") - b0 )) -v hz="$hz" 'BEGIN {printf "%.4f", t / hz / 2}')
  for rep in $(seq "$REPS"); do
    log " rep $rep/$REPS"
    sockperf_pp xpc 198.18.2.3 11111 xn.plain
    sockperf_pp xmc 198.19.0.20 11111 xn.meshlet
    sockperf_pp xtc 127.0.0.1 15001 xn.stunnel
    iperf xpc 198.18.2.3 xn.plain
    if [ "$rep" = 1 ]; then
      # Check while iperf3 runs that the bytes really go through HBONE.
      inpod xmc iperf3 -c 198.19.0.20 -p 5201 -t "$T_IPERF" -J >"$RUN/xn-iperf-probe.json" 2>&1 &
      local probe=$!
      sleep 1
      XLINKS_DURING=$(hbone_links xmc)
      XCONNS_SAMPLE=$(XCLI xa connections -o json 2>/dev/null | jq -r '[.[] | select(.service_address == "198.19.0.20:5201" and .state == "open")] |
        map(.path) | group_by(.) | map("\(.[0])=\(length)") | join(", ")' 2>/dev/null || echo "?")
      ip netns exec "$P-xmc" ss -Htni state established >"$RUN/xn-ss-during-iperf.txt" 2>&1 || true
      wait "$probe" || { tail -5 "$RUN/xn-iperf-probe.json"; die "iperf3 xn.meshlet failed"; }
      record xn.meshlet.gbps "$(jq -r '(.end.sum_received.bits_per_second // 0) / 1e9' "$RUN/xn-iperf-probe.json")"
      if [ "$(jq -r '.error // empty' "$RUN/xn-iperf-probe.json")" != "" ]; then
        log "  xn.meshlet iperf3 reported an error: $(jq -r '.error' "$RUN/xn-iperf-probe.json")"
      fi
      log "  xn.meshlet iperf3 $(printf '%.2f' "$(tail -1 "$RESULTS" | cut -d' ' -f2)") Gbit/s (HBONE links from xmc meanwhile: $XLINKS_DURING)"
    else
      iperf xmc 198.19.0.20 xn.meshlet
    fi
    iperf xtc 127.0.0.1 xn.stunnel 15002
    rtt xpc 198.18.2.3 8080 xn.plain
    rtt xmc 198.19.0.20 8080 xn.meshlet
    rtt xtc 127.0.0.1 15003 xn.stunnel
    # The floor: what the plaintext server app itself (sockperf, one recv and one send per
    # request) costs per request. A proxy side does that twice (app leg and link) plus TLS.
    cpu_load xpc 198.18.2.3 11111 xn.plain "" "$SOCKPERF_PLAIN"
    cpu_load xmc 198.19.0.20 11111 xn.meshlet "$XAGENT_A" "$XAGENT_B"
    # shellcheck disable=SC2086
    cpu_load xtc 127.0.0.1 15001 xn.stunnel "$STUNNEL_C" "$STUNNEL_S"
  done
  XLINKS_AFTER=$(hbone_links xmc)
  XRSS_A=$(rss_kb "$XAGENT_A"); XRSS_B=$(rss_kb "$XAGENT_B")
  log " HBONE links from xmc after the run: $XLINKS_AFTER; agent A's view of the iperf3 connections: ${XCONNS_SAMPLE:-none}"
}

# ------------------------------------------------------------ 5. L7: HTTP/1.1 through one proxy

declare -A L7P50 L7P99   # the latest fixed-rate run's p50 / p99 per path ("" when it failed)
L7_MESHLET_CLIENT_REQS=0 # requests the clients completed on the meshlet path during the reps

# The server of part 5: nginx in the meshed server pod ms on 198.18.0.3:80, one worker process,
# `return 200 "ok\n"`, no access log, keep-alive without nginx's default limit of 1 000 requests
# per connection (which would make every client and proxy redial now and then).
setup_nginx() {
  local d=$RUN/nginx
  mkdir -p "$d"
  cat >"$RUN/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  keepalive_requests 1000000000;
  keepalive_timeout 600s;
  default_type text/plain;
  server {
    listen 198.18.0.3:80 backlog=4096;
    location / { return 200 "ok\n"; }
  }
}
EOF
  inpod ms nginx -t -q -p "$d" -c "$RUN/nginx.conf" -e "$d/error.log" || die "nginx rejects $RUN/nginx.conf"
  podbg ms nginx nginx -p "$d" -c "$RUN/nginx.conf" -e "$d/error.log"
}

# The one-hop L7 proxy meshlet is held against: haproxy in mode http, one process and one
# thread, in the client pod hc on 127.0.0.1:15080 (the client dials it directly, as meshlet's
# client is steered to the agent's listener in its own pod), keep-alive on both sides with
# server connections shared between client connections (http-reuse always). It does what the
# meshlet route does: a prefix match choosing the backend, one response header set.
setup_haproxy_l7() {
  cat >"$RUN/haproxy-l7.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend l7
  bind 127.0.0.1:15080
  http-response set-header x-mlt-bench haproxy
  use_backend web if { path_beg / }
backend web
  server s 198.18.0.3:80
EOF
  haproxy -c -q -f "$RUN/haproxy-l7.cfg" || die "haproxy rejects $RUN/haproxy-l7.cfg"
  podbg hc haproxy-l7 haproxy -db -f "$RUN/haproxy-l7.cfg"
}

# l7_target PATH: sets L7_CLIENT, L7_IP, L7_PORT, L7_URL and L7_PROXY (the proxy's PIDs,
# empty for no mesh) for nomesh | meshlet | haproxy.
l7_target() {
  case $1 in
    nomesh) L7_CLIENT=pc; L7_IP=198.18.0.3; L7_PORT=80; L7_PROXY="" ;;
    meshlet) L7_CLIENT=mc; L7_IP=$L7_VIP; L7_PORT=80; L7_PROXY=$AGENT_PID ;;
    haproxy) L7_CLIENT=hc; L7_IP=127.0.0.1; L7_PORT=15080; L7_PROXY=$HAPROXY_L7 ;;
  esac
  L7_URL="http://$L7_IP$([ "$L7_PORT" = 80 ] || echo ":$L7_PORT")/"
}

# l7_probe PATH: one GET with curl; prints "STATUS HEADER" (HEADER: the x-mlt-bench response
# header, "-" when absent).
l7_probe() {
  local code hdr
  l7_target "$1"
  code=$(inpod "$L7_CLIENT" curl -s -o /dev/null -D "$RUN/l7-probe-$1.txt" -w '%{http_code}' --max-time 2 "$L7_URL" 2>/dev/null) || code=000
  hdr=$({ tr -d '\r' <"$RUN/l7-probe-$1.txt" || true; } 2>/dev/null | awk -F': ' 'tolower($1) == "x-mlt-bench" {print $2}')
  echo "$code ${hdr:--}"
}

# agent_l7_requests: the agent's istio_requests_total for Service web, all series.
agent_l7_requests() {
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk '/^istio_requests_total\{/ && /destination_service_name="web"/ {s += $NF} END {printf "%.0f", s}'
}

setup_l7() {
  log "5. L7 setup: nginx in ms (198.18.0.3:80), haproxy (mode http) in plain pod hc (127.0.0.1:15080), Service web $L7_VIP:80 (port http) + VirtualService"
  pod hc 198.18.0.11 "$CG_PLAIN"   # haproxy client: wrk/httpload and haproxy on 127.0.0.1
  setup_nginx
  setup_haproxy_l7
  wait_port ms 198.18.0.3 80
  wait_port hc 127.0.0.1 15080
  gen_l7 "$NODE" >"$RUN/l7.yaml"
  set_config "$CONFIG" 40-l7.yaml "$RUN/l7.yaml"
  NGINX_PIDS=$(pids_of ms nginx | tr '\n' ' ')
  HAPROXY_L7=$(pids_of hc haproxy | tr '\n' ' ')
  [ -n "$NGINX_PIDS" ] || die "part 5: nginx not found in pod ms"
  [ -n "$HAPROXY_L7" ] || die "part 5: haproxy not found in pod hc"
  # Every path answers 200, and the response header says which proxy (if any) it went
  # through: the VirtualService's route sets x-mlt-bench: l7, haproxy sets "haproxy". The
  # agent's L7 listener follows the new configuration within a moment: retry for 10 s.
  local p
  for _ in $(seq 100); do
    p=$(l7_probe meshlet)
    [ "$p" = "200 l7" ] && break
    sleep 0.1
  done
  L7_PROBE_MESHLET=$p
  L7_PROBE_NOMESH=$(l7_probe nomesh)
  L7_PROBE_HAPROXY=$(l7_probe haproxy)
  log "  curl: no mesh -> $L7_PROBE_NOMESH, meshlet -> $L7_PROBE_MESHLET, haproxy -> $L7_PROBE_HAPROXY (status, x-mlt-bench)"
  [ "$L7_PROBE_NOMESH" = "200 -" ] || die "part 5: no mesh path answered '$L7_PROBE_NOMESH' (200 without x-mlt-bench expected)"
  [ "$L7_PROBE_HAPROXY" = "200 haproxy" ] || die "part 5: haproxy path answered '$L7_PROBE_HAPROXY'"
  [ "$L7_PROBE_MESHLET" = "200 l7" ] ||
    { CLI services || true; tail -20 "$RUN/meshletd.log"; die "part 5: the meshlet path answered '$L7_PROBE_MESHLET', not through the L7 route (200 l7 expected)"; }
}

# l7_wrk PATH KEY: wrk at saturation (1 thread, WRK_CONNS keep-alive connections, T_WRK s).
# Records KEY.wrk_errors (non-2xx + socket errors; a run with any records nothing else),
# KEY.rps, KEY.server_cores (nginx's CPU), and with a proxy KEY.proxy_cores and
# KEY.rps_per_core (requests per second of proxy CPU: requests / proxy CPU seconds).
# shellcheck disable=SC2086  # L7_PROXY, NGINX_PIDS, HAPROXY_L7: lists of PIDs, split on purpose
l7_wrk() {
  local key=$2 hz p0 p1 s0 s1 w0 w1 out reqs rps non2xx sock errs secs
  l7_target "$1"
  hz=$(getconf CLK_TCK)
  p0=$(ticks $L7_PROXY); s0=$(ticks $NGINX_PIDS); w0=$(date +%s%N)
  if ! out=$(inpod "$L7_CLIENT" wrk -t1 -c"$WRK_CONNS" -d"${T_WRK}s" "$L7_URL" 2>&1); then
    echo "$out" | tail -5 >&2
    record "$key.wrk_errors" 1
    log "  $key wrk FAILED (exit status)"
    return 0
  fi
  w1=$(date +%s%N); p1=$(ticks $L7_PROXY); s1=$(ticks $NGINX_PIDS)
  echo "$out" >"$RUN/wrk-$key.last.txt"
  reqs=$(awk '/ requests in / {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
  sock=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' <<<"$out" |
    awk '{print $1 + $2 + $3 + $4}')
  errs=$(( ${non2xx:-0} + ${sock:-0} ))
  if [ -z "$reqs" ] || [ -z "$rps" ] || [ "$reqs" = 0 ]; then errs=$((errs + 1)); fi
  record "$key.wrk_errors" "$errs"
  if [ "$errs" != 0 ]; then
    log "  $key wrk FAILED: ${non2xx:-0} non-2xx, ${sock:-0} socket errors, ${reqs:-no} requests"
    return 0
  fi
  [ "$1" = meshlet ] && L7_MESHLET_CLIENT_REQS=$((L7_MESHLET_CLIENT_REQS + reqs))
  secs=$(awk -v a="$w0" -v b="$w1" 'BEGIN {print (b - a) / 1e9}')
  record "$key.rps" "$rps"
  record "$key.server_cores" "$(awk -v t=$((s1 - s0)) -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.3f", t / hz / s}')"
  local extra=""
  if [ -n "$L7_PROXY" ]; then
    record "$key.proxy_cores" "$(awk -v t=$((p1 - p0)) -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.3f", t / hz / s}')"
    record "$key.rps_per_core" "$(awk -v t=$((p1 - p0)) -v hz="$hz" -v n="$reqs" 'BEGIN {if (t > 0) printf "%.0f", n / (t / hz); else print "nan"}')"
    extra=", proxy $(tail -2 "$RESULTS" | head -1 | cut -d' ' -f2) cores -> $(tail -1 "$RESULTS" | cut -d' ' -f2) req/s per proxy core"
  fi
  log "  $key wrk ${rps} req/s ($reqs requests)$extra, nginx $(awk -v t=$((s1 - s0)) -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.2f", t / hz / s}') cores"
}

# l7_rate PATH KEY: httpload at L7_RATE req/s (open loop) for T_RATE s over L7_CONNS
# connections. Records KEY.rate_errors (non-2xx + failed requests; a run with any records
# nothing else), KEY.p50 / .p90 / .p99 / .max (µs, from each request's scheduled send time),
# KEY.rate (achieved), KEY.server_cpu1k (nginx vCPU per 1000 req/s) and with a proxy
# KEY.cpu1k (the proxy's vCPU per 1000 req/s, its idle time included). Sets L7P50/L7P99[PATH].
# shellcheck disable=SC2086  # L7_PROXY, NGINX_PIDS, HAPROXY_L7: lists of PIDs, split on purpose
l7_rate() {
  local key=$2 hz p0 p1 s0 s1 out ok non2xx errors errs n
  l7_target "$1"
  L7P50[$1]=""; L7P99[$1]=""
  hz=$(getconf CLK_TCK)
  p0=$(ticks $L7_PROXY); s0=$(ticks $NGINX_PIDS)
  if ! out=$(inpod "$L7_CLIENT" "$RUN/httpload" "$L7_IP" "$L7_PORT" "$L7_RATE" "$T_RATE" "$L7_CONNS" / 2>&1); then
    echo "$out" | tail -5 >&2
    record "$key.rate_errors" 1
    log "  $key httpload FAILED (exit status)"
    return 0
  fi
  p1=$(ticks $L7_PROXY); s1=$(ticks $NGINX_PIDS)
  kv() { { grep -o "\b$1=[0-9.]*" <<<"$out" || true; } | head -1 | cut -d= -f2; }
  ok=$(kv ok); non2xx=$(kv non2xx); errors=$(kv errors)
  errs=$(( ${non2xx:-1} + ${errors:-1} ))
  [ "${ok:-0}" -gt 0 ] || errs=$((errs + 1))
  record "$key.rate_errors" "$errs"
  if [ "$errs" != 0 ]; then
    log "  $key httpload FAILED: $out"
    return 0
  fi
  [ "$1" = meshlet ] && L7_MESHLET_CLIENT_REQS=$((L7_MESHLET_CLIENT_REQS + ok))
  for n in p50 p90 p99 max; do record "$key.$n" "$(kv "${n}_us")"; done
  record "$key.rate" "$(kv rate)"
  record "$key.server_cpu1k" "$(awk -v t=$((s1 - s0)) -v hz="$hz" -v n="$ok" 'BEGIN {printf "%.4f", t / hz / n * 1000}')"
  local extra=""
  if [ -n "$L7_PROXY" ]; then
    record "$key.cpu1k" "$(awk -v t=$((p1 - p0)) -v hz="$hz" -v n="$ok" 'BEGIN {printf "%.4f", t / hz / n * 1000}')"
    extra=", proxy $(tail -1 "$RESULTS" | cut -d' ' -f2) vCPU per 1000 req/s"
  fi
  L7P50[$1]=$(kv p50_us); L7P99[$1]=$(kv p99_us)
  log "  $key $(kv rate) req/s: p50=$(kv p50_us)us p90=$(kv p90_us)us p99=$(kv p99_us)us max=$(kv max_us)us$extra"
}

# shellcheck disable=SC2086  # L7_PROXY, NGINX_PIDS, HAPROXY_L7: lists of PIDs, split on purpose
bench_l7() {
  setup_l7
  if [ "$HOLD" = 1 ]; then hold_l7; exit 0; fi
  log "5. L7: $REPS rep(s): wrk -t1 -c$WRK_CONNS -d${T_WRK}s, then $L7_RATE req/s for ${T_RATE}s over $L7_CONNS connections (httpload); paths interleaved, order rotated per rep"
  local path hz a0 h0 rep i r0 r1 order
  hz=$(getconf CLK_TCK)
  # Warm-up, not recorded: the proxies' upstream pools fill, every process has run once.
  for path in nomesh meshlet haproxy; do
    l7_target "$path"
    inpod "$L7_CLIENT" wrk -t1 -c"$WRK_CONNS" -d1s "$L7_URL" >"$RUN/wrk-warmup-$path.txt" 2>&1 ||
      { cat "$RUN/wrk-warmup-$path.txt"; die "part 5: wrk warm-up through $path failed"; }
  done
  sleep 1
  a0=$(ticks "$AGENT_PID"); h0=$(ticks $HAPROXY_L7)
  sleep 2
  L7_IDLE_AGENT=$(awk -v t=$(( $(ticks "$AGENT_PID") - a0 )) -v hz="$hz" 'BEGIN {printf "%.4f", t / hz / 2}')
  L7_IDLE_HAPROXY=$(awk -v t=$(( $(ticks $HAPROXY_L7) - h0 )) -v hz="$hz" 'BEGIN {printf "%.4f", t / hz / 2}')
  r0=$(agent_l7_requests)
  local paths=(nomesh meshlet haproxy)
  for rep in $(seq "$REPS"); do
    log " rep $rep/$REPS"
    order=()
    for i in 0 1 2; do order+=("${paths[$(( (i + rep - 1) % 3 ))]}"); done
    for path in "${order[@]}"; do
      if [ "$rep" = 1 ] && [ "$path" = meshlet ]; then
        # The agent's own view while wrk runs: its L7 sessions (one per wrk connection).
        ( sleep 1; CLI connections -o json >"$RUN/l7-connections.json" 2>&1 ) &
        local probe=$!
        l7_wrk meshlet l7.meshlet
        wait "$probe" || true
        L7_CONNS_SEEN=$(jq -r '[.[] | select(.path == "l7")] | length' "$RUN/l7-connections.json" 2>/dev/null || echo "?")
        L7_CONNS_SAMPLE=$(jq -r '[.[] | select(.path == "l7")] | .[0] | "\(.service_address) \(.policy)"' "$RUN/l7-connections.json" 2>/dev/null || echo "?")
      else
        l7_wrk "$path" "l7.$path"
      fi
    done
    for path in "${order[@]}"; do l7_rate "$path" "l7.$path"; done
    # Added latency, within the rep (the machine's drift hits both sides alike).
    for path in meshlet haproxy; do
      if [ -n "${L7P50[nomesh]}" ] && [ -n "${L7P50[$path]}" ]; then
        record "l7.$path.added_p50" $(( L7P50[$path] - L7P50[nomesh] ))
        record "l7.$path.added_p99" $(( L7P99[$path] - L7P99[nomesh] ))
      fi
    done
  done
  r1=$(agent_l7_requests)
  L7_AGENT_REQS=$((r1 - r0))
  L7_RSS_KB=$(rss_kb "$AGENT_PID")
  log " agent: $L7_AGENT_REQS requests to web counted (istio_requests_total), clients completed $L7_MESHLET_CLIENT_REQS on the meshlet path; L7 sessions during wrk: ${L7_CONNS_SEEN:-?}"
}

# ---------------------------------------------------------------------------- report

med() {  # med KEY: median of the recorded values
  awk -v k="$1" '$1 == k {print $2}' "$RESULTS" | sort -g |
    awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
sumk() { awk -v k="$1" '$1 == k {s += $2; n++} END {print (n ? s : "n/a")}' "$RESULTS"; }  # sumk KEY: sum over reps
fmt() { awk -v v="$1" -v f="$2" 'BEGIN {if (v == "nan") print "n/a"; else printf f, v}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2f", a / b}'; }
yesno() { awk -v c="$1" 'BEGIN {print (c ? "**yes**" : "**no**")}'; }

report() {
  local out=$RUN/report.md
  local nl nm ns r
  {
    echo "Measured $(date -u +'%Y-%m-%d %H:%M UTC') on $(uname -r), $(nproc) CPUs, $(iptables -V), $(haproxy -v | head -1 | cut -d' ' -f1-3);"
    echo "load average at start / end of the run: $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes the numbers noisier);"
    echo "meshlet $BUILT_FROM built Release;"
    echo "mode: $([ "$QUICK" = 1 ] && echo "**--quick** (indicative only)" || echo full), $REPS rep(s) per cell, medians."
    echo
    if want p2p; then
      echo "### 1. Same-node pod→pod through a Service address"
      echo
      echo "Bare redirect: the least a sockops + sk_msg splice can do (\`bench/bare_redirect.bpf.c\`: a sockhash of every established socket, each message sent to the other end), pod IP to pod IP, in a cgroup of its own: the floor meshlet's full datapath is held against."
      echo
      echo "| metric | no mesh | meshlet | sidecar-like | bare redirect | meshlet ÷ no mesh | bare ÷ no mesh | meshlet ÷ sidecar |"
      echo "|---|---:|---:|---:|---:|---:|---:|---:|"
      for m in p50:"latency p50 (µs)" p99:"latency p99 (µs)" gbps:"throughput (Gbit/s)"; do
        local key=${m%%:*} label=${m#*:} fm='%.2f' nb
        nl=$(med "p2p.nomesh.$key"); nm=$(med "p2p.meshlet.$key"); ns=$(med "p2p.sidecar.$key")
        nb=$(med "p2p.bare.$key")
        echo "| $label | $(fmt "$nl" "$fm") | $(fmt "$nm" "$fm") | $(fmt "$ns" "$fm") | $(fmt "$nb" "$fm") | $(ratio "$nm" "$nl") | $(ratio "$nb" "$nl") | $(ratio "$nm" "$ns") |"
      done
      nl=$(med p2p.nomesh.p50); nm=$(med p2p.meshlet.p50)
      r=$(ratio "$nm" "$nl")
      echo
      echo "- Target meshlet ÷ no-mesh p50 latency ≤ 0.6: $r → $(yesno "$(awk -v r="$r" 'BEGIN {print (r != "n/a" && r <= 0.6)}')")"
      nl=$(med p2p.nomesh.gbps); nm=$(med p2p.meshlet.gbps)
      r=$(ratio "$nm" "$nl")
      echo "- Target meshlet ÷ no-mesh throughput ≥ 3: $r → $(yesno "$(awk -v r="$r" 'BEGIN {print (r != "n/a" && r >= 3)}')")"
      echo "- Splice check: $SPLICED_P2P spliced connections counted by the agent for $P2P_MESHLET_CONNS meshlet connections; live during an iperf3 run: ${SPLICED_SEEN:-none}. Bare redirect: $BARE_SOCKS_SEEN sockets in its sockhash during its iperf3 run."
      echo
    fi
    if want conn; then
      echo "### 2. Connection cost vs number of Services"
      echo
      echo "Client → last Service's address (port 80 → backend :8080); meshlet: service map lookup at connect(); kube-proxy-style: nat KUBE-SERVICES chain in the client pod. Direct (no Service, no mesh) for reference: connect p50 $(fmt "$(med conn.direct.p50)" '%.1f') µs, $(fmt "$(med conn.direct.cps)" '%.0f') conn/s."
      echo
      echo "| services | meshlet connect p50 (µs) | kube-proxy connect p50 (µs) | ratio | meshlet conn/s | kube-proxy conn/s | ratio | meshlet connect p99 (µs) | kube-proxy connect p99 (µs) | iptables-restore (ms) |"
      echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
      for n in 1 1000 10000; do
        local mp kp mc kcps mp99 kp99
        mp=$(med "conn.meshlet.$n.p50"); kp=$(med "conn.kp.$n.p50")
        mc=$(med "conn.meshlet.$n.cps"); kcps=$(med "conn.kp.$n.cps")
        mp99=$(med "conn.meshlet.$n.p99"); kp99=$(med "conn.kp.$n.p99")
        echo "| $n | $(fmt "$mp" '%.1f') | $(fmt "$kp" '%.1f') | $(ratio "$mp" "$kp") | $(fmt "$mc" '%.0f') | $(fmt "$kcps" '%.0f') | $(ratio "$mc" "$kcps") | $(fmt "$mp99" '%.1f') | $(fmt "$kp99" '%.1f') | $(fmt "$(med "kp.restore_ms.$n")" '%.0f') |"
      done
      local m1 m10k c1 c10k k1 k10k
      m1=$(med conn.meshlet.1.p50); m10k=$(med conn.meshlet.10000.p50)
      c1=$(med conn.meshlet.1.cps); c10k=$(med conn.meshlet.10000.cps)
      k1=$(med conn.kp.1.p50); k10k=$(med conn.kp.10000.p50)
      echo
      local dl dc
      dl=$(awk -v a="$m10k" -v b="$m1" 'BEGIN {printf "%+.1f", (a / b - 1) * 100}')
      dc=$(awk -v a="$c10k" -v b="$c1" 'BEGIN {printf "%+.1f", (a / b - 1) * 100}')
      echo "- Target meshlet flat within 5 % from 1 to 10 000 services: connect p50 ${dl} %, conn/s ${dc} % → $(yesno "$(awk -v a="$dl" -v b="$dc" 'BEGIN {print (a <= 5 && a >= -5 && b <= 5 && b >= -5)}')")"
      echo "- meshletd's CPU while the meshlet connects ran (it collects each connection's kernel record once a second): $(fmt "$(med agent.conn_cpu_pct.1)" '%.1f') / $(fmt "$(med agent.conn_cpu_pct.1000)" '%.1f') / $(fmt "$(med agent.conn_cpu_pct.10000)" '%.1f') % of one CPU with 1 / 1 000 / 10 000 services."
      echo "- kube-proxy-style from 1 to 10 000 services: connect p50 $(awk -v a="$k10k" -v b="$k1" 'BEGIN {printf "%+.0f", (a / b - 1) * 100}') %."
      [ -s "$RUN/map-full.txt" ] && echo "- Kernel map-full counters after part 2: $(tr '\n' ' ' <"$RUN/map-full.txt")"
      echo
    fi
    if want footprint; then
      echo "### 3. Agent footprint: 10 000 Services / 100 000 endpoints"
      echo
      echo "| metric | value | target |"
      echo "|---|---:|---|"
      echo "| config in the maps | ${BIG_SERVICES} services, ${BIG_BACKENDS} backends, ${BIG_MAGLEV} Maglev entries (Maglev is only built for ClientIP affinity), from ${BIG_YAML_MB} MB of YAML | |"
      echo "| meshletd RSS (VmRSS) 2 s after load | $(awk -v k="$RSS_BIG_KB" 'BEGIN {printf "%.1f MiB", k / 1024}') | |"
      echo "| meshletd RSS idle, 8 s after load (free heap pages handed back after 5 s without a sync) | $(awk -v k="$RSS_BIG_IDLE_KB" 'BEGIN {printf "%.1f MiB", k / 1024}') | ≤ 25 MB → $(yesno "$(awk -v k="$RSS_BIG_IDLE_KB" 'BEGIN {print (k * 1024 <= 25e6)}')") |"
      echo "| meshletd RSS right after $SYNC_REPS flips / peak (VmHWM) / idle 6 s later | $(awk -v k="$RSS_BIG_AFTER_KB" -v h="$HWM_BIG_KB" -v i="$RSS_BIG_AFTER_IDLE_KB" 'BEGIN {printf "%.1f MiB / %.1f MiB / %.1f MiB", k / 1024, h / 1024, i / 1024}') | |"
      echo "| meshletd RSS with 10 000 services × 1 endpoint (part 2's agent) | $(awk -v k="$RSS_SMALL_KB" 'BEGIN {printf "%.1f MiB", k / 1024}') | |"
      echo "| BPF maps (kernel memory, not in RSS): bpftool memlock of the agent's $MAP_COUNT maps | $(awk -v b="$MAP_BYTES" 'BEGIN {printf "%.1f MiB", b / 1048576}') | |"
      echo "| agent start → first generation applied | ${STARTUP_MS} ms (of which sync $(fmt "$FIRST_SYNC_MS" '%.0f') ms) | |"
      echo "| agent CPU when idle (metrics collection every second) | ${CPU_BIG} % of one CPU (with part 2's 1 / 1 000 / 10 000 services × 1 endpoint: $(fmt "$(med agent.cpu_pct.1)" '%.1f') / $(fmt "$(med agent.cpu_pct.1000)" '%.1f') / $(fmt "$(med agent.cpu_pct.10000)" '%.1f') %) | |"
      local sa so
      sa=$(med sync.agent_ms); so=$(med sync.outside_ms)
      echo "| flip \`ready\` on 10 000 endpoints: agent's \`last_sync_ms\` (translate + map update) | $(fmt "$sa" '%.1f') ms | ≤ 100 ms → $(yesno "$(awk -v v="$sa" 'BEGIN {print (v != "nan" && v <= 100)}')") |"
      echo "| same, outside: file renamed → \`meshlet status\` shows the new generation | $(fmt "$so" '%.0f') ms | (includes the 200 ms poll and YAML parsing) |"
      echo "| kube-proxy-style: \`iptables-restore\` of 10 000 services, for comparison | $(fmt "$(med kp.restore_ms.10000)" '%.0f') ms | |"
      echo
      echo "Ready backends after the flips: $READY_AFTER (100 002 expected after an even number of flips, 90 002 after an odd one: 10 000 × 10 plus part 1's two services)."
      echo
    fi
    echo "<details><summary>raw values (every repetition)</summary>"
    echo
    echo '```'
    grep -v -e '^xn\.' -e '^l7\.' "$RESULTS" | awk '{v[$1] = v[$1] " " $2} END {for (k in v) print k ":" v[k]}' | sort
    echo '```'
    echo "</details>"
  } >"$out"
  if want p2p && want conn && want footprint; then
    replace_generated "$out" '<!-- BEGIN GENERATED: bench/run.sh -->' '<!-- END GENERATED -->' "## Results"
  else
    log "parts 1-3 not all run (--only $ONLY): bench/README.md's section for them is left as it was"
  fi
  cat "$out"
}

# replace_generated FILE BEGIN END HEADING: put FILE between the BEGIN and END lines of the
# README (appended under HEADING when the markers are missing).
replace_generated() {
  local out=$1 begin=$2 end=$3 heading=$4
  if [ -f "$README" ] && grep -qF "$begin" "$README"; then
    awk -v b="$begin" -v e="$end" -v f="$out" '
      $0 == b {print; while ((getline l < f) > 0) print l; skip = 1; next}
      $0 == e {skip = 0}
      !skip {print}' "$README" >"$RUN/README.new"
  else
    { [ -f "$README" ] && cat "$README"; echo; echo "$heading"; echo; echo "$begin"; cat "$out"; echo "$end"; } >"$RUN/README.new"
  fi
  cp "$RUN/README.new" "$README"
}

# Part 4's own generated section (a run of --only xnode rewrites it alone).
report_xnode() {
  local out=$RUN/report-xnode.md m key label fm pl ml sl r tgt
  {
    echo "Measured $(date -u +'%Y-%m-%d %H:%M UTC') on $(uname -r), $(nproc) CPUs, $(stunnel4 -version 2>&1 | grep -m1 -o 'stunnel [0-9.]*'), $(openssl version | cut -d' ' -f1-2);"
    echo "load average at start / end of the run: $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes the numbers noisier);"
    echo "$("$MESHLET" version 2>/dev/null | head -1 | tr -d '\n') built Release in build-bench/ (meshletd linked $(stat -c %y "$MESHLETD" | cut -d. -f1));"
    echo "mode: $([ "$QUICK" = 1 ] && echo "**--quick** (indicative only)" || echo full), $REPS rep(s) per cell, medians."
    echo
    echo "### 4. Cross-node pod→pod: plaintext vs meshlet mTLS (HBONE) vs a stunnel pair"
    echo
    echo "| metric | plaintext (no mesh) | meshlet mTLS | stunnel pair | meshlet ÷ plaintext | meshlet ÷ stunnel |"
    echo "|---|---:|---:|---:|---:|---:|"
    for m in p50:"latency p50 (µs)" p99:"latency p99 (µs)" gbps:"throughput (Gbit/s)" \
      new_p50:"new connection + first round trip p50 (µs)" new_p99:"new connection + first round trip p99 (µs)" \
      idle_new_p50:"the same, 1 ms pause after each (path idle), p50 (µs)"; do
      key=${m%%:*} label=${m#*:}
      fm='%.2f'; [[ $key == *new_* ]] && fm='%.1f'
      pl=$(med "xn.plain.$key"); ml=$(med "xn.meshlet.$key"); sl=$(med "xn.stunnel.$key")
      echo "| $label | $(fmt "$pl" "$fm") | $(fmt "$ml" "$fm") | $(fmt "$sl" "$fm") | $(ratio "$ml" "$pl") | $(ratio "$ml" "$sl") |"
    done
    local ma mb sa sb
    ma=$(med xn.meshlet.cpu_a); mb=$(med xn.meshlet.cpu_b); sa=$(med xn.stunnel.cpu_a); sb=$(med xn.stunnel.cpu_b)
    echo "| CPU per 1000 req/s, client node (vCPU): agent A / stunnel client | – | $(fmt "$ma" '%.4f') | $(fmt "$sa" '%.4f') | | $(ratio "$ma" "$sa") |"
    echo "| CPU per 1000 req/s, server node (vCPU): agent B / stunnel server | – | $(fmt "$mb" '%.4f') | $(fmt "$sb" '%.4f') | | $(ratio "$mb" "$sb") |"
    echo "| CPU per 1000 req/s of the server app itself (vCPU; sockperf: one receive + one send per request, the floor of one hop) | $(fmt "$(med xn.plain.cpu_b)" '%.4f') | | | | |"
    echo
    pl=$(med xn.plain.gbps); ml=$(med xn.meshlet.gbps); sl=$(med xn.stunnel.gbps)
    r=$(ratio "$ml" "$sl")
    echo "- Target meshlet ÷ stunnel pair throughput ≥ 1.2: $r → $(yesno "$(awk -v r="$r" 'BEGIN {print (r != "n/a" && r >= 1.2)}')")"
    r=$(ratio "$ml" "$pl")
    echo "- Target meshlet ÷ plaintext throughput ≥ 0.5: $r → $(yesno "$(awk -v r="$r" 'BEGIN {print (r != "n/a" && r >= 0.5)}')")"
    pl=$(med xn.plain.new_p50); ml=$(med xn.meshlet.new_p50)
    r=$(awk -v a="$ml" -v b="$pl" 'BEGIN {if (a == "nan" || b == "nan") print "n/a"; else printf "%.1f", a - b}')
    echo "- Target a new connection over the warm pool adds ≤ 100 µs p50 (meshlet − plaintext, connect + first 1-byte round trip): $r µs → $(yesno "$(awk -v r="$r" 'BEGIN {print (r != "n/a" && r <= 100)}')")"
    tgt=$(awk -v a="$ma" -v b="$mb" 'BEGIN {if (a == "nan" || b == "nan") print "n/a"; else printf "%.4f", (a > b ? a : b)}')
    echo "- Target agent CPU ≤ 0.03 vCPU per 1000 req/s per side (1 KB request + 1 KB response at $(fmt "$(med xn.meshlet.rps)" '%.0f') req/s, idle time included): worst side $tgt → $(yesno "$(awk -v r="$tgt" 'BEGIN {print (r != "n/a" && r <= 0.03)}')"); idle agents: A $XIDLE_A, B $XIDLE_B vCPU. For scale: the plaintext server app alone costs $(fmt "$(med xn.plain.cpu_b)" '%.4f') per 1000 req/s here, and an agent side makes two such hops (app leg and link) plus TLS."
    echo "- New connections that failed (no byte back; all reps): plaintext $(sumk xn.plain.new_failed), meshlet $(sumk xn.meshlet.new_failed), stunnel $(sumk xn.stunnel.new_failed)."
    echo "- Tunnel check: HBONE links (TCP to :15008) from the meshed client pod during its iperf3 run: $XLINKS_DURING, after all the runs: $XLINKS_AFTER (one pooled link expected); agent A's view of the iperf3 connections (control + data) meanwhile: ${XCONNS_SAMPLE:-none}. Agent RSS after the runs: A $((XRSS_A / 1024)) MiB, B $((XRSS_B / 1024)) MiB."
    echo
    echo "<details><summary>raw values (every repetition)</summary>"
    echo
    echo '```'
    grep '^xn\.' "$RESULTS" | awk '{v[$1] = v[$1] " " $2} END {for (k in v) print k ":" v[k]}' | sort
    echo '```'
    echo "</details>"
  } >"$out"
  replace_generated "$out" '<!-- BEGIN GENERATED: bench/run.sh xnode -->' '<!-- END GENERATED xnode -->' "## Results: cross-node"
  cat "$out"
}

# hold_l7: the part-5 setup stays up until $RUN/hold is removed (or the script is
# interrupted), for measuring or profiling by hand; nothing is recorded.
hold_l7() {
  touch "$RUN/hold"
  log "holding: meshletd pid $AGENT_PID, haproxy pid $HAPROXY_L7, nginx pids $NGINX_PIDS"
  log "  e.g. sh -c 'echo \$\$ >${POD_CG[mc]}/cgroup.procs; exec ip netns exec $P-mc wrk -t1 -c16 -d5s http://$L7_VIP/'  (meshlet: from the pod's cgroup)"
  log "  e.g. ip netns exec $P-hc wrk -t1 -c16 -d5s http://127.0.0.1:15080/  (haproxy)"
  log "  e.g. ip netns exec $P-pc wrk -t1 -c16 -d5s http://198.18.0.3/  (no mesh)"
  log "  rm $RUN/hold to clean up and exit"
  while [ -e "$RUN/hold" ]; do sleep 1; done
}

# Part 5's own generated section (a run that includes l7 rewrites it alone).
# l7cell PATH METRIC FORMAT ERRKEY: the median of l7.PATH.METRIC, or "failed" when any run of
# that kind (ERRKEY: wrk_errors or rate_errors) on the path had errors.
l7cell() {
  local e
  e=$(sumk "l7.$1.$4")
  if [ "$e" != n/a ] && [ "$e" != 0 ]; then
    echo "**failed** ($e errors)"
  else
    fmt "$(med "l7.$1.$2")" "$3"
  fi
}
l7ok() { local e; e=$(sumk "l7.$1.$2"); [ "$e" = 0 ]; }  # l7ok PATH ERRKEY: no errors
# l7ratio METRIC ERRKEY: meshlet ÷ haproxy of the medians, n/a when either path failed.
l7ratio() {
  if l7ok meshlet "$2" && l7ok haproxy "$2"; then ratio "$(med "l7.meshlet.$1")" "$(med "l7.haproxy.$1")"; else echo n/a; fi
}

report_l7() {
  local out=$RUN/report-l7.md row key label l1 l2 fm ek n m h r
  {
    echo "Measured $(date -u +'%Y-%m-%d %H:%M UTC') on $(uname -r), $(nproc) CPUs, $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3);"
    echo "load average at start / end of the run: $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes the numbers noisier);"
    echo "meshlet $BUILT_FROM built Release in build-bench/ (meshletd linked $(stat -c %y "$MESHLETD" | cut -d. -f1));"
    echo "mode: $([ "$QUICK" = 1 ] && echo "**--quick** (indicative only)" || echo full), $REPS rep(s) per cell, medians."
    echo
    echo "### 5. Same-node HTTP/1.1 through one L7 proxy: no mesh vs meshlet's L7 path vs haproxy (mode http)"
    echo
    echo "Server: nginx (1 worker, \`return 200\`, 3-byte body) in the meshed pod \`ms\`. Saturation: \`wrk -t1 -c$WRK_CONNS -d${T_WRK}s\`; fixed rate: \`httpload\` at $L7_RATE req/s (open loop, $L7_CONNS keep-alive connections, latency from each request's scheduled send time) for ${T_RATE} s. CPU from \`/proc/PID/stat\` (utime + stime) of meshletd (the whole agent) and of haproxy, idle time included."
    echo
    echo "| metric | no mesh | meshlet L7 | haproxy | meshlet ÷ haproxy |"
    echo "|---|---:|---:|---:|---:|"
    for row in "rps:saturation: requests/s:%.0f:wrk_errors" \
      "proxy_cores:saturation: proxy CPU (cores):%.2f:wrk_errors" \
      "rps_per_core:saturation: requests/s per proxy core:%.0f:wrk_errors" \
      "server_cores:saturation: nginx CPU (cores):%.2f:wrk_errors" \
      "p50:$L7_RATE req/s: latency p50 (µs):%.0f:rate_errors" \
      "p90:$L7_RATE req/s: latency p90 (µs):%.0f:rate_errors" \
      "p99:$L7_RATE req/s: latency p99 (µs):%.0f:rate_errors" \
      "added_p50:$L7_RATE req/s: added p50 vs no mesh (µs; median of the per-rep differences):%+.0f:rate_errors" \
      "added_p99:$L7_RATE req/s: added p99 vs no mesh (µs; median of the per-rep differences):%+.0f:rate_errors" \
      "cpu1k:$L7_RATE req/s: proxy CPU per 1000 req/s (vCPU):%.4f:rate_errors" \
      "server_cpu1k:$L7_RATE req/s: nginx CPU per 1000 req/s (vCPU):%.4f:rate_errors" \
      "rate:$L7_RATE req/s: rate reached (req/s):%.0f:rate_errors"; do
      # The label holds one ':' of its own ("saturation: ...", "1000 req/s: ...").
      IFS=: read -r key l1 l2 fm ek <<<"$row"
      label="$l1:$l2"
      case $key in
        proxy_cores|rps_per_core|added_p50|added_p99|cpu1k) n="–" ;;
        *) n=$(l7cell nomesh "$key" "$fm" "$ek") ;;
      esac
      m=$(l7cell meshlet "$key" "$fm" "$ek"); h=$(l7cell haproxy "$key" "$fm" "$ek")
      case $key in
        server_cores|server_cpu1k|rate) r="" ;;
        # A ratio of added latencies means something only when both are above no mesh's.
        added_*) r=$(awk -v a="$(med "l7.meshlet.$key")" -v b="$(med "l7.haproxy.$key")" 'BEGIN {print (a != "nan" && b != "nan" && a > 0 && b > 0) ? "ok" : "n/a"}')
          [ "$r" = ok ] && r=$(l7ratio "$key" "$ek") ;;
        *) r=$(l7ratio "$key" "$ek") ;;
      esac
      echo "| $label | $n | $m | $h | $r |"
    done
    echo
    r=$(l7ratio rps_per_core wrk_errors)
    echo "- Target meshlet ≥ 1.0× haproxy requests/s per proxy core: $r → $(yesno "$(awk -v r="$r" 'BEGIN {print (r != "n/a" && r >= 1.0)}')")"
    if l7ok meshlet rate_errors && l7ok nomesh rate_errors; then m=$(med l7.meshlet.added_p99); else m=nan; fi
    echo "- Target added p99 ≤ 0.5 ms at $L7_RATE req/s (meshlet − no mesh): $(fmt "$m" '%+.0f') µs → $(yesno "$(awk -v v="$m" 'BEGIN {print (v != "nan" && v <= 500)}')") (haproxy: $(l7ok haproxy rate_errors && l7ok nomesh rate_errors && fmt "$(med l7.haproxy.added_p99)" '%+.0f' || echo n/a) µs)"
    if l7ok meshlet rate_errors; then m=$(med l7.meshlet.cpu1k); else m=nan; fi
    echo "- Target agent CPU ≤ 0.10 vCPU per 1000 req/s: $(fmt "$m" '%.4f') → $(yesno "$(awk -v v="$m" 'BEGIN {print (v != "nan" && v <= 0.10)}')") (haproxy: $(l7cell haproxy cpu1k '%.4f' rate_errors); idle, before the runs: agent $L7_IDLE_AGENT, haproxy $L7_IDLE_HAPROXY vCPU)"
    echo "- Path checks (curl before measuring: status, \`x-mlt-bench\` response header): no mesh \`$L7_PROBE_NOMESH\`, meshlet \`$L7_PROBE_MESHLET\` (set by the VirtualService's route), haproxy \`$L7_PROBE_HAPROXY\`. During rep 1's wrk run the agent listed ${L7_CONNS_SEEN:-?} L7 connections (\`meshlet connections\`, path \`l7\`; e.g. \`${L7_CONNS_SAMPLE:-?}\`) for wrk's $WRK_CONNS; it counted $L7_AGENT_REQS requests to \`web\` in \`istio_requests_total\` over the reps, for $L7_MESHLET_CLIENT_REQS the clients completed (wrk does not count the requests in flight when it stops). Agent RSS after the runs: $((L7_RSS_KB / 1024)) MiB."
    echo "- Errors (non-2xx responses, socket errors, requests without an answer; all reps): wrk no mesh $(sumk l7.nomesh.wrk_errors), meshlet $(sumk l7.meshlet.wrk_errors), haproxy $(sumk l7.haproxy.wrk_errors); httpload no mesh $(sumk l7.nomesh.rate_errors), meshlet $(sumk l7.meshlet.rate_errors), haproxy $(sumk l7.haproxy.rate_errors)."
    echo
    echo "<details><summary>raw values (every repetition)</summary>"
    echo
    echo '```'
    grep '^l7\.' "$RESULTS" | awk '{v[$1] = v[$1] " " $2} END {for (k in v) print k ":" v[k]}' | sort
    echo '```'
    echo "</details>"
  } >"$out"
  replace_generated "$out" '<!-- BEGIN GENERATED: bench/run.sh l7 -->' '<!-- END GENERATED l7 -->' "## Results: L7"
  cat "$out"
}

# ---------------------------------------------------------------------------- main

[ "$(id -u)" = 0 ] || die "run as root"
cleanup
rm -rf "$LOGS"
mkdir -p "$RUN"
: >"$RESULTS"
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
install_tools
build

if [ "$SINGLE" = 1 ]; then
  METRICS_PORT=$(free_port)
  setup_pods
  CONFIG=$RUN/config
  mkdir -p "$CONFIG"
  gen_base "$NODE" "$P" >"$CONFIG/00-base.yaml"
  log "meshletd: attached at $CG_MESH, pins under $BPFFS, metrics 127.0.0.1:$METRICS_PORT"
  start_agent "$CONFIG" meshletd
  CLI status >"$RUN/status-start.txt"
  [ "$(CLI workloads -o json | jq '[.[] | select(.enrolled)] | length')" = 2 ] ||
    { CLI workloads; die "the two meshed pods are not enrolled"; }
  if want p2p; then bench_pod_to_pod; fi
  # Part 5 before part 2 (which loads 10 000 services) and part 3 (which replaces the agent).
  if want l7; then bench_l7; fi
  if want conn; then bench_conn_cost; fi
  if want footprint; then bench_footprint; fi
  stop_agent
fi
if want xnode; then
  setup_xnode
  if [ "$HOLD" = 1 ]; then hold_xnode; exit 0; fi
  bench_xnode
fi
if [ "$P123" = 1 ]; then report; fi
if want xnode; then report_xnode; fi
if want l7; then report_l7; fi
log "done in $(( $(date +%s) - START )) s; results in $README"

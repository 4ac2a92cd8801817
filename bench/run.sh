#!/usr/bin/env bash
# meshlet benchmarks, run by hand (not part of CI): bench/run.sh [--quick] [--reps N]
#
#   1. same-node pod->pod: no mesh vs meshlet (splice) vs sidecar-like (haproxy + iptables)
#      sockperf ping-pong latency (p50/p99) and iperf3 single-stream throughput
#   2. connection cost with 1 / 1 000 / 10 000 Services: meshlet vs kube-proxy-style iptables
#   3. agent footprint with 10 000 Services / 100 000 endpoints: RSS, BPF map memory, sync time
#
# Everything it creates is named mlt-bench*: network namespaces, the cgroup subtree
# <cgroup2>/mlt-bench (meshlet attaches at <cgroup2>/mlt-bench/mesh only), the bpffs pin dir
# /sys/fs/bpf/mlt-bench and /run/mlt-bench. Leftovers of an interrupted run are removed first.
# The medians land in the generated section of bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source tools/lib/pods.sh   # cgroup2_root
source bench/gen.sh

QUICK=0
REPS=5
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1; REPS=1 ;;
    --reps) REPS=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "usage: bench/run.sh [--quick] [--reps N]" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then T_PP=2; T_IPERF=2; T_CONN=1; SYNC_REPS=2; else T_PP=5; T_IPERF=5; T_CONN=3; SYNC_REPS=5; fi

P=mlt-bench
NODE=mlt-bench-node          # also the agent's --node-name
RUN=/run/$P
BPFFS=/sys/fs/bpf/$P
SOCK=$RUN/admin.sock
CG2=$(cgroup2_root)
CG=$CG2/$P                   # whole subtree
CG_MESH=$CG/mesh             # meshlet attaches here
CG_PLAIN=$CG/plain           # no-mesh, sidecar and kube-proxy pods: nothing attached
BUILD=$ROOT/build-bench
MESHLETD=$BUILD/agent/meshletd
MESHLET=$BUILD/tools/meshlet/meshlet
AGENT_PID=""
RESULTS=$RUN/results.txt     # "key value" lines, one per measurement
README=$ROOT/bench/README.md
LOGS=/tmp/$P-logs            # logs of a failed run

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
  need curl curl; need jq jq; need bpftool bpftool; need g++ g++; need cmake cmake; need ip iproute2
}

build() {
  log "building meshletd and meshlet in $BUILD (Release)"
  # -Wno-restrict: GCC 12's -Wrestrict false positive on std::string at -O3 (GCC PR105329)
  # breaks the -Werror build in Release; the code is fine.
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Wno-restrict >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target meshletd meshlet >"$RUN/build.log" 2>&1 ||
    { tail -30 "$RUN/build.log"; die "build failed (log above)"; }
  g++ -O2 -std=c++17 -o "$RUN/connbench" "$ROOT/bench/connbench.cc"
}

# ---------------------------------------------------------------------------- pods

# pod NAME IP CGPARENT: netns mlt-bench-NAME, veth to the node bridge, cgroup CGPARENT/NAME.
POD_IDX=0
pod() {
  local name=$1 ip=$2 parent=$3 host_if
  POD_IDX=$((POD_IDX + 1))
  host_if="mltbv$POD_IDX"
  ip netns add "$P-$name"
  ip -n "$P-node" link add "$host_if" type veth peer name eth0 netns "$P-$name"
  ip -n "$P-node" link set "$host_if" master br0 up
  ip -n "$P-$name" link set lo up
  ip -n "$P-$name" addr add "$ip/24" dev eth0
  ip -n "$P-$name" link set eth0 up
  ip -n "$P-$name" route add default dev eth0
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

  # Servers: sockperf on 11111, iperf3 on 5201, connbench on 8080.
  for s in ms:198.18.0.3 ps:198.18.0.5; do
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
  wait_port ss 127.0.0.1 11111; wait_port ss 127.0.0.1 5201
}

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

# iperf CLIENT IP KEY: single stream, records KEY.gbps (receiver side).
iperf() {
  local out gbps
  out=$(inpod "$1" iperf3 -c "$2" -p 5201 -t "$T_IPERF" -J 2>&1) ||
    { echo "$out" | tail -5 >&2; die "iperf3 $3 failed"; }
  gbps=$(jq -r '.end.sum_received.bits_per_second / 1e9' <<<"$out")
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
    iperf pc 198.18.0.5 p2p.nomesh
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
      conn mc "$vip" 80 "conn.meshlet.$n"
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
  log "  startup ${STARTUP_MS}ms, RSS $((RSS_BIG_KB / 1024)) MiB, maps $MAP_COUNT / $((MAP_BYTES / 1048576)) MiB memlock"
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
  # kube-proxy's analogue of a sync: iptables-restore of 10 000 services (median of part 2).
}

# ---------------------------------------------------------------------------- report

med() {  # med KEY: median of the recorded values
  awk -v k="$1" '$1 == k {print $2}' "$RESULTS" | sort -g |
    awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN {if (v == "nan") print "n/a"; else printf f, v}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2f", a / b}'; }
yesno() { awk -v c="$1" 'BEGIN {print (c ? "**yes**" : "**no**")}'; }

report() {
  local out=$RUN/report.md
  local nl nm ns r
  {
    echo "Measured $(date -u +'%Y-%m-%d %H:%M UTC') on $(uname -r), $(nproc) CPUs, $(iptables -V), $(haproxy -v | head -1 | cut -d' ' -f1-3);"
    echo "load average at start / end of the run: $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes the numbers noisier);"
    echo "meshlet $(git -C "$ROOT" rev-parse --short HEAD)$([ -n "$(git -C "$ROOT" status --porcelain -- agent bpf tools 2>/dev/null)" ] && echo " (with uncommitted changes in the tree)") built Release;"
    echo "mode: $([ "$QUICK" = 1 ] && echo "**--quick** (indicative only)" || echo full), $REPS rep(s) per cell, medians."
    echo
    echo "### 1. Same-node pod→pod through a Service address"
    echo
    echo "| metric | no mesh | meshlet | sidecar-like | meshlet ÷ no mesh | meshlet ÷ sidecar |"
    echo "|---|---:|---:|---:|---:|---:|"
    for m in p50:"latency p50 (µs)" p99:"latency p99 (µs)" gbps:"throughput (Gbit/s)"; do
      local key=${m%%:*} label=${m#*:} fm='%.2f'
      nl=$(med "p2p.nomesh.$key"); nm=$(med "p2p.meshlet.$key"); ns=$(med "p2p.sidecar.$key")
      echo "| $label | $(fmt "$nl" "$fm") | $(fmt "$nm" "$fm") | $(fmt "$ns" "$fm") | $(ratio "$nm" "$nl") | $(ratio "$nm" "$ns") |"
    done
    nl=$(med p2p.nomesh.p50); nm=$(med p2p.meshlet.p50)
    r=$(ratio "$nm" "$nl")
    echo
    echo "- Target meshlet ÷ no-mesh p50 latency ≤ 0.6: $r → $(yesno "$(awk -v r="$r" 'BEGIN {print (r != "n/a" && r <= 0.6)}')")"
    nl=$(med p2p.nomesh.gbps); nm=$(med p2p.meshlet.gbps)
    r=$(ratio "$nm" "$nl")
    echo "- Target meshlet ÷ no-mesh throughput ≥ 3: $r → $(yesno "$(awk -v r="$r" 'BEGIN {print (r != "n/a" && r >= 3)}')")"
    echo "- Splice check: $SPLICED_P2P spliced connections counted by the agent for $P2P_MESHLET_CONNS meshlet connections; live during an iperf3 run: ${SPLICED_SEEN:-none}."
    echo
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
    echo "- kube-proxy-style from 1 to 10 000 services: connect p50 $(awk -v a="$k10k" -v b="$k1" 'BEGIN {printf "%+.0f", (a / b - 1) * 100}') %."
    [ -s "$RUN/map-full.txt" ] && echo "- Kernel map-full counters after part 2: $(tr '\n' ' ' <"$RUN/map-full.txt")"
    echo
    echo "### 3. Agent footprint: 10 000 Services / 100 000 endpoints"
    echo
    echo "| metric | value | target |"
    echo "|---|---:|---|"
    echo "| config in the maps | ${BIG_SERVICES} services, ${BIG_BACKENDS} backends, ${BIG_MAGLEV} Maglev entries (Maglev is only built for ClientIP affinity), from ${BIG_YAML_MB} MB of YAML | |"
    echo "| meshletd RSS (VmRSS) after load | $(awk -v k="$RSS_BIG_KB" 'BEGIN {printf "%.1f MiB", k / 1024}') | ≤ 25 MB → $(yesno "$(awk -v k="$RSS_BIG_KB" 'BEGIN {print (k * 1024 <= 25e6)}')") |"
    echo "| meshletd RSS after $SYNC_REPS flips / peak (VmHWM) | $(awk -v k="$RSS_BIG_AFTER_KB" -v h="$HWM_BIG_KB" 'BEGIN {printf "%.1f MiB / %.1f MiB", k / 1024, h / 1024}') | |"
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
    echo "<details><summary>raw values (every repetition)</summary>"
    echo
    echo '```'
    awk '{v[$1] = v[$1] " " $2} END {for (k in v) print k ":" v[k]}' "$RESULTS" | sort
    echo '```'
    echo "</details>"
  } >"$out"
  local begin='<!-- BEGIN GENERATED: bench/run.sh -->' end='<!-- END GENERATED -->'
  if [ -f "$README" ] && grep -qF "$begin" "$README"; then
    awk -v b="$begin" -v e="$end" -v f="$out" '
      $0 == b {print; while ((getline l < f) > 0) print l; skip = 1; next}
      $0 == e {skip = 0}
      !skip {print}' "$README" >"$RUN/README.new"
  else
    { [ -f "$README" ] && cat "$README"; echo; echo "## Results"; echo; echo "$begin"; cat "$out"; echo "$end"; } >"$RUN/README.new"
  fi
  cp "$RUN/README.new" "$README"
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

bench_pod_to_pod
bench_conn_cost
bench_footprint
stop_agent
report
log "done in $(( $(date +%s) - START )) s; results in $README"

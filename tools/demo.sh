#!/usr/bin/env bash
# The demo on the embedded default (file source): meshletd watching examples/demo/, three pods
# created the way a container runtime creates them (network namespaces wired by Debian's CNI
# plugins with meshlet-cni chained last), traffic through Service addresses from the client
# pod, the CLI showing balancing and splicing, the metrics, then cleanup.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source tools/lib/pods.sh

tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target meshletd meshlet meshlet-cni

P=mlt-demo
RUN=/run/$P
BPFFS=/sys/fs/bpf/$P
SOCK=$RUN/admin.sock
METRICS=127.0.0.1:15020
READY=127.0.0.1:15021
MESHLETD=$ROOT/build/agent/meshletd
CLI=("$ROOT/build/tools/meshlet/meshlet" --admin-socket "$SOCK" --bpffs "$BPFFS")
AGENT_PID=""

cleanup() {
  set +e
  if [ -f "$RUN/net.d/10-demo.conflist" ]; then
    for pod in web-2 web-1 client; do
      [ -f "$RUN/$pod.cni.json" ] || continue
      ip netns exec "$P-node" bash -c "source tools/lib/cni.sh; CNI_PATH='$RUN/cni-bin:/usr/lib/cni' \
        cni_exec_list DEL '$RUN/net.d/10-demo.conflist' '$P-$pod' /var/run/netns/$P-$pod '' \
        \"\$(cat '$RUN/$pod.cni.json')\"" >/dev/null 2>&1
    done
    "$ROOT/build/cni/meshlet-cni" uninstall --bin-dir "$RUN/cni-bin" --conf-dir "$RUN/net.d" >/dev/null 2>&1
  fi
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
  "$MESHLETD" --uninstall --bpffs "$BPFFS" --admin-socket "$SOCK" 2>/dev/null
  pods_cleanup "$P"
  rm -rf "$RUN"
}
trap cleanup EXIT
cleanup  # leftovers of an interrupted run
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mkdir -p "$RUN"
step "meshletd --config-dir examples/demo (attached at $(cgroup2_root)/$P, pins under $BPFFS)"
pods_node_up "$P"
cp -r examples/demo "$RUN/config"
"${CLI[@]}" ca init --dir "$RUN/ca" >/dev/null  # the built-in CA that signs workload certificates
"$MESHLETD" --config-dir "$RUN/config" --node-name demo-node --cgroup "$(cgroup2_root)/$P" \
  --bpffs "$BPFFS" --admin-socket "$SOCK" --metrics-addr "$METRICS" --readiness-addr "$READY" \
  --cni-socket "$RUN/cni.sock" --state-dir "$RUN/state" --ca-dir "$RUN/ca" \
  >"$RUN/meshletd.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 50); do curl -sf "http://$READY/healthz/ready" >/dev/null && break; sleep 0.1; done
echo "  readiness: $(curl -s "http://$READY/healthz/ready")"

step "meshlet-cni install: chained last in the node's conflist (bridge + host-local)"
mkdir -p "$RUN/net.d" "$RUN/cni-bin"
cat >"$RUN/net.d/10-demo.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$P",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "mltdemo0",
      "isGateway": false,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "198.18.0.0/24", "rangeStart": "198.18.0.2"}]],
        "dataDir": "$RUN/ipam"
      }
    }
  ]
}
JSON
"$ROOT/build/cni/meshlet-cni" install --bin-dir "$RUN/cni-bin" --conf-dir "$RUN/net.d" \
  --socket "$RUN/cni.sock"
sed 's/^/  /' "$RUN/net.d/10-demo.conflist"

step "pods: the runtime's CNI ADD (loopback, bridge, host-local, meshlet-cni) for client, web-1, web-2"
export CNI_PATH="$RUN/cni-bin:/usr/lib/cni"
for pod in client web-1 web-2; do
  ip netns add "$P-$pod"
  mkdir -p "$(cgroup2_root)/$P/$pod"
  args="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$pod;K8S_POD_INFRA_CONTAINER_ID=$P-$pod;K8S_POD_UID=uid-$pod"
  echo '{"cniVersion":"1.0.0","name":"lo","type":"loopback"}' | ip netns exec "$P-node" env \
    CNI_COMMAND=ADD CNI_CONTAINERID="$P-$pod" CNI_NETNS="/var/run/netns/$P-$pod" CNI_IFNAME=lo \
    CNI_PATH="$CNI_PATH" /usr/lib/cni/loopback >/dev/null
  ip netns exec "$P-node" bash -c "source tools/lib/cni.sh; cni_exec_list ADD '$RUN/net.d/10-demo.conflist' \
    '$P-$pod' /var/run/netns/$P-$pod '$args'" >"$RUN/$pod.cni.json"
  echo "  $pod: $(jq -r '.ips[0].address' "$RUN/$pod.cni.json")"
done
for w in web-1 web-2; do
  # A one-line HTTP server: socat runs this script per connection.
  printf '#!/bin/sh\nread -r _\nprintf "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nhello from %s\\n"\n' "$w" >"$RUN/$w.sh"
  chmod +x "$RUN/$w.sh"
  pods_exec "$P" "$w" socat TCP-LISTEN:8080,fork,reuseaddr EXEC:"$RUN/$w.sh" >"$RUN/$w.log" 2>&1 &
done
pods_exec "$P" web-2 iperf3 -s -p 5201 >"$RUN/iperf3.log" 2>&1 &
sleep 0.5
"${CLI[@]}" status
step "meshlet services"
"${CLI[@]}" services
step "meshlet endpoints"
"${CLI[@]}" endpoints
step "meshlet workloads"
"${CLI[@]}" workloads
step "meshlet certs: a SPIFFE certificate per service account, from the CA made by meshlet ca init"
sleep 1  # certificates are checked once a second
"${CLI[@]}" certs

step "curl http://198.19.0.10/ six times from the client pod: balanced in the kernel at connect()"
for _ in 1 2 3 4 5 6; do pods_exec "$P" client curl -s --max-time 2 http://198.19.0.10/; done

step "a service with no ready endpoint: refused at once"
pods_exec "$P" client curl -sS --max-time 2 http://198.19.0.30/ 2>&1 | sed 's/^/  /' || true

step "iperf3 through 198.19.0.20:5201 while we look at the connections (spliced: same node, both enrolled)"
pods_exec "$P" client iperf3 -c 198.19.0.20 -p 5201 -t 3 -f g >"$RUN/iperf3-client.log" 2>&1 &
IPERF=$!
sleep 1.5
"${CLI[@]}" connections
wait "$IPERF" || true
grep -E 'sender|receiver' "$RUN/iperf3-client.log" | sed 's/^/  /'

step "bpf maps and programs (read from the pins: works with the agent down)"
"${CLI[@]}" bpf maps
"${CLI[@]}" bpf progs

step "Prometheus metrics (istio_tcp_* fed from the kernel, spliced connections included)"
sleep 1.5
curl -s "http://$METRICS/metrics" | grep -E '^(istio_tcp_connections_opened_total|istio_tcp_sent_bytes_total|meshlet_spliced_connections_total|meshlet_config_generation)' \
  | sed -E 's/source_app="[^"]*",|source_cluster="[^"]*",|destination_cluster="[^"]*",|source_version="[^"]*",|destination_version="[^"]*",//g' | head -12

step "a bad change is rejected whole, the last good state stays"
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: demo}\nspec: {clusterIP: 198.19.0.99, ports: [{port: 70000}]}\n' >"$RUN/config/90-broken.yaml"
sleep 1
"${CLI[@]}" status | grep -E 'Config ok|Last error' || "${CLI[@]}" status
pods_exec "$P" client curl -s --max-time 2 http://198.19.0.10/
rm "$RUN/config/90-broken.yaml"

step "cleanup"

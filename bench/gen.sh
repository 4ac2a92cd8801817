# shellcheck shell=bash
# Generators for bench/run.sh: meshlet config YAML (file source) and kube-proxy-style
# iptables-restore input. Sourced; every function writes to stdout.
#
# Addresses (all in 198.18.0.0/15):
#   pods                    198.18.0.2 - 198.18.0.11
#   fake endpoints (part 3) 198.18.1.0 onward (100 000 of them end at 198.19.135.x)
#   part-1 Service VIPs     198.19.0.10, 198.19.0.11
#   part-5 Service VIP      198.19.0.30 (HTTP, the L7 path)
#   generated Service VIPs  198.19.200.1 - 198.19.239.250 (service i of 1..10 000)
#   cross-node (part 4)     node A pods 198.18.1.0/24 (gateway .254), node B pods
#                           198.18.2.0/24, link between the nodes 198.18.250.0/30, Service
#                           VIP 198.19.0.20; the same layout as tests/lib/sandbox.cc. Part 3's
#                           fake endpoints overlap these, but they only ever exist as map
#                           entries of part 3's agent, which is gone when part 4 runs.

BENCH_NS=bench

# gen_vip I: the cluster IP of generated service I (1-based).
gen_vip() {
  local i=$(( $1 - 1 ))
  echo "198.19.$((200 + i / 250)).$((1 + i % 250))"
}

# gen_base NODE NETNS_PREFIX: the namespace, the two meshed pods (mc client, ms server) and
# the part-1 services: 198.19.0.10:11111 (sockperf) and 198.19.0.11:5201 (iperf3) -> ms.
gen_base() {
  local node=$1 prefix=$2
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $BENCH_NS
  labels:
    istio.io/dataplane-mode: meshlet
---
apiVersion: v1
kind: Pod
metadata:
  name: mc
  namespace: $BENCH_NS
  labels: {app: mc}
  annotations:
    meshlet.io/netns: /var/run/netns/$prefix-mc
spec:
  nodeName: $node
  serviceAccountName: client
  containers: [{name: client, image: bench}]
status:
  phase: Running
  podIP: 198.18.0.2
  podIPs: [{ip: 198.18.0.2}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Pod
metadata:
  name: ms
  namespace: $BENCH_NS
  labels: {app: ms}
  annotations:
    meshlet.io/netns: /var/run/netns/$prefix-ms
spec:
  nodeName: $node
  serviceAccountName: server
  containers: [{name: server, image: bench}]
status:
  phase: Running
  podIP: 198.18.0.3
  podIPs: [{ip: 198.18.0.3}]
  conditions: [{type: Ready, status: "True"}]
EOF
  local name vip port
  for spec in "latency 198.19.0.10 11111" "bulk 198.19.0.11 5201"; do
    read -r name vip port <<<"$spec"
    cat <<EOF
---
apiVersion: v1
kind: Service
metadata:
  name: $name
  namespace: $BENCH_NS
spec:
  clusterIP: $vip
  ports:
  - {name: tcp, port: $port, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $name-1
  namespace: $BENCH_NS
  labels:
    kubernetes.io/service-name: $name
addressType: IPv4
ports:
- {name: tcp, port: $port, protocol: TCP}
endpoints:
- addresses: [198.18.0.3]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: $node
  targetRef: {kind: Pod, name: ms, namespace: $BENCH_NS}
EOF
  done
}

# gen_services N NODE ENDPOINTS FLIP: N services svc-I (VIP gen_vip I, port 80), each with one
# EndpointSlice.
#   ENDPOINTS=1:  the endpoint is the ms pod, 198.18.0.3:8080 (the connbench server)
#   ENDPOINTS=10: ten endpoints at distinct non-existent addresses from 198.18.1.0 on,
#                 port 8080; the first endpoint of services 1-5 is on NODE (the rest on
#                 node-0..49). FLIP=1 marks the first endpoint of every service not ready
#                 (N endpoints change).
gen_services() {
  awk -v n="$1" -v node="$2" -v eps="$3" -v flip="$4" -v ns="$BENCH_NS" 'BEGIN {
    base = 198 * 16777216 + 18 * 65536 + 256;   # 198.18.1.0
    for (i = 1; i <= n; i++) {
      k = i - 1;
      vip = sprintf("198.19.%d.%d", 200 + int(k / 250), 1 + k % 250);
      printf "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%d\n  namespace: %s\n", i, ns;
      printf "spec:\n  clusterIP: %s\n  ports:\n  - {name: tcp, port: 80, targetPort: 8080, protocol: TCP}\n", vip;
      printf "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-%d-1\n  namespace: %s\n", i, ns;
      printf "  labels:\n    kubernetes.io/service-name: svc-%d\naddressType: IPv4\n", i;
      printf "ports:\n- {name: tcp, port: 8080, protocol: TCP}\nendpoints:\n";
      if (eps == 1) {
        printf "- addresses: [198.18.0.3]\n  conditions: {ready: true, serving: true, terminating: false}\n";
        printf "  nodeName: %s\n  targetRef: {kind: Pod, name: ms, namespace: %s}\n", node, ns;
        continue;
      }
      for (j = 0; j < eps; j++) {
        a = base + k * eps + j;
        ip = sprintf("%d.%d.%d.%d", int(a / 16777216), int(a / 65536) % 256, int(a / 256) % 256, a % 256);
        ready = (flip == 1 && j == 0) ? "false" : "true";
        nn = (j == 0 && i <= 5) ? node : sprintf("node-%d", (k * eps + j) % 50);
        printf "- addresses: [%s]\n  conditions: {ready: %s, serving: %s, terminating: false}\n  nodeName: %s\n", ip, ready, ready, nn;
      }
    }
  }'
}

# gen_kube_proxy N BACKEND_IP BACKEND_PORT: the nat table kube-proxy (iptables mode) writes
# for N ClusterIP services (VIP gen_vip I, port 80), each with one endpoint.
gen_kube_proxy() {
  awk -v n="$1" -v be="$2" -v bp="$3" -v ns="$BENCH_NS" 'BEGIN {
    print "*nat";
    print ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]";
    print ":KUBE-SERVICES - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]";
    for (i = 1; i <= n; i++) printf ":KUBE-SVC-%016X - [0:0]\n:KUBE-SEP-%016X - [0:0]\n", i, i;
    print "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
    print "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
    print "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING";
    print "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000";
    print "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN";
    print "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0";
    print "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully";
    for (i = 1; i <= n; i++) {
      k = i - 1;
      vip = sprintf("198.19.%d.%d", 200 + int(k / 250), 1 + k % 250);
      c = sprintf("%s/svc-%d:http", ns, i);
      printf "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport 80 -j KUBE-SVC-%016X\n", vip, c, i;
      printf "-A KUBE-SVC-%016X ! -s 198.18.0.0/24 -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n", i, vip, c;
      printf "-A KUBE-SVC-%016X -m comment --comment \"%s -> %s:%d\" -j KUBE-SEP-%016X\n", i, c, be, bp, i;
      printf "-A KUBE-SEP-%016X -s %s/32 -m comment --comment \"%s\" -j KUBE-MARK-MASQ\n", i, be, c;
      printf "-A KUBE-SEP-%016X -p tcp -m comment --comment \"%s\" -m tcp -j DNAT --to-destination %s:%d\n", i, c, be, bp;
    }
    print "COMMIT";
  }'
}

# gen_xnode NODE_A NODE_B NETNS_PREFIX: the cluster state both cross-node agents read: the
# meshed client xmc on NODE_A (198.18.1.2), the meshed server xms on NODE_B (198.18.2.2) and
# the Service xsvc 198.19.0.20 -> xms (11111 sockperf, 5201 iperf3, 8080 connbench echo).
# No EndpointSlice: the file source derives it from the selector.
gen_xnode() {
  local a=$1 b=$2 prefix=$3 spec name node ip sa
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $BENCH_NS-x
  labels:
    istio.io/dataplane-mode: meshlet
---
apiVersion: v1
kind: Service
metadata:
  name: xsvc
  namespace: $BENCH_NS-x
spec:
  clusterIP: 198.19.0.20
  selector: {app: xms}
  ports:
  - {name: latency, port: 11111, targetPort: 11111, protocol: TCP}
  - {name: bulk, port: 5201, targetPort: 5201, protocol: TCP}
  - {name: echo, port: 8080, targetPort: 8080, protocol: TCP}
EOF
  for spec in "xmc $a 198.18.1.2 client" "xms $b 198.18.2.2 server"; do
    read -r name node ip sa <<<"$spec"
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: $name
  namespace: $BENCH_NS-x
  labels: {app: $name}
  annotations:
    meshlet.io/netns: /var/run/netns/$prefix-$name
spec:
  nodeName: $node
  serviceAccountName: $sa
  containers: [{name: app, image: bench}]
status:
  phase: Running
  podIP: $ip
  podIPs: [{ip: $ip}]
  conditions: [{type: Ready, status: "True"}]
EOF
  done
}

# gen_l7 NODE: part 5's Service `web` 198.19.0.30, port 80 named `http` (so the kernel steers
# it to the agent's L7 proxy) -> the ms pod's nginx on 198.18.0.3:80, and a VirtualService with
# one http route: a prefix match, a single destination and a response header the script checks
# (x-mlt-bench: l7) to see that the requests really went through the agent.
gen_l7() {
  local node=$1
  cat <<EOF
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: $BENCH_NS
spec:
  clusterIP: 198.19.0.30
  ports:
  - {name: http, port: 80, targetPort: 80, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: $BENCH_NS
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- {name: http, port: 80, protocol: TCP}
endpoints:
- addresses: [198.18.0.3]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: $node
  targetRef: {kind: Pod, name: ms, namespace: $BENCH_NS}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
  namespace: $BENCH_NS
spec:
  hosts: [web]
  http:
  - name: bench
    match: [{uri: {prefix: /}}]
    headers:
      response: {set: {x-mlt-bench: l7}}
    route: [{destination: {host: web}}]
EOF
}

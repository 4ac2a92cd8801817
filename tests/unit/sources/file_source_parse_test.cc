// parseYaml on realistic `kubectl get -o yaml` output: every field of the typed objects.
#include <gtest/gtest.h>

#include <string>

#include "agent/sources/file_source.h"

namespace meshlet {
namespace {

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

Snapshot parseOk(const std::string& text, const std::string& file = "test.yaml") {
  Snapshot s;
  Status st = parseYaml(text, file, s);
  EXPECT_TRUE(st.ok()) << st.error().message();
  return s;
}

// `kubectl get svc web -o yaml`, with the server-side noise it prints.
constexpr const char* kKubectlService = R"(apiVersion: v1
kind: Service
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop"}}
    meshlet.io/lb-policy: round-robin
  creationTimestamp: "2024-05-02T09:14:11Z"
  labels:
    app.kubernetes.io/name: web
  managedFields:
  - apiVersion: v1
    fieldsType: FieldsV1
    fieldsV1:
      f:spec:
        f:ports:
          .: {}
          k:{"port":80,"protocol":"TCP"}:
            .: {}
            f:port: {}
    manager: kubectl-client-side-apply
    operation: Update
    time: "2024-05-02T09:14:11Z"
  name: web
  namespace: shop
  resourceVersion: "48151"
  uid: 2b1f0c8e-8d53-4a5e-9d0e-5c3e8f2b9a11
spec:
  clusterIP: 198.18.10.10
  clusterIPs:
  - 198.18.10.10
  - 2001:db8:10::10
  internalTrafficPolicy: Cluster
  ipFamilies:
  - IPv4
  - IPv6
  ipFamilyPolicy: PreferDualStack
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: http
    appProtocol: http
  - name: metrics
    port: 9100
    protocol: TCP
    targetPort: 9102
  - name: syslog
    port: 514
    protocol: UDP
  selector:
    app.kubernetes.io/name: web
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 10800
  trafficDistribution: PreferClose
  type: ClusterIP
status:
  loadBalancer: {}
)";

TEST(YamlParse, KubectlServiceAllFields) {
  Snapshot s = parseOk(kKubectlService, "svc.yaml");
  ASSERT_EQ(s.services.size(), 1u);
  const Service& svc = s.services[0];
  EXPECT_EQ(svc.meta.name, "web");
  EXPECT_EQ(svc.meta.ns, "shop");
  EXPECT_EQ(svc.meta.uid, "2b1f0c8e-8d53-4a5e-9d0e-5c3e8f2b9a11");
  EXPECT_EQ(svc.meta.labels, (Labels{{"app.kubernetes.io/name", "web"}}));
  EXPECT_EQ(svc.meta.annotations.size(), 2u);
  EXPECT_EQ(svc.meta.origin.file, "svc.yaml");
  EXPECT_EQ(svc.meta.origin.document, 1);
  ASSERT_EQ(svc.cluster_ips.size(), 2u);
  EXPECT_EQ(svc.cluster_ips[0], ip("198.18.10.10"));
  EXPECT_EQ(svc.cluster_ips[1], ip("2001:db8:10::10"));
  ASSERT_EQ(svc.ports.size(), 3u);
  EXPECT_EQ(svc.ports[0].name, "http");
  EXPECT_EQ(svc.ports[0].protocol, Protocol::kTCP);
  EXPECT_EQ(svc.ports[0].port, 80);
  EXPECT_EQ(svc.ports[0].target_port.number, 0);
  EXPECT_EQ(svc.ports[0].target_port.name, "http");
  EXPECT_EQ(svc.ports[0].app_protocol, "http");
  EXPECT_EQ(svc.ports[1].target_port.number, 9102);
  EXPECT_EQ(svc.ports[1].target_port.name, "");
  EXPECT_EQ(svc.ports[2].protocol, Protocol::kUDP);
  EXPECT_EQ(svc.ports[2].target_port.number, 514);  // defaults to port
  ASSERT_TRUE(svc.selector.has_value());
  EXPECT_EQ(*svc.selector, (Labels{{"app.kubernetes.io/name", "web"}}));
  EXPECT_EQ(svc.session_affinity, SessionAffinity::kClientIP);
  EXPECT_TRUE(svc.prefer_close);
  EXPECT_TRUE(svc.round_robin);
}

TEST(YamlParse, ServiceDefaults) {
  Snapshot s = parseOk(R"(
apiVersion: v1
kind: Service
metadata: {name: plain}
spec:
  clusterIP: 198.18.10.20
  ports: [{port: 443}]
)");
  ASSERT_EQ(s.services.size(), 1u);
  const Service& svc = s.services[0];
  EXPECT_EQ(svc.meta.ns, "default");
  EXPECT_FALSE(svc.selector.has_value());
  EXPECT_EQ(svc.session_affinity, SessionAffinity::kNone);
  EXPECT_FALSE(svc.prefer_close);
  EXPECT_FALSE(svc.round_robin);
  ASSERT_EQ(svc.ports.size(), 1u);
  EXPECT_EQ(svc.ports[0].protocol, Protocol::kTCP);
  EXPECT_EQ(svc.ports[0].target_port.number, 443);
}

TEST(YamlParse, HeadlessExternalNameAndServiceTypes) {
  Snapshot s = parseOk(R"(
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec:
  type: ExternalName
  externalName: search.example.com
---
apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  clusterIP: 198.18.10.30
  ports: [{port: 80, nodePort: 31080}]
  selector: {}
---
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  clusterIPs: ["2001:db8:10::30"]
  ports: [{port: 80, targetPort: 8080}]
  trafficDistribution: PreferSameNode
)");
  ASSERT_EQ(s.services.size(), 4u);
  EXPECT_TRUE(s.services[0].cluster_ips.empty());
  EXPECT_TRUE(s.services[0].selector.has_value());
  EXPECT_TRUE(s.services[1].cluster_ips.empty());
  EXPECT_FALSE(s.services[1].selector.has_value());
  EXPECT_EQ(s.services[1].meta.origin.document, 2);
  ASSERT_EQ(s.services[2].cluster_ips.size(), 1u);
  EXPECT_FALSE(s.services[2].selector.has_value());  // an empty selector selects nothing
  ASSERT_EQ(s.services[3].cluster_ips.size(), 1u);
  EXPECT_EQ(s.services[3].cluster_ips[0], ip("2001:db8:10::30"));
  EXPECT_TRUE(s.services[3].prefer_close);
}

// `kubectl get endpointslices -o yaml`: a List with status noise.
constexpr const char* kKubectlSlices = R"(apiVersion: v1
items:
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.1.10
    conditions:
      ready: true
      serving: true
      terminating: false
    nodeName: node-a
    targetRef:
      kind: Pod
      name: web-7d9f8-abcde
      namespace: shop
      uid: 0c2d6c4c-1f7e-4a1c-8f6b-8a4f0e0d2c11
    zone: zone-a
  - addresses:
    - 198.19.2.11
    conditions:
      ready: false
      serving: true
      terminating: true
    nodeName: node-b
    targetRef:
      kind: Pod
      name: web-7d9f8-fghij
  - addresses:
    - 198.19.2.12
    - 198.19.2.99
    conditions:
      ready: false
  - addresses:
    - 198.19.2.13
    targetRef:
      kind: Node
      name: node-c
  kind: EndpointSlice
  metadata:
    annotations:
      endpoints.kubernetes.io/last-change-trigger-time: "2024-05-02T09:20:00Z"
    creationTimestamp: "2024-05-02T09:14:11Z"
    generateName: web-
    generation: 7
    labels:
      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
      kubernetes.io/service-name: web
    managedFields:
    - apiVersion: discovery.k8s.io/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:addressType: {}
      manager: kube-controller-manager
      operation: Update
    name: web-x7k2p
    namespace: shop
    ownerReferences:
    - apiVersion: v1
      blockOwnerDeletion: true
      controller: true
      kind: Service
      name: web
      uid: 2b1f0c8e-8d53-4a5e-9d0e-5c3e8f2b9a11
    resourceVersion: "48200"
    uid: 9a0f4d55-3c1e-4f7d-9b3a-2e5c1d7f8a22
  ports:
  - name: http
    port: 8080
    protocol: TCP
  - name: dns
    port: 5353
    protocol: UDP
- addressType: IPv6
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 2001:db8:1::10
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: web
    name: web-v6abc
    namespace: shop
  ports:
  - name: http
    port: 8080
kind: List
metadata:
  resourceVersion: ""
)";

TEST(YamlParse, KubectlEndpointSliceList) {
  Snapshot s = parseOk(kKubectlSlices);
  ASSERT_EQ(s.endpoint_slices.size(), 2u);
  const EndpointSlice& e = s.endpoint_slices[0];
  EXPECT_EQ(e.meta.name, "web-x7k2p");
  EXPECT_EQ(e.meta.ns, "shop");
  EXPECT_EQ(e.meta.uid, "9a0f4d55-3c1e-4f7d-9b3a-2e5c1d7f8a22");
  EXPECT_EQ(e.service_name, "web");
  EXPECT_EQ(e.address_type, IpFamily::kV4);
  ASSERT_EQ(e.ports.size(), 2u);
  EXPECT_EQ(e.ports[0].name, "http");
  EXPECT_EQ(e.ports[0].port, 8080);
  EXPECT_EQ(e.ports[1].protocol, Protocol::kUDP);
  ASSERT_EQ(e.endpoints.size(), 4u);
  EXPECT_EQ(e.endpoints[0].address, ip("198.19.1.10"));
  EXPECT_TRUE(e.endpoints[0].ready);
  EXPECT_TRUE(e.endpoints[0].serving);
  EXPECT_FALSE(e.endpoints[0].terminating);
  EXPECT_EQ(e.endpoints[0].node_name, "node-a");
  EXPECT_EQ(e.endpoints[0].target_pod, "web-7d9f8-abcde");
  EXPECT_FALSE(e.endpoints[1].ready);
  EXPECT_TRUE(e.endpoints[1].serving);
  EXPECT_TRUE(e.endpoints[1].terminating);
  // serving absent = ready; terminating absent = false.
  EXPECT_FALSE(e.endpoints[2].ready);
  // The first of several addresses is the endpoint's (Kubernetes defines no others).
  EXPECT_EQ(e.endpoints[2].address, ip("198.19.2.12"));
  EXPECT_FALSE(e.endpoints[2].serving);
  EXPECT_FALSE(e.endpoints[2].terminating);
  // no conditions at all = ready and serving; a non-Pod targetRef is no target pod.
  EXPECT_TRUE(e.endpoints[3].ready);
  EXPECT_TRUE(e.endpoints[3].serving);
  EXPECT_EQ(e.endpoints[3].target_pod, "");
  EXPECT_EQ(s.endpoint_slices[1].address_type, IpFamily::kV6);
  EXPECT_EQ(s.endpoint_slices[1].endpoints[0].address, ip("2001:db8:1::10"));
  EXPECT_EQ(s.endpoint_slices[1].meta.origin.document, 1);
}

// `kubectl get pod -o yaml` of a running dual-stack pod.
constexpr const char* kKubectlPod = R"(apiVersion: v1
kind: Pod
metadata:
  annotations:
    meshlet.io/netns: /var/run/netns/cni-7f1e2d3c
  creationTimestamp: "2024-05-02T09:14:12Z"
  generateName: web-7d9f8-
  labels:
    app.kubernetes.io/name: web
    pod-template-hash: 7d9f8
  managedFields:
  - apiVersion: v1
    fieldsType: FieldsV1
    fieldsV1:
      f:status:
        f:conditions:
          k:{"type":"Ready"}:
            f:status: {}
    manager: kubelet
    operation: Update
    subresource: status
  name: web-7d9f8-abcde
  namespace: shop
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: web-7d9f8
    uid: 4e5f6a7b-0000-4000-8000-000000000001
  uid: 0c2d6c4c-1f7e-4a1c-8f6b-8a4f0e0d2c11
spec:
  containers:
  - image: nginx:1.25
    name: nginx
    ports:
    - containerPort: 8080
      name: http
      protocol: TCP
    - containerPort: 5353
      name: dns
      protocol: UDP
    resources: {}
  - image: example/exporter:1
    name: exporter
    ports:
    - containerPort: 9102
  nodeName: node-a
  serviceAccount: web
  serviceAccountName: web
status:
  conditions:
  - lastProbeTime: null
    lastTransitionTime: "2024-05-02T09:14:12Z"
    status: "True"
    type: Initialized
  - lastProbeTime: null
    lastTransitionTime: "2024-05-02T09:14:15Z"
    status: "True"
    type: Ready
  containerStatuses:
  - name: nginx
    ready: true
    restartCount: 0
  hostIP: 198.18.0.2
  phase: Running
  podIP: 198.19.1.10
  podIPs:
  - ip: 198.19.1.10
  - ip: 2001:db8:1::10
  qosClass: BestEffort
)";

TEST(YamlParse, KubectlPodAllFields) {
  Snapshot s = parseOk(kKubectlPod);
  ASSERT_EQ(s.pods.size(), 1u);
  const Pod& p = s.pods[0];
  EXPECT_EQ(p.meta.name, "web-7d9f8-abcde");
  EXPECT_EQ(p.meta.ns, "shop");
  EXPECT_EQ(p.meta.uid, "0c2d6c4c-1f7e-4a1c-8f6b-8a4f0e0d2c11");
  EXPECT_EQ(p.meta.labels.at("pod-template-hash"), "7d9f8");
  EXPECT_EQ(p.node_name, "node-a");
  EXPECT_EQ(p.service_account, "web");
  ASSERT_EQ(p.ports.size(), 3u);
  EXPECT_EQ(p.ports[0].name, "http");
  EXPECT_EQ(p.ports[0].container_port, 8080);
  EXPECT_EQ(p.ports[1].protocol, Protocol::kUDP);
  EXPECT_EQ(p.ports[2].name, "");
  EXPECT_EQ(p.ports[2].container_port, 9102);
  ASSERT_EQ(p.pod_ips.size(), 2u);
  EXPECT_EQ(p.pod_ips[0], ip("198.19.1.10"));
  EXPECT_EQ(p.pod_ips[1], ip("2001:db8:1::10"));
  EXPECT_TRUE(p.ready);
  EXPECT_EQ(p.phase, "Running");
  EXPECT_EQ(p.netns, "/var/run/netns/cni-7f1e2d3c");
}

TEST(YamlParse, PodDefaultsAndNotReady) {
  Snapshot s = parseOk(R"(
apiVersion: v1
kind: Pod
metadata: {name: pending}
spec:
  containers: [{name: app, image: app}]
status:
  phase: Pending
  podIP: 198.19.1.99
  conditions:
  - {type: Ready, status: "False"}
---
apiVersion: v1
kind: Pod
metadata: {name: bare}
)");
  ASSERT_EQ(s.pods.size(), 2u);
  EXPECT_EQ(s.pods[0].meta.ns, "default");
  EXPECT_EQ(s.pods[0].service_account, "default");
  EXPECT_FALSE(s.pods[0].ready);
  EXPECT_EQ(s.pods[0].phase, "Pending");
  EXPECT_EQ(s.pods[0].pod_ips, std::vector<IpAddr>{ip("198.19.1.99")});
  EXPECT_TRUE(s.pods[1].pod_ips.empty());
  EXPECT_FALSE(s.pods[1].ready);
  EXPECT_EQ(s.pods[1].netns, "");
}

TEST(YamlParse, NamespaceIsClusterScoped) {
  Snapshot s = parseOk(R"(
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio.io/dataplane-mode: meshlet}
  uid: 11111111-2222-4333-8444-555555555555
spec:
  finalizers: [kubernetes]
status:
  phase: Active
)");
  ASSERT_EQ(s.namespaces.size(), 1u);
  EXPECT_EQ(s.namespaces[0].meta.name, "shop");
  EXPECT_EQ(s.namespaces[0].meta.ns, "");
  EXPECT_EQ(s.namespaces[0].meta.labels.at(kDataplaneModeLabel), kDataplaneModeMeshlet);
  EXPECT_EQ(s.namespaces[0].meta.uid, "11111111-2222-4333-8444-555555555555");
}

TEST(YamlParse, MixedListEmptyDocumentsAndDocumentIndexes) {
  Snapshot s = parseOk(R"(---
# nothing here
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop}
- apiVersion: v1
  kind: Pod
  metadata: {name: p, namespace: shop}
---
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 198.18.10.10, ports: [{port: 80}]}
...
)",
                       "mixed.yaml");
  ASSERT_EQ(s.namespaces.size(), 1u);
  ASSERT_EQ(s.pods.size(), 1u);
  ASSERT_EQ(s.services.size(), 1u);
  EXPECT_EQ(s.namespaces[0].meta.origin.document, 2);
  EXPECT_EQ(s.pods[0].meta.origin.document, 2);
  EXPECT_EQ(s.services[0].meta.origin.document, 4);
  EXPECT_EQ(s.services[0].meta.origin.file, "mixed.yaml");
}

TEST(YamlParse, TypedListItemsWithoutKind) {
  // What the API server itself returns (GET /api/v1/namespaces/shop/pods).
  Snapshot s = parseOk(R"({"apiVersion": "v1", "kind": "PodList", "metadata": {},
    "items": [{"metadata": {"name": "a", "namespace": "shop"},
               "status": {"podIP": "198.19.1.1"}}]})");
  ASSERT_EQ(s.pods.size(), 1u);
  EXPECT_EQ(s.pods[0].pod_ips[0], ip("198.19.1.1"));
}

TEST(YamlParse, JsonDocument) {
  Snapshot s = parseOk(R"({
  "apiVersion": "v1",
  "kind": "Service",
  "metadata": {"name": "web", "labels": {"app": "web"}},
  "spec": {"clusterIP": "198.18.10.10",
           "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
           "selector": {"app": "web"}}
})",
                       "svc.json");
  ASSERT_EQ(s.services.size(), 1u);
  EXPECT_EQ(s.services[0].ports[0].target_port.number, 8080);
}

TEST(YamlParse, AppendsToExistingSnapshotOnlyOnSuccess) {
  Snapshot s;
  ASSERT_TRUE(parseYaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", "a.yaml", s));
  Status bad = parseYaml(
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n---\nkind: Nope\napiVersion: v1\n",
      "b.yaml", s);
  EXPECT_FALSE(bad.ok());
  ASSERT_EQ(s.namespaces.size(), 1u);  // b.yaml's good first document was not added
  EXPECT_EQ(s.namespaces[0].meta.name, "a");
}

}  // namespace
}  // namespace meshlet

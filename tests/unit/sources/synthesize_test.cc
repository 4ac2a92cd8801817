// synthesizeEndpointSlices: endpoints from pods, like the Kubernetes EndpointSlice controller.
#include <gtest/gtest.h>

#include <string>

#include "agent/sources/file_source.h"

namespace meshlet {
namespace {

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

Snapshot parse(const std::string& text) {
  Snapshot s;
  Status st = parseYaml(text, "synth.yaml", s);
  EXPECT_TRUE(st.ok()) << st.error().message();
  return s;
}

std::string pod(const std::string& name, const std::string& labels, const std::string& status,
                const std::string& ports = "[{name: http, containerPort: 8080}]",
                const std::string& ns = "shop") {
  return "---\napiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: " + ns +
         ", labels: " + labels +
         "}\nspec: {nodeName: node-a, containers: [{name: c, ports: " + ports +
         "}]}\nstatus: " + status + "\n";
}

const std::string kReady =
    "{phase: Running, podIP: 198.19.1.1, conditions: [{type: Ready, status: 'True'}]}";

const EndpointSlice* findSlice(const Snapshot& s, const std::string& name) {
  for (const EndpointSlice& e : s.endpoint_slices) {
    if (e.meta.name == name) return &e;
  }
  return nullptr;
}

constexpr const char* kWebService = R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.18.10.10
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: admin, port: 9000, targetPort: 9001}
)";

TEST(SynthesizeEndpointSlices, ReadyNotReadyAndNamedTargetPort) {
  Snapshot s = parse(
      kWebService + pod("web-1", "{app: web, tier: fe}", kReady) +
      pod("web-2", "{app: web}",
          "{phase: Running, podIP: 198.19.1.2, conditions: [{type: Ready, status: 'False'}]}") +
      pod("web-3", "{app: web}", "{phase: Pending, podIP: 198.19.1.3}") +
      // Ready but not running any more: not ready. Terminal phases: left out.
      pod("web-4", "{app: web}",
          "{phase: Unknown, podIP: 198.19.1.4, conditions: [{type: Ready, status: 'True'}]}") +
      pod("web-5", "{app: web}", "{phase: Succeeded, podIP: 198.19.1.5}") +
      pod("web-6", "{app: web}", "{phase: Failed, podIP: 198.19.1.6}") +
      // Not selected: no IP yet, other labels, other namespace.
      pod("web-7", "{app: web}", "{phase: Pending}") + pod("api-1", "{app: api}", kReady) +
      pod("web-8", "{app: web}", kReady, "[{name: http, containerPort: 8080}]", "other"));
  synthesizeEndpointSlices(s);

  ASSERT_EQ(s.endpoint_slices.size(), 1u);
  const EndpointSlice& e = s.endpoint_slices[0];
  EXPECT_EQ(e.meta.name, "web-meshlet-ipv4");
  EXPECT_EQ(e.meta.ns, "shop");
  EXPECT_EQ(e.meta.origin.file, "(synthesized)");
  EXPECT_EQ(e.meta.labels.count("kubernetes.io/service-name"), 0u);  // kept as service_name
  EXPECT_EQ(e.service_name, "web");
  EXPECT_EQ(e.address_type, IpFamily::kV4);
  ASSERT_EQ(e.ports.size(), 2u);
  EXPECT_EQ(e.ports[0].name, "http");
  EXPECT_EQ(e.ports[0].port, 8080);
  EXPECT_EQ(e.ports[1].name, "admin");
  EXPECT_EQ(e.ports[1].port, 9001);
  ASSERT_EQ(e.endpoints.size(), 4u);
  EXPECT_EQ(e.endpoints[0].target_pod, "web-1");
  EXPECT_EQ(e.endpoints[0].address, ip("198.19.1.1"));
  EXPECT_EQ(e.endpoints[0].node_name, "node-a");
  EXPECT_TRUE(e.endpoints[0].ready);
  EXPECT_TRUE(e.endpoints[0].serving);
  EXPECT_FALSE(e.endpoints[0].terminating);
  EXPECT_EQ(e.endpoints[1].target_pod, "web-2");
  EXPECT_FALSE(e.endpoints[1].ready);
  EXPECT_FALSE(e.endpoints[1].serving);
  EXPECT_EQ(e.endpoints[2].target_pod, "web-3");
  EXPECT_FALSE(e.endpoints[2].ready);
  EXPECT_EQ(e.endpoints[3].target_pod, "web-4");
  EXPECT_FALSE(e.endpoints[3].ready);
}

TEST(SynthesizeEndpointSlices, PodsResolvingNamedPortsDifferentlyGetTheirOwnSlices) {
  Snapshot s = parse(
      kWebService + pod("web-1", "{app: web}", kReady) +
      pod("web-2", "{app: web}",
          "{podIP: 198.19.1.2, conditions: [{type: Ready, status: 'True'}]}",  // no phase: ok
          "[{name: http, containerPort: 8081}]") +
      pod("web-3", "{app: web}", kReady, "[{name: metrics, containerPort: 9100}]") +
      // UDP port named http does not match the TCP Service port.
      pod("web-4", "{app: web}", kReady, "[{name: http, containerPort: 8080, protocol: UDP}]") +
      pod("web-5", "{app: web}", kReady));
  synthesizeEndpointSlices(s);
  ASSERT_EQ(s.endpoint_slices.size(), 3u);

  const EndpointSlice* main = findSlice(s, "web-meshlet-ipv4");
  ASSERT_NE(main, nullptr);
  ASSERT_EQ(main->ports.size(), 2u);
  EXPECT_EQ(main->ports[0].port, 8080);
  ASSERT_EQ(main->endpoints.size(), 2u);
  EXPECT_EQ(main->endpoints[0].target_pod, "web-1");
  EXPECT_EQ(main->endpoints[1].target_pod, "web-5");

  const EndpointSlice* other = findSlice(s, "web-meshlet-ipv4-2");
  ASSERT_NE(other, nullptr);
  ASSERT_EQ(other->ports.size(), 2u);
  EXPECT_EQ(other->ports[0].port, 8081);
  ASSERT_EQ(other->endpoints.size(), 1u);
  EXPECT_EQ(other->endpoints[0].target_pod, "web-2");
  EXPECT_TRUE(other->endpoints[0].ready);

  // Pods without a TCP port named http are skipped for that port only.
  const EndpointSlice* partial = findSlice(s, "web-meshlet-ipv4-3");
  ASSERT_NE(partial, nullptr);
  ASSERT_EQ(partial->ports.size(), 1u);
  EXPECT_EQ(partial->ports[0].name, "admin");
  EXPECT_EQ(partial->ports[0].port, 9001);
  ASSERT_EQ(partial->endpoints.size(), 2u);
  EXPECT_EQ(partial->endpoints[0].target_pod, "web-3");
  EXPECT_EQ(partial->endpoints[1].target_pod, "web-4");
}

TEST(SynthesizeEndpointSlices, DualStackServiceGetsOneSlicePerFamily) {
  Snapshot s = parse(R"(
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  clusterIPs: [198.18.10.11, "2001:db8:10::11"]
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
)" +
                     pod("api-1", "{app: api}",
                         "{phase: Running, podIPs: [{ip: 198.19.1.1}, {ip: '2001:db8:1::1'}],"
                         " conditions: [{type: Ready, status: 'True'}]}") +
                     pod("api-2", "{app: api}", "{phase: Running, podIP: '2001:db8:1::2'}"));
  synthesizeEndpointSlices(s);
  ASSERT_EQ(s.endpoint_slices.size(), 2u);
  const EndpointSlice* v4 = findSlice(s, "api-meshlet-ipv4");
  const EndpointSlice* v6 = findSlice(s, "api-meshlet-ipv6");
  ASSERT_TRUE(v4 && v6);
  EXPECT_EQ(v4->address_type, IpFamily::kV4);
  ASSERT_EQ(v4->endpoints.size(), 1u);
  EXPECT_EQ(v4->endpoints[0].address, ip("198.19.1.1"));
  EXPECT_EQ(v6->address_type, IpFamily::kV6);
  ASSERT_EQ(v6->endpoints.size(), 2u);
  EXPECT_EQ(v6->endpoints[0].address, ip("2001:db8:1::1"));
  EXPECT_EQ(v6->endpoints[1].address, ip("2001:db8:1::2"));
  EXPECT_FALSE(v6->endpoints[1].ready);
  ASSERT_EQ(v6->ports.size(), 1u);
  EXPECT_EQ(v6->ports[0].name, "");
  EXPECT_EQ(v6->ports[0].port, 8080);
}

TEST(SynthesizeEndpointSlices, SkipsServicesWithSlicesOrWithoutSelector) {
  Snapshot s = parse(std::string(kWebService) + R"(---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-manual, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: shop}
spec: {clusterIP: 198.18.10.12, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: example.com, selector: {app: web}}
)" + pod("web-1", "{app: web}", kReady));
  synthesizeEndpointSlices(s);
  ASSERT_EQ(s.endpoint_slices.size(), 1u);
  EXPECT_EQ(s.endpoint_slices[0].meta.name, "web-manual");
}

TEST(SynthesizeEndpointSlices, ServiceWithoutPodsGetsAnEmptyPlaceholder) {
  Snapshot s = parse(kWebService);
  synthesizeEndpointSlices(s);
  ASSERT_EQ(s.endpoint_slices.size(), 1u);
  EXPECT_EQ(s.endpoint_slices[0].meta.name, "web-meshlet-ipv4");
  EXPECT_TRUE(s.endpoint_slices[0].endpoints.empty());
}

TEST(SynthesizeEndpointSlices, HeadlessServiceUsesThePodFamilies) {
  Snapshot s = parse(R"(
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: db}}
)" + pod("db-0", "{app: db}", "{phase: Running, podIP: '2001:db8:1::5'}", "[]"));
  synthesizeEndpointSlices(s);
  ASSERT_EQ(s.endpoint_slices.size(), 1u);
  EXPECT_EQ(s.endpoint_slices[0].meta.name, "db-meshlet-ipv6");
  EXPECT_TRUE(s.endpoint_slices[0].ports.empty());
  ASSERT_EQ(s.endpoint_slices[0].endpoints.size(), 1u);
}

TEST(SynthesizeEndpointSlices, NeverReusesTheNameOfASliceFromTheFiles) {
  Snapshot s = parse(std::string(kWebService) + R"(---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-meshlet-ipv4, namespace: shop, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
)" + pod("web-1", "{app: web}", kReady));
  synthesizeEndpointSlices(s);
  ASSERT_EQ(s.endpoint_slices.size(), 2u);
  EXPECT_EQ(s.endpoint_slices[1].service_name, "web");
  EXPECT_NE(s.endpoint_slices[1].meta.name, "web-meshlet-ipv4");
  EXPECT_EQ(s.endpoint_slices[1].endpoints.size(), 1u);
}

}  // namespace
}  // namespace meshlet

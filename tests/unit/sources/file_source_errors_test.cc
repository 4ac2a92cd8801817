// parseYaml on bad input: every error names file, document, object and field.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/sources/file_source.h"

namespace meshlet {
namespace {

struct BadInput {
  const char* name;  // test name suffix
  std::string yaml;
  std::vector<std::string> expected;  // substrings of the error message
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

// A Service document around `spec` (flow-style YAML).
std::string svc(const std::string& spec, const std::string& meta = "{name: web}") {
  return "apiVersion: v1\nkind: Service\nmetadata: " + meta + "\nspec: " + spec + "\n";
}

std::string slice(const std::string& body, const std::string& type = "IPv4") {
  return "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
         "metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}\n"
         "addressType: " +
         type + "\n" + body + "\n";
}

std::string pod(const std::string& body, const std::string& meta = "{name: web-1}") {
  return "apiVersion: v1\nkind: Pod\nmetadata: " + meta + "\n" + body + "\n";
}

const std::string kGood = svc("{clusterIP: 198.18.10.1, ports: [{port: 80}]}", "{name: ok}");

const std::vector<BadInput> kCases = {
    // The documented example, in the second document.
    {"PortOutOfRangeExample",
     kGood + "---\n" + svc("{clusterIP: 198.18.10.10, ports: [{name: http, port: 70000}]}"),
     {"svc.yaml (document 2): Service default/web: spec.ports[0].port: 70000 is out of range "
      "1-65535"}},
    // Syntax.
    {"UnparseableYaml",
     "apiVersion: v1\nkind: Service\nmetadata: {name: web\n",
     {"svc.yaml (document 1): invalid YAML at line ", ", column "}},
    {"UnparseableYamlInThirdDocument",
     kGood + "---\n# two\n" + kGood + "---\nspec:\n  ports: [80\n",
     {"svc.yaml (document 3): invalid YAML at line 1", "flow"}},
    {"DocumentIsAList",
     "- apiVersion: v1\n- kind: Service\n",
     {"svc.yaml (document 1): document is not a mapping (got a list)"}},
    {"DocumentIsAScalar",
     kGood + "---\nhello\n",
     {"svc.yaml (document 2): document is not a mapping (got \"hello\")"}},
    {"DuplicateKey",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80, port: 81}]}"),
     {"Service default/web: spec.ports[0]: duplicate key \"port\""}},
    // Identity.
    {"MissingApiVersion",
     "kind: Service\nmetadata: {name: web}\nspec: {}\n",
     {"svc.yaml (document 1): Service default/web: apiVersion: required field is missing"}},
    {"MissingKind",
     "apiVersion: v1\nmetadata: {name: web}\n",
     {"svc.yaml (document 1)", "kind: required field is missing"}},
    {"MissingMetadata",
     "apiVersion: v1\nkind: Service\nspec: {}\n",
     {"svc.yaml (document 1): Service: metadata: required field is missing"}},
    {"MissingName",
     svc("{}", "{namespace: shop}"),
     {"svc.yaml (document 1): Service: metadata.name: required field is missing"}},
    {"UnknownKind",
     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
     {"Deployment default/web: kind: unsupported kind \"Deployment\""}},
    {"WrongApiVersion",
     "apiVersion: apps/v1\nkind: Service\nmetadata: {name: web}\n",
     {"Service default/web: apiVersion: \"apps/v1\" is not valid for kind Service (expected v1)"}},
    {"WrongApiVersionSlice",
     "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\n",
     {"EndpointSlice default/s: apiVersion: \"discovery.k8s.io/v1beta1\" is not valid",
      "expected discovery.k8s.io/v1"}},
    {"ServiceNameNotDns1035",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80}]}", "{name: 1web}"),
     {"Service default/1web: metadata.name: \"1web\" is not a valid name: a DNS-1035 label"}},
    {"UppercaseName",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80}]}", "{name: Web}"),
     {"metadata.name: \"Web\" is not a valid name"}},
    {"PodNameNotSubdomain",
     pod("", "{name: web_1}"),
     {"Pod default/web_1: metadata.name: \"web_1\" is not a valid name: a DNS-1123 subdomain"}},
    {"BadNamespaceName",
     svc("{}", "{name: web, namespace: Shop.1}"),
     {"Service Shop.1/web: metadata.namespace: \"Shop.1\" is not a valid namespace name"}},
    {"NamespaceNameTooLong",
     "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + std::string(64, 'a') + "}\n",
     {"metadata.name:", "must be no more than 63 characters"}},
    {"BadLabelKey",
     svc("{}", "{name: web, labels: {\"bad key\": x}}"),
     {"Service default/web: metadata.labels[\"bad key\"]: invalid label key"}},
    {"LabelsNotAMap",
     svc("{}", "{name: web, labels: [app, web]}"),
     {"Service default/web: metadata.labels: expected a map, got a list"}},
    {"NameNotAString",
     svc("{}", "{name: {first: web}}"),
     {"metadata.name: expected a string, got a map"}},
    // Service spec.
    {"MissingSpec",
     "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
     {"Service default/web: spec: required field is missing"}},
    {"BadClusterIp",
     svc("{clusterIP: 198.18.0.300, ports: [{port: 80}]}"),
     {"Service default/web: spec.clusterIP: \"198.18.0.300\" is not a valid IP address"}},
    {"BadClusterIpsEntry",
     svc("{clusterIP: 198.18.10.10, clusterIPs: [198.18.10.10, 'fe80::1::2'], ports: [{port: "
         "80}]}"),
     {"spec.clusterIPs[1]: \"fe80::1::2\" is not a valid IP address"}},
    {"ClusterIpsMismatch",
     svc("{clusterIP: 198.18.10.10, clusterIPs: [198.18.10.11], ports: [{port: 80}]}"),
     {"spec.clusterIPs[0]: \"198.18.10.11\" must match spec.clusterIP"}},
    {"TwoClusterIpsSameFamily",
     svc("{clusterIPs: [198.18.10.10, 198.18.10.11], ports: [{port: 80}]}"),
     {"spec.clusterIPs[1]: both addresses are IPv4"}},
    {"MissingClusterIp",
     svc("{ports: [{port: 80}]}"),
     {"Service default/web: spec.clusterIP: required field is missing", "headless"}},
    {"NoPorts",
     svc("{clusterIP: 198.18.10.10}"),
     {"Service default/web: spec.ports: required field is missing"}},
    {"MissingPort",
     svc("{clusterIP: 198.18.10.10, ports: [{name: http, targetPort: 8080}]}"),
     {"Service default/web: spec.ports[0].port: required field is missing"}},
    {"PortZero",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 0}]}"),
     {"spec.ports[0].port: 0 is out of range 1-65535"}},
    {"PortHuge",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 99999999999999999999999}]}"),
     {"spec.ports[0].port: 99999999999999999999999 is out of range 1-65535"}},
    {"PortQuotedString",
     svc("{clusterIP: 198.18.10.10, ports: [{port: \"abc\"}]}"),
     {"Service default/web: spec.ports[0].port: expected an integer, got string \"abc\""}},
    {"PortQuotedNumber",
     svc("{clusterIP: 198.18.10.10, ports: [{port: \"80\"}]}"),
     {"spec.ports[0].port: expected an integer, got string \"80\""}},
    {"PortPlainWord",
     svc("{clusterIP: 198.18.10.10, ports: [{port: abc}]}"),
     {"spec.ports[0].port: expected an integer, got \"abc\""}},
    {"PortFloat",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80.5}]}"),
     {"spec.ports[0].port: expected an integer, got \"80.5\""}},
    {"TargetPortOutOfRange",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80, targetPort: 65536}]}"),
     {"spec.ports[0].targetPort: 65536 is out of range 1-65535"}},
    {"TargetPortBadName",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80, targetPort: HTTP}]}"),
     {"spec.ports[0].targetPort: \"HTTP\" is not a valid port name"}},
    {"TargetPortQuotedNumber",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80, targetPort: \"8080\"}]}"),
     {"spec.ports[0].targetPort: \"8080\" is not a valid port name", "letter"}},
    {"PortsNotAList",
     svc("{clusterIP: 198.18.10.10, ports: {port: 80}}"),
     {"Service default/web: spec.ports: expected a list, got a map"}},
    {"ProtocolLowercase",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80, protocol: tcp}]}"),
     {"spec.ports[0].protocol: \"tcp\" is not a valid protocol (TCP or UDP)"}},
    {"ProtocolSctp",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80, protocol: SCTP}]}"),
     {"Service default/web: spec.ports[0].protocol: protocol SCTP is not supported"}},
    {"DuplicatePort",
     svc("{clusterIP: 198.18.10.10, ports: [{name: a, port: 80}, {name: b, port: 80}]}"),
     {"Service default/web: spec.ports[1]: duplicate port 80/TCP (also spec.ports[0])"}},
    {"DuplicatePortName",
     svc("{clusterIP: 198.18.10.10, ports: [{name: a, port: 80}, {name: a, port: 81}]}"),
     {"spec.ports[1].name: duplicate port name \"a\""}},
    {"UnnamedPortAmongSeveral",
     svc("{clusterIP: 198.18.10.10, ports: [{name: a, port: 80}, {port: 81}]}"),
     {"spec.ports[1].name: required when the Service has more than one port"}},
    {"BadServiceType",
     svc("{type: Internal, clusterIP: 198.18.10.10, ports: [{port: 80}]}"),
     {"spec.type: \"Internal\" is not a valid type"}},
    {"BadSessionAffinity",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80}], sessionAffinity: Cookie}"),
     {"Service default/web: spec.sessionAffinity: \"Cookie\" is not supported"}},
    {"BadTrafficDistribution",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80}], trafficDistribution: Nearest}"),
     {"spec.trafficDistribution: \"Nearest\" is not supported"}},
    {"BadLbPolicy",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80}]}",
         "{name: web, annotations: {meshlet.io/lb-policy: least-request}}"),
     {"Service default/web: metadata.annotations[\"meshlet.io/lb-policy\"]: \"least-request\""}},
    {"HeadlessPlusIp",
     svc("{clusterIPs: [None, 198.18.10.10], ports: [{port: 80}]}"),
     {"spec.clusterIPs: \"None\" (headless) must be the only entry"}},
    {"SelectorNotAMap",
     svc("{clusterIP: 198.18.10.10, ports: [{port: 80}], selector: web}"),
     {"spec.selector: expected a map, got \"web\""}},
    // EndpointSlice.
    {"SliceFamilyMismatch",
     slice("endpoints: [{addresses: [198.19.1.1]}, {addresses: ['2001:db8::1']}]"),
     {"svc.yaml (document 1): EndpointSlice shop/web-abc: endpoints[1].addresses[0]: "
      "\"2001:db8::1\" is an IPv6 address but addressType is IPv4"}},
    {"SliceFamilyMismatchV6",
     slice("endpoints: [{addresses: [198.19.1.1]}]", "IPv6"),
     {"endpoints[0].addresses[0]: \"198.19.1.1\" is an IPv4 address but addressType is IPv6"}},
    {"SliceFqdn",
     slice("endpoints: [{addresses: [web.example.com]}]", "FQDN"),
     {"EndpointSlice shop/web-abc: addressType: addressType FQDN is not supported"}},
    {"SliceMissingAddressType",
     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
     "metadata: {name: s, labels: {kubernetes.io/service-name: web}}\n",
     {"EndpointSlice default/s: addressType: required field is missing"}},
    {"SliceMissingServiceLabel",
     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
     "addressType: IPv4\n",
     {"EndpointSlice default/s: metadata.labels[\"kubernetes.io/service-name\"]: required label"}},
    {"SliceBadAddress",
     slice("endpoints: [{addresses: [198.19.1.256]}]"),
     {"endpoints[0].addresses[0]: \"198.19.1.256\" is not a valid IP address"}},
    {"SliceBadSecondAddress",  // only the first is kept, every one is checked
     slice("endpoints: [{addresses: [198.19.1.1, 198.19.1.256]}]"),
     {"endpoints[0].addresses[1]: \"198.19.1.256\" is not a valid IP address"}},
    {"SliceNoAddresses",
     slice("endpoints: [{addresses: []}]"),
     {"endpoints[0].addresses: must have at least one address"}},
    {"SlicePortOutOfRange",
     slice("ports: [{name: http, port: 65536}]"),
     {"EndpointSlice shop/web-abc: ports[0].port: 65536 is out of range 1-65535"}},
    {"SliceMissingPort",
     slice("ports: [{name: http}]"),
     {"ports[0].port: required field is missing"}},
    {"SliceBadProtocol",
     slice("ports: [{name: http, port: 80, protocol: SCTP}]"),
     {"ports[0].protocol: protocol SCTP is not supported"}},
    {"SliceReadyNotBool",
     slice("endpoints: [{addresses: [198.19.1.1], conditions: {ready: 'yes'}}]"),
     {"endpoints[0].conditions.ready: expected true or false, got string \"yes\""}},
    // Pod.
    {"PodBadIp",
     pod("status: {podIP: 198.19.1.x}"),
     {"Pod default/web-1: status.podIP: \"198.19.1.x\" is not a valid IP address"}},
    {"PodBadContainerPort",
     pod("spec: {containers: [{name: a, ports: [{containerPort: 70000}]}]}"),
     {"Pod default/web-1: spec.containers[0].ports[0].containerPort: 70000 is out of range"}},
    {"PodMissingContainerPort",
     pod("spec: {containers: [{name: a, ports: [{name: http}]}]}"),
     {"spec.containers[0].ports[0].containerPort: required field is missing"}},
    {"PodSctp",
     pod("spec: {containers: [{name: a, ports: [{containerPort: 80, protocol: SCTP}]}]}"),
     {"spec.containers[0].ports[0].protocol: protocol SCTP is not supported"}},
    {"PodRelativeNetns",
     pod("", "{name: web-1, annotations: {meshlet.io/netns: run/netns/x}}"),
     {"Pod default/web-1: metadata.annotations[\"meshlet.io/netns\"]: \"run/netns/x\" must be "
      "an absolute path"}},
    {"PodBadPhase",
     pod("status: {phase: Sleeping}"),
     {"status.phase: \"Sleeping\" is not a valid phase"}},
    {"PodIpsMismatch",
     pod("status: {podIP: 198.19.1.1, podIPs: [{ip: 198.19.1.2}]}"),
     {"status.podIP: \"198.19.1.1\" must match status.podIPs[0].ip"}},
    {"PodConditionsNotAList",
     pod("status: {conditions: {type: Ready}}"),
     {"status.conditions: expected a list, got a map"}},
    // Lists.
    {"ListItemError",
     "apiVersion: v1\nkind: List\nitems:\n"
     "- apiVersion: v1\n  kind: Pod\n  metadata: {name: a, namespace: shop}\n"
     "- apiVersion: v1\n  kind: Pod\n  metadata: {name: b, namespace: shop}\n"
     "  status: {podIP: nope}\n",
     {"svc.yaml (document 1, items[1]): Pod shop/b: status.podIP: \"nope\" is not a valid IP"}},
    {"ListItemNotAMap",
     "apiVersion: v1\nkind: List\nitems: [42]\n",
     {"svc.yaml (document 1, items[0]): item is not a mapping"}},
    {"ListWrongApiVersion",
     "apiVersion: v2\nkind: List\nitems: []\n",
     {"svc.yaml (document 1): apiVersion: \"v2\" is not valid for kind List"}},
};

class YamlErrors : public ::testing::TestWithParam<BadInput> {};

TEST_P(YamlErrors, NamesFileDocumentObjectAndField) {
  Snapshot s;
  Status st = parseYaml(GetParam().yaml, "svc.yaml", s);
  ASSERT_FALSE(st.ok()) << "accepted:\n" << GetParam().yaml;
  for (const std::string& want : GetParam().expected) {
    EXPECT_NE(st.error().message().find(want), std::string::npos)
        << "message: " << st.error().message() << "\nexpected to contain: " << want;
  }
  EXPECT_TRUE(s.services.empty() && s.pods.empty() && s.endpoint_slices.empty() &&
              s.namespaces.empty());
}

INSTANTIATE_TEST_SUITE_P(All, YamlErrors, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<BadInput>& info) {
                           return std::string(info.param.name);
                         });

TEST(YamlErrorsMisc, EveryYamlCppProblemIsAValueNotAnException) {
  // Inputs that make yaml-cpp throw in various places: none may escape parseYaml.
  const char* inputs[] = {"{",
                          "[",
                          "a: b: c",
                          "*undefined_alias",
                          "key: &a [*a]",
                          "\t- tab",
                          "%YAML 9.9\n---\na: 1",
                          "!<!> {",
                          "? [a]\n: b\n",
                          "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {? [a] : b}}"};
  for (const char* in : inputs) {
    Snapshot s;
    Status st;
    EXPECT_NO_THROW(st = parseYaml(in, "x.yaml", s)) << in;
    if (!st.ok()) {
      EXPECT_EQ(st.error().message().rfind("x.yaml", 0), 0u) << st.error().message();
    }
  }
}

TEST(YamlErrorsMisc, EmptyAndCommentOnlyTextsAreEmpty) {
  for (const char* in : {"", "\n", "# just a comment\n", "---\n---\n", "---\n...\n"}) {
    Snapshot s;
    EXPECT_TRUE(parseYaml(in, "x.yaml", s).ok()) << in;
    EXPECT_TRUE(s.services.empty() && s.pods.empty());
  }
}

}  // namespace
}  // namespace meshlet

#pragma once
// Istio authorization at L4 and the mTLS mode in force: which AuthorizationPolicies apply to a destination workload and
// what they decide for one connection. Pure, no I/O: the destination agent calls it for a
// tunnelled connection; translation will compile the same decisions into the kernel for
// same-node pairs.
//
// Evaluation order is Istio's: a matching DENY policy denies; else with no ALLOW policy for the
// workload the connection is allowed; else it is allowed only when an ALLOW policy matches.
// AUDIT policies never decide, they are reported.
//
// At L4 a rule's HTTP attributes (hosts, methods, paths, request principals, request headers,
// request.auth.*) cannot be evaluated. Like Istio's ztunnel, meshlet fails safe: such a rule
// never matches in an ALLOW (or AUDIT) policy, and in a DENY policy it is judged on its L4
// parts alone (so it denies more, never less).
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/ip.h"
#include "agent/state/types.h"

namespace meshlet {

struct L4Connection {
  // The peer's identity without "spiffe://" ("cluster.local/ns/shop/sa/web"); empty for a
  // plaintext (unauthenticated) peer.
  std::string source_principal;
  IpAddr source_ip;
  IpAddr destination_ip;
  int destination_port = 0;
  // The destination workload.
  std::string destination_namespace;
  Labels destination_labels;
};

struct AuthzDecision {
  enum class Reason : uint8_t {
    kNoPolicy,        // no ALLOW policy applies and no DENY matched: allowed
    kAllowMatched,    // an ALLOW policy matched: allowed
    kDenyMatched,     // a DENY policy matched: denied
    kNoAllowMatched,  // ALLOW policies apply, none matched: denied
  };
  bool allowed = true;
  Reason reason = Reason::kNoPolicy;
  std::string policy;                // "ns/name" of the deciding policy ("" if none)
  std::vector<std::string> audited;  // "ns/name" of matching AUDIT policies
};

// The policies of `s` that apply to the destination workload (mesh-wide, its namespace's, and
// those whose selector matches its labels), in namespace/name order.
std::vector<const AuthorizationPolicy*> applicablePolicies(
    const Snapshot& s, const std::string& ns, const Labels& labels,
    std::string_view root_namespace = kIstioRootNamespace);

AuthzDecision authorizeL4(const Snapshot& s, const L4Connection& c,
                          std::string_view root_namespace = kIstioRootNamespace);

// An HTTP request as AuthorizationPolicy sees it, on top of its connection.
struct HttpRequestAttrs {
  std::string_view method;
  std::string_view path;  // without the query (Istio's `paths` match the path alone)
  std::string_view host;  // the authority, without a port
  // The value of a request header (lower-case name), nullopt when absent.
  std::function<std::optional<std::string>(const std::string&)> header;
};

// Every attribute evaluated: hosts, methods, paths and their not* lists, request.headers[...]
// conditions. Without a JWT (meshlet does not validate them yet) request principals and
// request.auth.* are absent: a rule that requires them does not match. connection.sni is
// absent too (plaintext HTTP).
AuthzDecision authorizeL7(const Snapshot& s, const L4Connection& c, const HttpRequestAttrs& http,
                          std::string_view root_namespace = kIstioRootNamespace);

// The destination's check of a connection whose HTTP requests the source's agent already
// authorized one by one (authorizeL7): rules are judged on their L4 parts, and the HTTP parts
// count as decided upstream — satisfied in ALLOW (and AUDIT) rules, not matching in DENY rules.
AuthzDecision authorizeL4AfterL7(const Snapshot& s, const L4Connection& c,
                                 std::string_view root_namespace = kIstioRootNamespace);

// "allowed by ns/name", "denied by ns/name", "denied: no ALLOW policy matched", "allowed".
std::string describe(const AuthzDecision& d);

// PeerAuthentication: the mTLS mode in force for a destination workload's port. The most
// specific policy decides (a workload policy's portLevelMtls for that port, then the workload
// policy, then the namespace's, then the mesh-wide one in the root namespace); UNSET inherits
// from the next level; with nothing set the mode is PERMISSIVE, as in Istio. Of several
// policies at one level the first in name order counts (Istio takes the oldest; the snapshot
// has no creation times). `policy` names the deciding one ("" for the default).
struct MtlsDecision {
  MtlsMode mode = MtlsMode::kPermissive;
  std::string policy;
};
MtlsDecision effectiveMtls(const Snapshot& s, const std::string& ns, const Labels& labels, int port,
                           std::string_view root_namespace = kIstioRootNamespace);

}  // namespace meshlet

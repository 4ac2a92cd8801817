#pragma once
// Private to agent/sources: one parser per Kubernetes kind. Each reads the root map of one
// object whose apiVersion and kind were already checked, validates it like the API server would
// (the subset meshlet relies on) and fills the typed struct of agent/state/types.h.
#include <string>
#include <string_view>

#include "agent/common/status.h"
#include "agent/sources/yaml_reader.h"
#include "agent/state/types.h"

namespace meshlet::file_source_internal {

inline constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";

// A name rule: empty string when valid, else why not (see yaml_reader.h).
using NameCheck = std::string (*)(std::string_view);

// metadata: name (checked with `check`), namespace ("default" when absent, only when
// `namespaced`), labels, annotations, uid.
Status parseMeta(const Reader& r, const Field& root, bool namespaced, NameCheck check,
                 const Origin& origin, ObjectMeta& out);

Status parseNamespace(const Reader& r, const Field& root, const Origin& origin, Namespace& out);
Status parseService(const Reader& r, const Field& root, const Origin& origin, Service& out);
Status parseEndpointSlice(const Reader& r, const Field& root, const Origin& origin,
                          EndpointSlice& out);
Status parsePod(const Reader& r, const Field& root, const Origin& origin, Pod& out);

// Istio kinds (parse_istio_security.cc, parse_istio_networking.cc,
// parse_istio_destination_rule.cc): strict, every unknown field is refused, and recognised but
// unimplemented fields are refused as unsupported.
Status parseAuthorizationPolicy(const Reader& r, const Field& root, const Origin& origin,
                                AuthorizationPolicy& out);
Status parsePeerAuthentication(const Reader& r, const Field& root, const Origin& origin,
                               PeerAuthentication& out);
Status parseVirtualService(const Reader& r, const Field& root, const Origin& origin,
                           VirtualService& out);
Status parseDestinationRule(const Reader& r, const Field& root, const Origin& origin,
                            DestinationRule& out);

}  // namespace meshlet::file_source_internal

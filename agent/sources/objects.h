#pragma once
// One Kubernetes (or Istio) object, already parsed into a YamlDocument, into a Snapshot. The
// file source uses it for every document; the Kubernetes source for every object the API server
// sends (its JSON parses into the same node model). Same validation and error format as the
// file source: "where: Kind namespace/name: field.path: message".
#include <string>

#include "agent/common/status.h"
#include "agent/sources/yaml_doc.h"
#include "agent/state/types.h"

namespace meshlet {

// `where` says where the object came from ("svc.yaml (document 2)", "watch services"); it is
// also stored as the object's origin. `api_version` / `kind` are the defaults for items of a
// typed list, whose items carry none (empty: the object must name them).
Status parseObjectNode(const YamlNode& root, const std::string& where, Snapshot& out,
                       const std::string& api_version = "", const std::string& kind = "");

}  // namespace meshlet

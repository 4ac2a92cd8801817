#pragma once
// Object metadata every typed cluster object carries (Kubernetes and Istio kinds alike).
#include <string>

#include "agent/common/compact_string.h"
#include "agent/common/name.h"
#include "agent/common/string_map.h"

namespace meshlet {

using Labels = StringMap;

// Where an object came from, for error messages: "dir/file.yaml (document 3)". The file name is
// interned: 10 000s of objects come from one file.
struct Origin {
  Name file;
  int document = 0;  // 1-based index within the file
};

struct ObjectMeta {
  std::string name;
  Name ns;  // empty for cluster-scoped objects (Namespace); interned: objects share a few
  Labels labels;
  StringMap annotations;
  CompactString uid;  // in every object from the API server, not in hand-written YAML
  Origin origin;
};

}  // namespace meshlet

// libFuzzer harness for the configuration parser: the input is one YAML file as the file source
// reads it (meshlet::parseYaml, agent/sources/file_source.h: multi-document Kubernetes and Istio
// YAML). When it parses, the snapshot goes through what loadDirectory() does next
// (validateSnapshot, synthesizeEndpointSlices) and then through translate() (pure: no kernel),
// once from scratch and once more with the ids of the first call, on the node of the first pod
// with a netns cookie for every pod so the local-pod paths run too. Besides crashes and
// sanitizer reports it checks that a failed parse says why.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/sources/file_source.h"
#include "agent/state/types.h"
#include "agent/translate/translate.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  meshlet::Snapshot snapshot;
  meshlet::Status parsed = meshlet::parseYaml(text, "fuzz.yaml", snapshot);
  if (!parsed.ok()) {
    check(!parsed.error().message().empty());
    return 0;
  }
  if (!meshlet::validateSnapshot(snapshot).ok()) return 0;
  meshlet::synthesizeEndpointSlices(snapshot);

  meshlet::TranslateInput in;
  in.snapshot = &snapshot;
  uint64_t cookie = 1;
  for (const meshlet::Pod& pod : snapshot.pods) {
    if (in.node_name.empty()) in.node_name = pod.node_name;
    in.netns_cookies[meshlet::podIdKey(pod.meta.ns, pod.meta.name)] = cookie++;
  }
  meshlet::TranslateOutput first = meshlet::translate(in, meshlet::IdTable{});
  meshlet::TranslateOutput second = meshlet::translate(in, first.ids);
  check(second.ids.svc == first.ids.svc && second.ids.pod == first.ids.pod);
  return 0;
}

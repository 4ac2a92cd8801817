#pragma once
// A container runtime's CNI side, for tests: runs the plugins of a .conflist exactly as
// containerd/CRI-O do (CNI spec 1.0): one exec per plugin, parameters in CNI_* environment
// variables, the network config on stdin with name, cniVersion and the previous plugin's result
// as prevResult; ADD in order, DEL in reverse order, CHECK in order with the cached result.
#include <string>
#include <vector>

namespace meshlet::testing {

struct CniResult {
  int exit_code = -1;
  std::string stdout_text;
  std::string stderr_text;
  std::string failed_plugin;  // type of the plugin that failed, "" when all succeeded
};

struct CniRuntime {
  std::string conflist;                  // the .conflist JSON text
  std::vector<std::string> plugin_dirs;  // CNI_PATH
  std::string host_netns;                // netns path the runtime (and so the plugins) run in

  // Runs one command over the whole list. For DEL/CHECK, `cached` is the ADD's final result.
  CniResult add(const std::string& container_id, const std::string& netns_path,
                const std::string& cni_args, const std::string& ifname = "eth0") const;
  CniResult del(const std::string& container_id, const std::string& netns_path,
                const std::string& cni_args, const std::string& cached,
                const std::string& ifname = "eth0") const;
  CniResult check(const std::string& container_id, const std::string& netns_path,
                  const std::string& cni_args, const std::string& cached,
                  const std::string& ifname = "eth0") const;
};

// Runs one plugin binary as a runtime would; env entries are "KEY=VALUE". Exposed so tests can
// feed a single plugin malformed input.
CniResult execPlugin(const std::string& binary, const std::vector<std::string>& env,
                     const std::string& stdin_text, const std::string& netns_path = "");

// "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=name;K8S_POD_INFRA_CONTAINER_ID=id;..."
std::string k8sCniArgs(const std::string& ns, const std::string& name, const std::string& uid,
                       const std::string& container_id);

}  // namespace meshlet::testing

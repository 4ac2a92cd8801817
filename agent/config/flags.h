#pragma once
// meshletd's command line.
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/common/status.h"

namespace meshlet {

struct AgentFlags {
  std::string config_dir;  // file source directory (the embedded default)
  std::string kubeconfig;  // kube source from a kubeconfig file
  bool in_cluster = false; // kube source, in-cluster: no source flag and KUBERNETES_SERVICE_HOST
  std::string node_name;   // this node, as pods' spec.nodeName and EndpointSlices' nodeName say
  std::string cgroup;      // cgroup v2 directory to attach at; detected when empty
  std::string bpffs = "/sys/fs/bpf/meshlet";
  std::string admin_socket = "/var/run/meshlet/admin.sock";
  std::string metrics_addr = "0.0.0.0:15020";
  std::string readiness_addr = "0.0.0.0:15021";  // GET /healthz/ready
  std::string cni_socket = "/var/run/meshlet/cni.sock";
  std::string state_dir = "/var/run/meshlet/state";
  std::string log_level = "info";
  std::string access_log;  // L7 access log: a file, "-" for stdout, "" for none
  // Workload identity (SPIFFE SVIDs issued by the node's CA).
  std::string trust_domain = "cluster.local";
  std::string ca_dir = "/etc/meshlet/ca";
  int64_t svid_ttl_seconds = 24 * 3600;
  int64_t ca_rollover_delay_seconds = 120;  // see IdentityOptions::rollover_delay_seconds
  bool uninstall = false;
};

// Parses argv; on --help or a usage error returns an Error whose message is the text to print
// (code 0 for help, 2 for usage errors).
Result<AgentFlags> parseAgentFlags(int argc, char** argv);

// "24h", "90m", "1h30m", "45s" → seconds.
Result<int64_t> parseDurationSeconds(std::string_view text);

}  // namespace meshlet

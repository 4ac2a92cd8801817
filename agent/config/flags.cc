#include "agent/config/flags.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "agent/tls/ca.h"

namespace meshlet {
namespace {

// HOST:PORT with a non-empty host and a numeric port 0-65535.
bool validHostPort(const std::string& addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string port = addr.substr(colon + 1);
  return !port.empty() && port.size() <= 5 &&
         port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) <= 65535;
}

}  // namespace

Result<int64_t> parseDurationSeconds(std::string_view text) {
  std::string quoted = "\"" + std::string(text) + "\"";
  if (text.empty()) return Error("empty duration");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == start || i == text.size() || i - start > 9)
      return Error(quoted + " is not a duration like 24h, 90m, 1h30m or 45s");
    int64_t n = std::stoll(std::string(text.substr(start, i - start)));
    switch (text[i++]) {
      case 'h':
        total += n * 3600;
        break;
      case 'm':
        total += n * 60;
        break;
      case 's':
        total += n;
        break;
      default:
        return Error(quoted + " is not a duration like 24h, 90m, 1h30m or 45s");
    }
  }
  return total;
}

Result<AgentFlags> parseAgentFlags(int argc, char** argv) {
  AgentFlags f;
  if (const char* n = std::getenv("NODE_NAME"); n && *n) {
    f.node_name = n;
  } else {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    f.node_name = host;
  }
  CLI::App app{"meshletd: the meshlet node agent (eBPF service load balancing and splicing)",
               "meshletd"};
  app.add_option("--config-dir", f.config_dir,
                 "directory of Kubernetes YAML (Service, EndpointSlice, Pod, Namespace), watched");
  app.add_option("--kubeconfig", f.kubeconfig,
                 "follow the Kubernetes API server of this kubeconfig's current context (in a pod "
                 "with neither flag: the in-cluster service account)");
  app.add_option("--node-name", f.node_name, "this node's name (default: $NODE_NAME or hostname)");
  app.add_option("--cgroup", f.cgroup, "cgroup v2 directory to attach at (default: the root of "
                                      "the cgroup v2 mount)");
  app.add_option("--bpffs", f.bpffs, "bpffs directory for pinned maps and links")
      ->capture_default_str();
  app.add_option("--admin-socket", f.admin_socket, "unix socket of the admin API")
      ->capture_default_str();
  app.add_option("--metrics-addr", f.metrics_addr, "HOST:PORT for Prometheus /metrics")
      ->capture_default_str();
  app.add_option("--readiness-addr", f.readiness_addr,
                 "HOST:PORT for the readiness probe GET /healthz/ready (port 0 picks one)")
      ->capture_default_str();
  app.add_option("--cni-socket", f.cni_socket, "unix socket the CNI plugin talks to")
      ->capture_default_str();
  app.add_option("--state-dir", f.state_dir,
                 "where enrollment state is kept across restarts (CNI-enrolled pods)")
      ->capture_default_str();
  app.add_option("--log-level", f.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--access-log", f.access_log,
                 "L7 access log, one JSON line per HTTP request: a file, or - for stdout "
                 "(default: none)");
  app.add_option("--trust-domain", f.trust_domain,
                 "SPIFFE trust domain of workload identities (spiffe://TD/ns/NS/sa/SA)")
      ->capture_default_str();
  app.add_option("--ca-dir", f.ca_dir,
                 "CA directory: ca-cert.pem, ca-key.pem, optional trust-bundle.pem (written by "
                 "`meshlet ca init`); without it no workload certificates are issued")
      ->capture_default_str();
  std::string svid_ttl = "24h";
  app.add_option("--svid-ttl", svid_ttl,
                 "lifetime of workload certificates, renewed at half-life (at least 2m)")
      ->capture_default_str();
  std::string rollover = "2m";
  app.add_option("--ca-rollover-delay", rollover,
                 "after the CA directory gets a new signing root, how long the replaced root "
                 "keeps signing (when the new trust bundle still holds it), so that every node "
                 "trusts the new root before certificates from it appear; 0s: at once")
      ->capture_default_str();
  app.add_flag("--uninstall", f.uninstall,
               "detach the programs and remove every pinned map and link, then exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return Error(app.help(), 0);
  } catch (const CLI::ParseError& e) {
    return Error(std::string("meshletd: ") + e.what() + "\nRun with --help for more information.",
                 2);
  }
  if (auto ttl = parseDurationSeconds(svid_ttl); !ttl.ok()) {
    return Error("meshletd: --svid-ttl: " + ttl.error().message(), 2);
  } else if (*ttl < 120) {
    return Error("meshletd: --svid-ttl must be at least 2m, got \"" + svid_ttl + "\"", 2);
  } else {
    f.svid_ttl_seconds = *ttl;
  }
  if (auto d = parseDurationSeconds(rollover); !d.ok()) {
    return Error("meshletd: --ca-rollover-delay: " + d.error().message(), 2);
  } else {
    f.ca_rollover_delay_seconds = *d;
  }
  if (auto st = tls::checkTrustDomain(f.trust_domain); !st) {
    return Error("meshletd: --trust-domain: " + st.error().message(), 2);
  }
  if (!f.config_dir.empty() && !f.kubeconfig.empty()) {
    return Error("meshletd: --config-dir and --kubeconfig cannot be used together (one source)",
                 2);
  }
  if (f.config_dir.empty() && f.kubeconfig.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    f.in_cluster = host && *host;
  }
  if (!f.uninstall && f.config_dir.empty() && f.kubeconfig.empty() && !f.in_cluster) {
    return Error("meshletd: --config-dir is required (or --kubeconfig, or run in a pod where "
                 "KUBERNETES_SERVICE_HOST is set)",
                 2);
  }
  for (const auto& [flag, addr] :
       {std::pair<const char*, const std::string&>{"--metrics-addr", f.metrics_addr},
        {"--readiness-addr", f.readiness_addr}}) {
    if (!validHostPort(addr)) {
      return Error(std::string("meshletd: ") + flag +
                       " must be HOST:PORT with a port 0-65535, got \"" + addr + "\"",
                   2);
    }
  }
  return f;
}

}  // namespace meshlet

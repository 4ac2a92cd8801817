// Commands that ask the running agent (docs/ADMIN_API.md).
#include <memory>

#include "agent/admin/client.h"
#include "tools/meshlet/cli.h"

namespace meshlet::cli {

namespace {

// GET `path` and print the answer: a list as rows, an object with printObject.
int show(const GlobalOptions& opts, const std::string& path) {
  auto answer = adminGet(opts.admin_socket, path);
  if (!answer) return fail(answer.error());
  if (answer->is_object()) return printObject(*answer, opts);
  return printRows(*answer, opts);
}

void addListCommand(CLI::App& app, const GlobalOptions& opts, Action& action,
                    const std::string& name, const std::string& help, const std::string& path) {
  auto* cmd = app.add_subcommand(name, help);
  cmd->callback([&opts, &action, path] { action = [&opts, path] { return show(opts, path); }; });
}

}  // namespace

void addAgentCommands(CLI::App& app, const GlobalOptions& opts, Action& action) {
  addListCommand(app, opts, action, "status",
                 "Agent health: config generation, last error, datapath maps, source (with the "
                 "Kubernetes API server: connected or not, since when, each resource)",
                 "/v1/status");
  addListCommand(app, opts, action, "workloads", "Pods known to the agent and their enrollment",
                 "/v1/workloads");
  addListCommand(app, opts, action, "services", "Services and their load-balancing state",
                 "/v1/services");
  addListCommand(app, opts, action, "policies",
                 "Istio security policies and the local workloads each one applies to",
                 "/v1/policies");
  addListCommand(app, opts, action, "certs",
                 "Workload certificates of this node: identity, serial, "
                 "expiry, trust chain",
                 "/v1/certs");
  addListCommand(app, opts, action, "connections",
                 "Connections seen by the datapath: path, bytes, RTT", "/v1/connections");

  auto* endpoints =
      app.add_subcommand("endpoints", "Backends of all services, or of NAMESPACE/SERVICE");
  auto service = std::make_shared<std::string>();
  endpoints->add_option("service", *service,
                        "NAMESPACE/SERVICE (a bare SERVICE means namespace \"default\")");
  endpoints->callback([&opts, &action, service] {
    std::string path = "/v1/endpoints";
    if (!service->empty()) {
      std::string s = *service;
      if (s.find('/') == std::string::npos) s = "default/" + s;
      path += "?service=" + urlEncodeQueryValue(s);
    }
    action = [&opts, path] { return show(opts, path); };
  });
}

}  // namespace meshlet::cli

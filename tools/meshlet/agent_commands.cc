// Commands that ask the running agent (docs/ADMIN_API.md).
#include <iostream>
#include <memory>
#include <vector>

#include "agent/admin/client.h"
#include "agent/common/table.h"
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

// `meshlet routes`: the route rows as a table (without their `kind`), then the configuration's
// warnings as "warning: ..." lines; -o json prints every row as the agent sent it.
int showRoutes(const GlobalOptions& opts, const std::string& path) {
  auto answer = adminGet(opts.admin_socket, path);
  if (!answer) return fail(answer.error());
  if (opts.output == "json" || !answer->is_array()) return printRows(*answer, opts);
  nlohmann::ordered_json routes = nlohmann::ordered_json::array();
  std::vector<std::string> warnings;
  for (auto& row : *answer) {
    if (!row.is_object()) continue;
    if (row.value("kind", "") == "warning") {
      warnings.push_back(row.value("message", ""));
      continue;
    }
    row.erase("kind");
    routes.push_back(row);
  }
  std::cout << renderTable(routes);
  for (const std::string& w : warnings) std::cout << "warning: " << w << "\n";
  std::cout.flush();
  return 0;
}

// `meshlet routes --explain`: exit 0 when a route matched, 1 when none did (or the agent could
// not answer), 2 for a usage error the agent found (bad URL or header, unknown service or pod).
int explainRoute(const GlobalOptions& opts, const std::string& path) {
  int status = 0;
  auto answer = adminGet(opts.admin_socket, path, 5000, &status);
  if (!answer) {
    fail(answer.error());
    return status == 400 ? 2 : 1;
  }
  printObject(*answer, opts);
  return answer->is_object() && answer->value("route", "") != "" ? 0 : 1;
}

void addRoutesCommand(CLI::App& app, const GlobalOptions& opts, Action& action) {
  auto* routes = app.add_subcommand(
      "routes",
      "L7 routes of every HTTP service port (or of NAMESPACE/SERVICE) in matching order; with "
      "--explain METHOD URL, which route a request would take and why the earlier ones did not");
  struct Args {
    std::string service;
    std::vector<std::string> explain;  // METHOD URL
    std::vector<std::string> headers;
    std::string source;
  };
  auto args = std::make_shared<Args>();
  auto* service = routes->add_option(
      "service", args->service, "NAMESPACE/SERVICE (a bare SERVICE means namespace \"default\")");
  auto* explain = routes->add_option(
      "--explain", args->explain,
      "METHOD URL: URL is http://HOST[:PORT]/path?query, HOST a service (NAME, NAME.NAMESPACE, "
      "FQDN) or its cluster IP, PORT 80 by default");
  explain->expected(2)->allow_extra_args(false)->excludes(service);
  routes
      ->add_option("-H,--header", args->headers,
                   "'Name: value' request header for --explain (repeatable; Host sets the "
                   "authority)")
      ->allow_extra_args(false)
      ->needs(explain);
  routes
      ->add_option("--source", args->source,
                   "NAMESPACE/POD sending the request, for sourceLabels and sourceNamespace "
                   "matches and bare service names (with --explain)")
      ->needs(explain);
  routes->callback([&opts, &action, args] {
    if (args->explain.empty()) {
      std::string path = "/v1/routes";
      if (!args->service.empty()) {
        std::string s = args->service;
        if (s.find('/') == std::string::npos) s = "default/" + s;
        path += "?service=" + urlEncodeQueryValue(s);
      }
      action = [&opts, path] { return showRoutes(opts, path); };
      return;
    }
    std::string headers;
    for (const std::string& h : args->headers) headers += (headers.empty() ? "" : "\n") + h;
    std::string path = "/v1/routes/explain?method=" + urlEncodeQueryValue(args->explain[0]) +
                       "&url=" + urlEncodeQueryValue(args->explain[1]);
    if (!headers.empty()) path += "&headers=" + urlEncodeQueryValue(headers);
    if (!args->source.empty()) path += "&source=" + urlEncodeQueryValue(args->source);
    action = [&opts, path] { return explainRoute(opts, path); };
  });
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

  addRoutesCommand(app, opts, action);
}

}  // namespace meshlet::cli

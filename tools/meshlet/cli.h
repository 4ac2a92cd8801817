#pragma once
// Shared pieces of the `meshlet` CLI: global options, output, and the command groups.
#include <functional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "agent/common/status.h"

namespace meshlet::cli {

inline constexpr const char* kVersion = "0.1.0";
inline constexpr const char* kDefaultBpffs = "/sys/fs/bpf/meshlet";

struct GlobalOptions {
  std::string admin_socket;
  std::string bpffs;
  std::string output = "table";  // "table" or "json"
};

// What the selected subcommand does once parsing succeeded; returns the exit code.
using Action = std::function<int()>;

// status, workloads, services, endpoints, policies, certs, connections, routes (admin API).
void addAgentCommands(CLI::App& app, const GlobalOptions& opts, Action& action);
// bpf maps, bpf progs (pinned objects, no agent needed).
void addBpfCommands(CLI::App& app, const GlobalOptions& opts, Action& action);
// ca init (the built-in CA's files).
void addCaCommands(CLI::App& app, const GlobalOptions& opts, Action& action);
// version.
void addVersionCommand(CLI::App& app, Action& action);

// Prints an array of objects as a table or as JSON; returns 0.
int printRows(const nlohmann::ordered_json& rows, const GlobalOptions& opts);
// Prints one object as key/values or as a one-element JSON array; returns 0.
int printObject(const nlohmann::ordered_json& object, const GlobalOptions& opts);
// Prints "meshlet: <message>" to stderr; returns 1.
int fail(const Error& error);

}  // namespace meshlet::cli

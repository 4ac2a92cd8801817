// The CNI plugin: ADD/DEL/CHECK/VERSION from the environment and stdin to stdout + exit code.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace meshlet::cni {

struct PluginOutcome {
  int exit_code = 0;
  std::string out;  // for stdout: the result, VERSION answer or error object
  std::string err;  // for stderr: log lines
};

// Returns the value of an environment variable, "" when unset.
using EnvLookup = std::function<std::string(const char* name)>;

// Runs one CNI command. Never throws: every failure becomes a spec error object.
PluginOutcome RunPlugin(const EnvLookup& env, std::string_view stdin_data);

}  // namespace meshlet::cni

#pragma once
// parseAgentFlags on {"meshletd", args...}, for the flag tests.
#include <string>
#include <vector>

#include "agent/config/flags.h"

namespace meshlet::testing {

inline Result<AgentFlags> parseFlags(std::vector<std::string> args) {
  args.insert(args.begin(), "meshletd");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return parseAgentFlags(static_cast<int>(args.size()), argv.data());
}

}  // namespace meshlet::testing

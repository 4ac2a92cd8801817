// `meshlet-cni install` / `uninstall`: put the binary into the CNI bin dir and chain meshlet-cni
// as the last plugin of the node's primary .conflist, and take exactly that back out again.
#pragma once

#include <ostream>
#include <string>

#include "cni/conflist_edit.h"

namespace meshlet::cni {

inline constexpr std::string_view kBinaryName = "meshlet-cni";

struct InstallOptions {
  std::string bin_dir = "/opt/cni/bin";
  std::string conf_dir = "/etc/cni/net.d";
  PluginEntrySettings settings;
  std::string source_binary = "/proc/self/exe";
};

// The first *.conflist of conf_dir in lexical order. Throws std::runtime_error with a readable
// reason when there is none. Sets `shadowed_by` to a .conf/.json file that sorts before it (the
// runtime would load that one instead), if any.
std::string PrimaryConflist(const std::string& conf_dir, std::string* shadowed_by = nullptr);

// Writes content to path through a temp file in the same directory and rename(), with `mode`.
// Throws std::runtime_error.
void WriteFileAtomically(const std::string& path, const std::string& content, unsigned mode);

// Both print what they did on out and problems on err; they return the process exit code.
int Install(const InstallOptions& options, std::ostream& out, std::ostream& err);
int Uninstall(const InstallOptions& options, std::ostream& out, std::ostream& err);

}  // namespace meshlet::cni

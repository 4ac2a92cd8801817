// Text-level edits of a CNI .conflist: add or remove the meshlet-cni plugin entry so that every
// other byte of the file stays as it was (uninstall after install gives back the original bytes).
#pragma once

#include <string>
#include <string_view>

namespace meshlet::cni {

inline constexpr std::string_view kPluginType = "meshlet-cni";
inline constexpr std::string_view kDefaultSocketPath = "/var/run/meshlet/cni.sock";

struct PluginEntrySettings {
  std::string socket_path{kDefaultSocketPath};
  bool fail_open = false;
};

// Returns the conflist text with a {"type": "meshlet-cni", ...} object appended as the last
// element of "plugins", formatted like its neighbours. When a meshlet-cni entry is already
// there, returns the text unchanged if its settings match, else with only that object rewritten
// (its other keys kept). Throws std::runtime_error with a readable reason when the text is not a
// conflist (invalid JSON, no "plugins" array, empty plugin list).
std::string AddPluginEntry(std::string_view conflist, const PluginEntrySettings& settings);

// Returns the text with every meshlet-cni object removed from "plugins", together with the
// separator that was inserted with it. Text without such an entry (or that is not a conflist)
// comes back unchanged.
std::string RemovePluginEntry(std::string_view conflist);

// True when the conflist text has a meshlet-cni entry in its "plugins" array.
bool HasPluginEntry(std::string_view conflist);

}  // namespace meshlet::cni

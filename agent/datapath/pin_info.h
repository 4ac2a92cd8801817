#pragma once
// Read-only inspection of the BPF objects meshletd pins under its bpffs directory, so the CLI
// can show the datapath while the agent is down. libbpf only; every fd opened is closed.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/status.h"

namespace meshlet {

struct PinnedMap {
  std::string name;         // pin file name
  std::string kernel_name;  // bpf_map_info.name (truncated to 15 chars by the kernel)
  std::string type;         // "hash", "lru_hash", "sockhash", "percpu_array", ...
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  std::optional<uint64_t> entries;  // unset when the map type cannot be iterated
  uint32_t id = 0;
};

struct PinnedProg {
  std::string link;         // pin file name under links/, or the map's pin name for sk_msg
  uint32_t link_id = 0;     // 0 when attached without a link (sockmap/sockhash programs)
  std::string link_type;    // "cgroup", "netns", ... ("" without a link)
  std::string attach_type;  // "cgroup_inet4_connect", "sk_msg_verdict", ...
  uint64_t cgroup_id = 0;   // cgroup links only
  uint32_t prog_id = 0;
  std::string prog_name;
  std::string prog_type;  // "cgroup_sock_addr", "sk_msg", ...
  std::string tag;        // 16 hex digits
  uint64_t run_cnt = 0;   // counted only while kernel.bpf_stats_enabled=1
};

// The number of entries in a map (walking its keys, bounded against concurrent rewrites);
// unset for map types without keys or when the walk fails at once.
std::optional<uint64_t> countMapEntries(int map_fd);

// Every pinned map directly in `bpffs_dir` (sorted by name). Other pinned objects and
// subdirectories are ignored. Error "no meshlet datapath pinned at DIR" when it is missing.
Result<std::vector<PinnedMap>> listPinnedMaps(const std::string& bpffs_dir);

// Every pinned link under `<bpffs_dir>/links/` with its program, followed by the programs
// attached to the pinned sockhash/sockmap maps in `bpffs_dir` (sk_msg / sk_skb verdicts).
Result<std::vector<PinnedProg>> listPinnedLinks(const std::string& bpffs_dir);

// The CLI's JSON for `meshlet bpf maps` / `meshlet bpf progs`: arrays of objects whose keys are
// the snake_case table headers. Maps: name, type, key_size, value_size, max_entries, entries
// (null when not countable), id. Programs: link, link_id (null without a link), link_type,
// attach_type, cgroup_id (null unless a cgroup link), prog_id, prog_name, prog_type, tag, run_cnt.
nlohmann::ordered_json pinnedMapsJson(const std::vector<PinnedMap>& maps);
nlohmann::ordered_json pinnedProgsJson(const std::vector<PinnedProg>& progs);

}  // namespace meshlet

#include "agent/datapath/pin_info.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace meshlet {

namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

enum class ObjKind { kUnknown, kMap, kProg, kLink };

// What a bpf fd refers to, read from its anon inode name (as bpftool does).
ObjKind fdKind(int fd) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  char target[128] = {};
  ssize_t n = ::readlink(path, target, sizeof(target) - 1);
  if (n <= 0) return ObjKind::kUnknown;
  std::string t(target, static_cast<size_t>(n));
  if (t == "anon_inode:bpf-map") return ObjKind::kMap;
  if (t == "anon_inode:bpf-prog") return ObjKind::kProg;
  if (t == "anon_inode:bpf-link") return ObjKind::kLink;
  return ObjKind::kUnknown;
}

// libbpf 1.1 returns NULL for types newer than itself; show the number instead.
std::string typeName(const char* s, unsigned v) {
  return s ? std::string(s) : "unknown(" + std::to_string(v) + ")";
}

std::string mapTypeName(uint32_t t) {
  return typeName(libbpf_bpf_map_type_str(static_cast<bpf_map_type>(t)), t);
}
std::string progTypeName(uint32_t t) {
  return typeName(libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(t)), t);
}
std::string attachTypeName(uint32_t t) {
  return typeName(libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(t)), t);
}
std::string linkTypeName(uint32_t t) {
  return typeName(libbpf_bpf_link_type_str(static_cast<bpf_link_type>(t)), t);
}

bool dirExists(const std::string& dir) {
  struct stat st {};
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Regular (pin) files directly in `dir`, sorted.
Result<std::vector<std::string>> pinFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Error::fromErrno("cannot read " + dir, errno);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    names.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Status checkDir(const std::string& dir) {
  if (!dirExists(dir)) {
    return Error(
        "no meshlet datapath pinned at " + dir + " (is meshletd running, and is --bpffs right?)",
        ENOENT);
  }
  return Status::Ok();
}

// Counts the keys of a map by walking bpf_map_get_next_key. Unset for map types without keys.
std::optional<uint64_t> countEntries(int fd, const bpf_map_info& info) {
  if (info.key_size == 0) return std::nullopt;
  std::vector<unsigned char> key(info.key_size), next(info.key_size);
  uint64_t n = 0;
  const void* prev = nullptr;
  // The bound guards against a map that is being rewritten under us (hash iteration restarts
  // from the beginning when the current key is deleted).
  const uint64_t limit = static_cast<uint64_t>(info.max_entries) * 2 + 16;
  while (n < limit) {
    if (bpf_map_get_next_key(fd, prev, next.data()) != 0) {
      if (errno == ENOENT) return n;
      return n == 0 ? std::nullopt : std::optional<uint64_t>(n);
    }
    ++n;
    key.swap(next);
    prev = key.data();
  }
  return std::min<uint64_t>(n, info.max_entries);
}

}  // namespace

std::optional<uint64_t> countMapEntries(int map_fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0) return std::nullopt;
  return countEntries(map_fd, info);
}

namespace {

Result<PinnedProg> progInfo(uint32_t prog_id, PinnedProg p) {
  p.prog_id = prog_id;
  Fd pfd(bpf_prog_get_fd_by_id(prog_id));
  if (!pfd.valid()) {
    return Error::fromErrno("bpf_prog_get_fd_by_id(" + std::to_string(prog_id) + ")", errno);
  }
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(pfd.get(), &info, &len) != 0) {
    return Error::fromErrno("prog info of id " + std::to_string(prog_id), errno);
  }
  p.prog_name = info.name;
  p.prog_type = progTypeName(info.type);
  char hex[2 * BPF_TAG_SIZE + 1] = {};
  for (int i = 0; i < BPF_TAG_SIZE; ++i) std::snprintf(hex + 2 * i, 3, "%02x", info.tag[i]);
  p.tag = hex;
  p.run_cnt = info.run_cnt;
  return p;
}

}  // namespace

Result<std::vector<PinnedMap>> listPinnedMaps(const std::string& bpffs_dir) {
  if (Status s = checkDir(bpffs_dir); !s) return s.error();
  auto files = pinFiles(bpffs_dir);
  if (!files) return files.error();
  std::vector<PinnedMap> maps;
  for (const auto& name : *files) {
    const std::string path = bpffs_dir + "/" + name;
    Fd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid()) {
      if (errno == EACCES || errno == EPERM) return Error::fromErrno("cannot open " + path, errno);
      continue;  // not a bpf object (or removed meanwhile)
    }
    if (fdKind(fd.get()) != ObjKind::kMap) continue;
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) {
      return Error::fromErrno("map info of " + path, errno);
    }
    PinnedMap m;
    m.name = name;
    m.kernel_name = info.name;
    m.type = mapTypeName(info.type);
    m.key_size = info.key_size;
    m.value_size = info.value_size;
    m.max_entries = info.max_entries;
    m.id = info.id;
    m.entries = countEntries(fd.get(), info);
    maps.push_back(std::move(m));
  }
  return maps;
}

Result<std::vector<PinnedProg>> listPinnedLinks(const std::string& bpffs_dir) {
  if (Status s = checkDir(bpffs_dir); !s) return s.error();
  std::vector<PinnedProg> progs;

  const std::string links_dir = bpffs_dir + "/links";
  if (dirExists(links_dir)) {
    auto files = pinFiles(links_dir);
    if (!files) return files.error();
    for (const auto& name : *files) {
      const std::string path = links_dir + "/" + name;
      Fd fd(bpf_obj_get(path.c_str()));
      if (!fd.valid()) {
        if (errno == EACCES || errno == EPERM) {
          return Error::fromErrno("cannot open " + path, errno);
        }
        continue;
      }
      PinnedProg p;
      p.link = name;
      uint32_t prog_id = 0;
      ObjKind kind = fdKind(fd.get());
      if (kind == ObjKind::kLink) {
        bpf_link_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) {
          return Error::fromErrno("link info of " + path, errno);
        }
        p.link_id = info.id;
        p.link_type = linkTypeName(info.type);
        prog_id = info.prog_id;
        switch (info.type) {
          case BPF_LINK_TYPE_CGROUP:
            p.attach_type = attachTypeName(info.cgroup.attach_type);
            p.cgroup_id = info.cgroup.cgroup_id;
            break;
          case BPF_LINK_TYPE_NETNS:
            p.attach_type = attachTypeName(info.netns.attach_type);
            break;
          case BPF_LINK_TYPE_TRACING:
            p.attach_type = attachTypeName(info.tracing.attach_type);
            break;
          default:
            break;
        }
      } else if (kind == ObjKind::kProg) {
        // A pinned program (no link): report it with its own info.
        bpf_prog_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) {
          return Error::fromErrno("prog info of " + path, errno);
        }
        prog_id = info.id;
      } else {
        continue;
      }
      auto full = progInfo(prog_id, std::move(p));
      if (!full) return full.error().wrap(path);
      progs.push_back(std::move(*full));
    }
  }

  // Programs attached to the sockmaps themselves (no bpf_link for those on older kernels).
  auto files = pinFiles(bpffs_dir);
  if (!files) return files.error();
  for (const auto& name : *files) {
    const std::string path = bpffs_dir + "/" + name;
    Fd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid() || fdKind(fd.get()) != ObjKind::kMap) continue;
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) continue;
    if (info.type != BPF_MAP_TYPE_SOCKHASH && info.type != BPF_MAP_TYPE_SOCKMAP) continue;
    for (bpf_attach_type at : {BPF_SK_MSG_VERDICT, BPF_SK_SKB_VERDICT, BPF_SK_SKB_STREAM_VERDICT,
                               BPF_SK_SKB_STREAM_PARSER}) {
      uint32_t ids[8] = {};
      uint32_t count = 8;
      uint32_t flags = 0;
      // EINVAL on kernels before 5.19 that cannot query sockmap attachments: skip quietly.
      if (bpf_prog_query(fd.get(), at, 0, &flags, ids, &count) != 0) continue;
      for (uint32_t i = 0; i < count && i < 8; ++i) {
        PinnedProg p;
        p.link = name;
        p.attach_type = attachTypeName(at);
        auto full = progInfo(ids[i], std::move(p));
        if (!full) continue;  // detached meanwhile
        progs.push_back(std::move(*full));
      }
    }
  }
  return progs;
}

nlohmann::ordered_json pinnedMapsJson(const std::vector<PinnedMap>& maps) {
  auto rows = nlohmann::ordered_json::array();
  for (const auto& m : maps) {
    nlohmann::ordered_json row;
    row["name"] = m.name;
    row["type"] = m.type;
    row["key_size"] = m.key_size;
    row["value_size"] = m.value_size;
    row["max_entries"] = m.max_entries;
    row["entries"] = m.entries ? nlohmann::ordered_json(*m.entries) : nlohmann::ordered_json();
    row["id"] = m.id;
    rows.push_back(std::move(row));
  }
  return rows;
}

nlohmann::ordered_json pinnedProgsJson(const std::vector<PinnedProg>& progs) {
  auto rows = nlohmann::ordered_json::array();
  for (const auto& p : progs) {
    nlohmann::ordered_json row;
    row["link"] = p.link;
    row["link_id"] = p.link_id ? nlohmann::ordered_json(p.link_id) : nlohmann::ordered_json();
    row["link_type"] = p.link_type;
    row["attach_type"] = p.attach_type;
    row["cgroup_id"] =
        p.link_type == "cgroup" ? nlohmann::ordered_json(p.cgroup_id) : nlohmann::ordered_json();
    row["prog_id"] = p.prog_id;
    row["prog_name"] = p.prog_name;
    row["prog_type"] = p.prog_type;
    row["tag"] = p.tag;
    row["run_cnt"] = p.run_cnt;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace meshlet

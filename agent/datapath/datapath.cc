#include "agent/datapath/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/common/log.h"
#include "agent/datapath/pin_info.h"
#include "meshlet.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace fs = std::filesystem;

namespace meshlet {

static_assert(sizeof(meshlet_svc_key) == 20);
static_assert(sizeof(meshlet_svc_value) == 12);
static_assert(sizeof(meshlet_backend_key) == 8);
static_assert(sizeof(meshlet_backend_value) == 24);
static_assert(sizeof(meshlet_maglev_key) == 8);
static_assert(sizeof(meshlet_pod_value) == 8);
static_assert(sizeof(meshlet_ip_key) == 20);
static_assert(sizeof(meshlet_ip_value) == 8);
static_assert(sizeof(meshlet_origin) == 52);
static_assert(sizeof(meshlet_udp_rev_key) == 32);
static_assert(sizeof(meshlet_udp_rev_value) == 24);
static_assert(sizeof(meshlet_sock_key) == 40);
static_assert(sizeof(meshlet_conn_value) == 88);
static_assert(sizeof(meshlet_svc_stats) == 32);
static_assert(sizeof(meshlet_remote_value) == 8);
static_assert(sizeof(meshlet_tunnel_key) == 16);
static_assert(sizeof(meshlet_authz_key) == 12);
static_assert(sizeof(meshlet_authz_value) == 16);

namespace {

constexpr const char* kSkLookupPrefix = "sk_lookup-";  // inbound capture links, per netns

std::string linksDir(const DatapathOptions& o) { return o.bpffs_dir + "/links"; }

Status ensureBpffsDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error("cannot create pin directory " + dir + ": " + ec.message(), ec.value());
  return Status::Ok();
}

template <typename T>
bool sameBytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Writes every entry of `want` that `have` lacks or holds differently, in batches (one
// syscall per few thousand entries; element by element where the kernel has no batch ops).
template <typename Map>
Status upsert(int fd, const char* name, const Map& want, const Map& have, std::string& failed) {
  using K = typename Map::key_type;
  using V = typename Map::mapped_type;
  std::vector<K> keys;
  std::vector<V> values;
  // One merge walk: both maps iterate in key order.
  auto less = want.key_comp();
  auto h = have.begin();
  for (const auto& [k, v] : want) {
    while (h != have.end() && less(h->first, k)) ++h;
    if (h != have.end() && !less(k, h->first) && sameBytes(h->second, v)) continue;
    keys.push_back(k);
    values.push_back(v);
  }
  constexpr size_t kBatch = 4096;
  for (size_t off = 0; off < keys.size(); off += kBatch) {
    uint32_t n = static_cast<uint32_t>(std::min(kBatch, keys.size() - off));
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    if (bpf_map_update_batch(fd, &keys[off], &values[off], &n, &opts) == 0) continue;
    int err = errno;
    if (err != EINVAL && err != ENOTSUP && err != EOPNOTSUPP) {
      failed = name;
      return Error::fromErrno(std::string("update of map ") + name + " failed", err);
    }
    for (size_t i = off; i < off + std::min(kBatch, keys.size() - off); ++i) {
      if (bpf_map_update_elem(fd, &keys[i], &values[i], BPF_ANY) != 0) {
        err = errno;
        failed = name;
        return Error::fromErrno(std::string("update of map ") + name + " failed", err);
      }
    }
  }
  return Status::Ok();
}

// Deletes `keys` from the map, a batch per syscall.
template <typename K>
void deleteKeys(int fd, std::vector<K>& keys) {
  constexpr size_t kBatch = 4096;
  for (size_t off = 0; off < keys.size(); off += kBatch) {
    uint32_t n = static_cast<uint32_t>(std::min(kBatch, keys.size() - off));
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_delete_batch(fd, &keys[off], &n, &opts) == 0) continue;
    // Not supported, or a key already gone (ENOENT stops the batch): one by one.
    for (size_t i = off; i < off + std::min(kBatch, keys.size() - off); ++i) {
      bpf_map_delete_elem(fd, &keys[i]);
    }
  }
}

// Deletes every entry of `have` that `want` lacks.
template <typename Map>
void removeStale(int fd, const Map& want, const Map& have) {
  using K = typename Map::key_type;
  std::vector<K> keys;
  auto less = want.key_comp();
  auto w = want.begin();
  for (const auto& [k, v] : have) {
    while (w != want.end() && less(w->first, k)) ++w;
    if (w == want.end() || less(k, w->first)) keys.push_back(k);
  }
  deleteKeys(fd, keys);
}

// Reads a whole (non-per-CPU) map into `out`.
template <typename Map>
void readAll(int fd, Map& out) {
  using K = typename Map::key_type;
  using V = typename Map::mapped_type;
  K key{}, next{};
  K* prev = nullptr;
  std::vector<std::pair<K, V>> entries;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    V v{};
    if (bpf_map_lookup_elem(fd, &next, &v) == 0) entries.emplace_back(next, v);
    key = next;
    prev = &key;
  }
  // Sorted once (a flat map filled key by key in hash order would move its entries each time).
  out = mapFromPairs<Map>(std::move(entries));
}

int libbpfLog(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  vsnprintf(buf, sizeof(buf), fmt, args);
  std::string line(buf);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  logLine(level == LIBBPF_WARN ? LogLevel::kWarn : LogLevel::kInfo, "libbpf: " + line);
  return 0;
}

}  // namespace

bool kernelHasSetRetval() {
  // The helper exists for cgroup programs since 5.18; probing a sock_addr program needs an
  // expected attach type libbpf's probe does not set, so probe with a cgroup sockopt program.
  return libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_FUNC_set_retval, nullptr) == 1;
}

Result<std::string> detectCgroup2Root() {
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, dir, type, rest;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
    if (type == "cgroup2") return dir;
  }
  return Error("no cgroup v2 hierarchy is mounted (see /proc/self/mounts); pass --cgroup");
}

Result<uint64_t> netnsCookie(const std::string& path) {
  int nsfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return Error::fromErrno("cannot open network namespace " + path, errno);
  auto cookie = netnsCookieFromFd(nsfd, path);
  ::close(nsfd);
  return cookie;
}

Result<uint64_t> netnsCookieFromFd(int nsfd, const std::string& path) {
  uint64_t cookie = 0;
  int err = 0;
  std::string step;
  // setns changes only the calling thread's namespace: do it on a thread of its own.
  std::thread t([&] {
    if (setns(nsfd, CLONE_NEWNET) != 0) {
      err = errno;
      step = "setns";
      return;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
      err = errno;
      step = "socket";
      return;
    }
    socklen_t len = sizeof(cookie);
    if (getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
      err = errno;
      step = "getsockopt(SO_NETNS_COOKIE)";
    }
    ::close(s);
  });
  t.join();
  if (err != 0) return Error::fromErrno(step + " in network namespace " + path, err);
  return cookie;
}

Datapath::~Datapath() {
  // Links are pinned: closing our fds leaves the programs attached for the next agent.
  for (auto* l : links_) bpf_link__destroy(l);
  for (auto& [cookie, l] : inbound_links_) bpf_link__destroy(l);
  if (skel_) meshlet_bpf__destroy(skel_);
}

Result<std::unique_ptr<Datapath>> Datapath::open(const DatapathOptions& opts) {
  libbpf_set_print(libbpfLog);
  if (auto st = ensureBpffsDir(opts.bpffs_dir); !st) return st.error();
  if (auto st = ensureBpffsDir(linksDir(opts)); !st) return st.error();

  std::unique_ptr<Datapath> dp(new Datapath());
  LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = opts.bpffs_dir.c_str());
  dp->skel_ = meshlet_bpf__open_opts(&oo);
  if (!dp->skel_) return Error::fromErrno("cannot open the BPF object", errno);
  dp->skel_->rodata->meshlet_has_set_retval = kernelHasSetRetval() ? 1 : 0;
  dp->adopted_ = fs::exists(opts.bpffs_dir + "/meshlet_svc_v1");
  if (int err = meshlet_bpf__load(dp->skel_); err != 0) {
    return Error::fromErrno("cannot load the BPF programs (see the libbpf messages above)", err);
  }
  if (auto st = dp->attach(opts); !st) return st.error();
  dp->applied_ = std::make_shared<const DesiredDatapath>(dp->readMaps());
  return dp;
}

Status Datapath::attach(const DatapathOptions& opts) {
  int cgfd = ::open(opts.cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgfd < 0) return Error::fromErrno("cannot open cgroup " + opts.cgroup_path, errno);
  struct stat cgst {};
  fstat(cgfd, &cgst);

  struct bpf_program* cgroup_progs[] = {
      skel_->progs.meshlet_connect4,     skel_->progs.meshlet_connect6,
      skel_->progs.meshlet_sendmsg4,     skel_->progs.meshlet_sendmsg6,
      skel_->progs.meshlet_recvmsg4,     skel_->progs.meshlet_recvmsg6,
      skel_->progs.meshlet_getpeername4, skel_->progs.meshlet_getpeername6,
      skel_->progs.meshlet_sockops,
  };
  Status result;
  for (auto* prog : cgroup_progs) {
    std::string pin = linksDir(opts) + "/" + bpf_program__name(prog);
    if (fs::exists(pin)) {
      struct bpf_link* link = bpf_link__open(pin.c_str());
      if (link) {
        bpf_link_info info{};
        uint32_t len = sizeof(info);
        bool same_cgroup = bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &len) == 0 &&
                           info.type == BPF_LINK_TYPE_CGROUP &&
                           info.cgroup.cgroup_id == static_cast<uint64_t>(cgst.st_ino);
        if (same_cgroup && bpf_link__update_program(link, prog) == 0) {
          links_.push_back(link);
          continue;  // adopted: the new program replaced the old one atomically
        }
        // Attached elsewhere, or not updatable: detach it and attach afresh.
        bpf_link__unpin(link);
        bpf_link_detach(bpf_link__fd(link));
        bpf_link__destroy(link);
      } else {
        ::unlink(pin.c_str());
      }
    }
    struct bpf_link* link = bpf_program__attach_cgroup(prog, cgfd);
    if (!link) {
      result = Error::fromErrno(std::string("cannot attach ") + bpf_program__name(prog) +
                                    " to cgroup " + opts.cgroup_path,
                                errno);
      break;
    }
    if (int err = bpf_link__pin(link, pin.c_str()); err != 0) {
      result = Error::fromErrno("cannot pin link " + pin, err);
      bpf_link__destroy(link);
      break;
    }
    links_.push_back(link);
  }
  ::close(cgfd);
  if (!result) return result;

  // Inbound capture links of the previous agent, one per pod netns: give them the new program;
  // one whose netns is gone is dropped (the agent re-attaches what its pods need).
  links_dir_ = linksDir(opts);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(links_dir_, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(kSkLookupPrefix, 0) != 0) continue;
    uint64_t cookie = std::strtoull(name.c_str() + std::strlen(kSkLookupPrefix), nullptr, 10);
    struct bpf_link* link = bpf_link__open(e.path().c_str());
    if (link && cookie != 0 &&
        bpf_link__update_program(link, skel_->progs.meshlet_sk_lookup) == 0) {
      inbound_links_[cookie] = link;
      continue;
    }
    if (link) {
      bpf_link__unpin(link);
      bpf_link__destroy(link);
    } else {
      ::unlink(e.path().c_str());
    }
  }

  // sk_msg hangs off the sockhash, which is pinned: attaching replaces any previous program.
  if (bpf_prog_attach(bpf_program__fd(skel_->progs.meshlet_sk_msg),
                      bpf_map__fd(skel_->maps.meshlet_socks_v1), BPF_SK_MSG_VERDICT, 0) != 0) {
    return Error::fromErrno("cannot attach meshlet_sk_msg to meshlet_socks_v1", errno);
  }
  return Status::Ok();
}

DesiredDatapath Datapath::readMaps() const {
  DesiredDatapath m;
  readAll(bpf_map__fd(skel_->maps.meshlet_svc_v1), m.services);
  BackendEntries backends;
  readAll(bpf_map__fd(skel_->maps.meshlet_backends_v1), backends);
  m.setBackends(backends);
  readAll(bpf_map__fd(skel_->maps.meshlet_maglev_v1), m.maglev);
  readAll(bpf_map__fd(skel_->maps.meshlet_pods_v1), m.pods);
  readAll(bpf_map__fd(skel_->maps.meshlet_local_ips_v1), m.local_ips);
  readAll(bpf_map__fd(skel_->maps.meshlet_remote_ips_v1), m.remote_ips);
  readAll(bpf_map__fd(skel_->maps.meshlet_authz_v1), m.authz);
  for (auto& [k, v] : m.authz) v.denied = 0;  // the mirror holds verdicts, not counts
  return m;
}

Status Datapath::apply(std::shared_ptr<const DesiredDatapath> desired) {
  const DesiredDatapath& d = *desired;
  const DesiredDatapath& have = *applied_;
  struct Fit {
    const char* name;
    size_t want;
    const struct bpf_map* map;
  };
  const Fit fits[] = {
      {"meshlet_svc_v1", d.services.size(), skel_->maps.meshlet_svc_v1},
      {"meshlet_backends_v1", d.backendCount(), skel_->maps.meshlet_backends_v1},
      {"meshlet_maglev_v1", d.maglev.size(), skel_->maps.meshlet_maglev_v1},
      {"meshlet_pods_v1", d.pods.size(), skel_->maps.meshlet_pods_v1},
      {"meshlet_local_ips_v1", d.local_ips.size(), skel_->maps.meshlet_local_ips_v1},
      {"meshlet_remote_ips_v1", d.remote_ips.size(), skel_->maps.meshlet_remote_ips_v1},
      {"meshlet_authz_v1", d.authz.size(), skel_->maps.meshlet_authz_v1},
  };
  for (const auto& f : fits) {
    size_t cap = bpf_map__max_entries(f.map);
    if (f.want > cap) {
      ++map_update_errors_;
      failed_map_ = f.name;
      return Error(std::string("map ") + f.name + " is full: the configuration needs " +
                       std::to_string(f.want) + " entries, the map holds " + std::to_string(cap) +
                       "; nothing was applied",
                   ENOSPC);
    }
  }
  failed_map_.clear();
  if (Status st = writeDiff(d, have, false, failed_map_); !st) {
    ++map_update_errors_;
    // Roll back to what was in force (the mirror stays): from what the maps hold now.
    std::string ignored;
    writeDiff(have, readMaps(), true, ignored);
    return Error(st.error().message() + "; the previous state was restored", st.error().code());
  }
  applied_ = std::move(desired);
  return Status::Ok();
}

Status Datapath::writeDiff(const DesiredDatapath& want, const DesiredDatapath& have,
                           bool best_effort, std::string& failed) {
  int svc = bpf_map__fd(skel_->maps.meshlet_svc_v1);
  int be = bpf_map__fd(skel_->maps.meshlet_backends_v1);
  int mg = bpf_map__fd(skel_->maps.meshlet_maglev_v1);
  int pods = bpf_map__fd(skel_->maps.meshlet_pods_v1);
  int ips = bpf_map__fd(skel_->maps.meshlet_local_ips_v1);
  int rips = bpf_map__fd(skel_->maps.meshlet_remote_ips_v1);
  int az = bpf_map__fd(skel_->maps.meshlet_authz_v1);

  // 1. Backends and affinity tables first: a service never counts a slot not yet written.
  // 2. Then services; verdicts before the pods and IPs that use them (a governed pod never
  // lacks its table). 3. Then stale entries, services before their slots.
  Status first = Status::Ok();
  auto write = [&](Status st) {
    if (first && !st) first = st;
    return best_effort || first;
  };
  const BackendEntries want_backends = want.backends();
  const BackendEntries have_backends = have.backends();
  write(upsert(be, "meshlet_backends_v1", want_backends, have_backends, failed)) &&
      write(upsert(mg, "meshlet_maglev_v1", want.maglev, have.maglev, failed)) &&
      write(upsert(svc, "meshlet_svc_v1", want.services, have.services, failed)) &&
      write(upsert(az, "meshlet_authz_v1", want.authz, have.authz, failed)) &&
      write(upsert(pods, "meshlet_pods_v1", want.pods, have.pods, failed)) &&
      write(upsert(ips, "meshlet_local_ips_v1", want.local_ips, have.local_ips, failed)) &&
      write(upsert(rips, "meshlet_remote_ips_v1", want.remote_ips, have.remote_ips, failed));
  if (!first && !best_effort) return first;
  removeStale(svc, want.services, have.services);
  removeStale(pods, want.pods, have.pods);
  removeStale(ips, want.local_ips, have.local_ips);
  removeStale(rips, want.remote_ips, have.remote_ips);
  removeStale(az, want.authz, have.authz);
  removeStale(mg, want.maglev, have.maglev);
  removeStale(be, want_backends, have_backends);
  return first;
}

Result<std::vector<ConnEntry>> Datapath::readConns() const {
  // A batch of entries per syscall, not two syscalls per entry: under a high connection rate
  // the map holds tens of thousands of records each second. Batch lookups of (LRU) hash maps
  // are in every kernel meshlet supports (5.6+); the batch token of a hash map is a bucket
  // index (4 bytes).
  constexpr uint32_t kBatch = 1024;
  std::vector<meshlet_sock_key> keys(kBatch);
  std::vector<meshlet_conn_value> values(kBatch);
  std::vector<ConnEntry> out;
  int fd = bpf_map__fd(skel_->maps.meshlet_conns_v1);
  uint32_t in_token = 0, out_token = 0;
  for (bool first = true;; first = false) {
    uint32_t n = kBatch;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int rc = bpf_map_lookup_batch(fd, first ? nullptr : &in_token, &out_token, keys.data(),
                                  values.data(), &n, &opts);
    int err = errno;
    for (uint32_t i = 0; i < n; ++i) out.push_back(ConnEntry{keys[i], values[i]});
    if (rc != 0 && err == ENOENT) return out;  // the last batch, possibly empty
    if (rc != 0) return Error::fromErrno("cannot read meshlet_conns_v1", err);
    in_token = out_token;
  }
}

void Datapath::eraseConns(std::vector<meshlet_sock_key> keys) {
  deleteKeys(bpf_map__fd(skel_->maps.meshlet_conns_v1), keys);
}

Status Datapath::attachInbound(uint64_t netns_cookie, const std::string& netns_path) {
  if (inbound_links_.count(netns_cookie) != 0) return Status::Ok();
  int nsfd = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return Error::fromErrno("cannot open network namespace " + netns_path, errno);
  struct bpf_link* link = bpf_program__attach_netns(skel_->progs.meshlet_sk_lookup, nsfd);
  int err = errno;
  ::close(nsfd);
  if (!link) return Error::fromErrno("cannot attach meshlet_sk_lookup to " + netns_path, err);
  std::string pin = links_dir_ + "/" + kSkLookupPrefix + std::to_string(netns_cookie);
  if (int perr = bpf_link__pin(link, pin.c_str()); perr != 0) {
    bpf_link__destroy(link);
    return Error::fromErrno("cannot pin link " + pin, -perr);
  }
  inbound_links_[netns_cookie] = link;
  return Status::Ok();
}

void Datapath::detachInbound(uint64_t netns_cookie) {
  auto it = inbound_links_.find(netns_cookie);
  if (it == inbound_links_.end()) return;
  bpf_link__unpin(it->second);
  bpf_link__detach(it->second);
  bpf_link__destroy(it->second);
  inbound_links_.erase(it);
}

std::vector<uint64_t> Datapath::inboundAttached() const {
  std::vector<uint64_t> out;
  for (const auto& [cookie, l] : inbound_links_) out.push_back(cookie);
  return out;
}

Result<int> Datapath::inboundMapFd() const {
  int fd = fcntl(bpf_map__fd(skel_->maps.meshlet_inbound_v1), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Error::fromErrno("cannot duplicate the meshlet_inbound_v1 fd", errno);
  return fd;
}

std::vector<std::pair<meshlet_authz_key, uint64_t>> Datapath::authzDenials() const {
  std::vector<std::pair<meshlet_authz_key, uint64_t>> out;
  int fd = bpf_map__fd(skel_->maps.meshlet_authz_v1);
  meshlet_authz_key key{}, next{};
  meshlet_authz_key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    meshlet_authz_value v{};
    if (bpf_map_lookup_elem(fd, &next, &v) == 0 && v.denied > 0) out.emplace_back(next, v.denied);
    key = next;
    prev = &key;
  }
  return out;
}

Result<int> Datapath::tunnelMapFd() const {
  int fd = fcntl(bpf_map__fd(skel_->maps.meshlet_tunnel_v1), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Error::fromErrno("cannot duplicate the meshlet_tunnel_v1 fd", errno);
  return fd;
}

std::optional<meshlet_origin> takeTunnelOrigin(int tunnel_map_fd, uint64_t netns_cookie,
                                               uint16_t port, uint8_t family) {
  meshlet_tunnel_key k{};
  k.netns_cookie = netns_cookie;
  k.port = port;
  k.family = family;
  meshlet_origin o{};
  if (bpf_map_lookup_and_delete_elem(tunnel_map_fd, &k, &o) == 0) return o;
  // LRU hash maps gained lookup-and-delete in 5.14; older kernels get the two calls.
  if (bpf_map_lookup_elem(tunnel_map_fd, &k, &o) != 0) return std::nullopt;
  bpf_map_delete_elem(tunnel_map_fd, &k);
  return o;
}

namespace {
meshlet_ip_key ipMapKey(const IpAddr& ip) {
  meshlet_ip_key k{};
  auto w = ip.words();
  std::copy(w.begin(), w.end(), k.addr);
  k.family = ip.isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
  return k;
}
}  // namespace

Status setInboundListener(int inbound_map_fd, const IpAddr& ip, int listen_fd) {
  meshlet_ip_key k = ipMapKey(ip);
  uint64_t fd = static_cast<uint64_t>(listen_fd);
  if (bpf_map_update_elem(inbound_map_fd, &k, &fd, BPF_ANY) != 0) {
    return Error::fromErrno("cannot add the inbound listener of " + ip.toString() +
                                " to meshlet_inbound_v1",
                            errno);
  }
  return Status::Ok();
}

void clearInboundListener(int inbound_map_fd, const IpAddr& ip) {
  meshlet_ip_key k = ipMapKey(ip);
  bpf_map_delete_elem(inbound_map_fd, &k);
}

SvcCounters Datapath::svcCounters(uint32_t svc_id) const {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<meshlet_svc_stats> per(ncpu > 0 ? ncpu : 1);
  SvcCounters c;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.meshlet_svc_stats_v1), &svc_id, per.data()) ==
      0) {
    for (const auto& s : per) {
      c.connects += s.connects;
      c.no_backend += s.no_backend;
      c.failed_connects += s.failed_connects;
      c.udp_msgs += s.udp_msgs;
    }
  }
  return c;
}

std::vector<uint64_t> Datapath::globalCounters() const {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> out(MESHLET_G_MAX, 0);
  std::vector<uint64_t> per(ncpu > 0 ? ncpu : 1);
  for (uint32_t i = 0; i < MESHLET_G_MAX; ++i) {
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.meshlet_global_v1), &i, per.data()) == 0) {
      for (uint64_t v : per) out[i] += v;
    }
  }
  return out;
}

std::vector<MapUsage> Datapath::mapUsage() const {
  std::vector<MapUsage> out;
  const struct bpf_map* maps[] = {
      skel_->maps.meshlet_svc_v1,       skel_->maps.meshlet_backends_v1,
      skel_->maps.meshlet_maglev_v1,    skel_->maps.meshlet_pods_v1,
      skel_->maps.meshlet_local_ips_v1, skel_->maps.meshlet_origins_v1,
      skel_->maps.meshlet_udp_rev_v1,   skel_->maps.meshlet_socks_v1,
      skel_->maps.meshlet_conns_v1,     skel_->maps.meshlet_remote_ips_v1,
      skel_->maps.meshlet_tunnel_v1,    skel_->maps.meshlet_authz_v1,
  };
  for (const auto* m : maps) {
    MapUsage u;
    u.name = bpf_map__name(m);
    u.capacity = bpf_map__max_entries(m);
    // The agent's mirror knows the config maps; the kernel-written ones were counted last.
    if (m == skel_->maps.meshlet_svc_v1) {
      u.entries = applied_->services.size();
    } else if (m == skel_->maps.meshlet_backends_v1) {
      u.entries = applied_->backendCount();
    } else if (m == skel_->maps.meshlet_maglev_v1) {
      u.entries = applied_->maglev.size();
    } else if (m == skel_->maps.meshlet_pods_v1) {
      u.entries = applied_->pods.size();
    } else if (m == skel_->maps.meshlet_local_ips_v1) {
      u.entries = applied_->local_ips.size();
    } else if (m == skel_->maps.meshlet_remote_ips_v1) {
      u.entries = applied_->remote_ips.size();
    } else if (m == skel_->maps.meshlet_authz_v1) {
      u.entries = applied_->authz.size();
    } else {
      auto it = kernel_counts_.find(u.name);
      u.entries = it == kernel_counts_.end() ? 0 : it->second;
    }
    out.push_back(u);
  }
  return out;
}

void Datapath::refreshKernelCounts() {
  for (const struct bpf_map* m : {skel_->maps.meshlet_origins_v1, skel_->maps.meshlet_udp_rev_v1,
                                  skel_->maps.meshlet_socks_v1, skel_->maps.meshlet_conns_v1,
                                  skel_->maps.meshlet_tunnel_v1}) {
    kernel_counts_[bpf_map__name(m)] = countMapEntries(bpf_map__fd(m)).value_or(0);
  }
}

Status Datapath::uninstall(const DatapathOptions& opts) {
  std::error_code ec;
  if (!fs::exists(opts.bpffs_dir, ec)) return Status::Ok();
  if (fs::exists(linksDir(opts), ec)) {
    for (const auto& e : fs::directory_iterator(linksDir(opts), ec)) {
      int fd = bpf_obj_get(e.path().c_str());
      if (fd >= 0) {
        bpf_link_detach(fd);
        ::close(fd);
      }
      ::unlink(e.path().c_str());
    }
    ::rmdir(linksDir(opts).c_str());
  }
  for (const auto& e : fs::directory_iterator(opts.bpffs_dir, ec)) {
    if (e.path().filename().string().rfind("meshlet_", 0) == 0) ::unlink(e.path().c_str());
  }
  if (::rmdir(opts.bpffs_dir.c_str()) != 0 && errno != ENOENT) {
    return Error::fromErrno(
        "cannot remove " + opts.bpffs_dir + " (something else is pinned there?)", errno);
  }
  return Status::Ok();
}

}  // namespace meshlet

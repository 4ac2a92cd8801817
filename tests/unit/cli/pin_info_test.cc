// listPinnedMaps / listPinnedLinks against real objects pinned in a private bpffs directory.
// Needs root and bpffs (mounted at /sys/fs/bpf if it is not); skipped otherwise.
#include "agent/datapath/pin_info.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace meshlet {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;

bool isBpffs(const char* path) {
  struct statfs st {};
  return ::statfs(path, &st) == 0 && static_cast<long>(st.f_type) == kBpfFsMagic;
}

// The cgroup v2 mount point, or "" (hybrid hosts have it at /sys/fs/cgroup/unified).
std::string cgroup2Mount() {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string dev, dir, type;
    in >> dev >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  return "";
}

bool kernelAtLeast(int major, int minor) {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

// `r0 = ret; exit`.
int loadTrivialProg(bpf_prog_type type, const char* name, int ret,
                    bpf_attach_type expected = static_cast<bpf_attach_type>(0)) {
  bpf_insn insns[2];
  std::memset(insns, 0, sizeof(insns));
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[0].dst_reg = BPF_REG_0;
  insns[0].imm = ret;
  insns[1].code = BPF_JMP | BPF_EXIT;
  bpf_prog_load_opts opts;
  std::memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.expected_attach_type = expected;
  return bpf_prog_load(type, name, "GPL", insns, 2, &opts);
}

class PinInfo : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    if (!isBpffs("/sys/fs/bpf") && ::mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0) {
      GTEST_SKIP() << "cannot mount bpffs at /sys/fs/bpf: " << std::strerror(errno);
    }
    dir_ = "/sys/fs/bpf/meshlet-test-cli-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0) << std::strerror(errno);
  }

  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
    if (!cgroup_.empty()) ::rmdir(cgroup_.c_str());
  }

  int keep(int fd) {
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }

  // A hash map with `n` entries, pinned as `name`.
  int pinHash(const std::string& name, int n) {
    int fd = keep(bpf_map_create(BPF_MAP_TYPE_HASH, "test_hash", 4, 8, 64, nullptr));
    EXPECT_GE(fd, 0) << std::strerror(errno);
    for (uint32_t k = 0; k < static_cast<uint32_t>(n); ++k) {
      uint64_t v = k * 10;
      EXPECT_EQ(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0) << std::strerror(errno);
    }
    EXPECT_EQ(bpf_obj_pin(fd, (dir_ + "/" + name).c_str()), 0) << std::strerror(errno);
    return fd;
  }

  // A sockhash holding `n` established TCP sockets (loopback), pinned as `name`.
  int pinSockhash(const std::string& name, int n) {
    int map = keep(bpf_map_create(BPF_MAP_TYPE_SOCKHASH, "test_sockhash", 4, 4, 16, nullptr));
    EXPECT_GE(map, 0) << std::strerror(errno);
    int lfd = keep(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(lfd, 16), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
    for (uint32_t k = 0; k < static_cast<uint32_t>(n); ++k) {
      int c = keep(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      EXPECT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
      keep(::accept(lfd, nullptr, nullptr));
      uint32_t v = static_cast<uint32_t>(c);
      EXPECT_EQ(bpf_map_update_elem(map, &k, &v, BPF_ANY), 0) << std::strerror(errno);
    }
    EXPECT_EQ(bpf_obj_pin(map, (dir_ + "/" + name).c_str()), 0) << std::strerror(errno);
    return map;
  }

  std::string dir_;
  std::string cgroup_;
  std::vector<int> fds_;
};

TEST_F(PinInfo, ListsPinnedMapsWithEntryCounts) {
  pinHash("meshlet_services", 3);
  pinSockhash("meshlet_sockets", 3);
  int arr = keep(bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "test_stats", 4, 16, 8, nullptr));
  ASSERT_GE(arr, 0);
  ASSERT_EQ(bpf_obj_pin(arr, (dir_ + "/meshlet_stats").c_str()), 0);
  // Not maps: a pinned program and a subdirectory are skipped.
  int prog = keep(loadTrivialProg(BPF_PROG_TYPE_SK_MSG, "test_msg", 1));
  ASSERT_GE(prog, 0) << std::strerror(errno);
  ASSERT_EQ(bpf_obj_pin(prog, (dir_ + "/a_prog").c_str()), 0);
  ASSERT_EQ(::mkdir((dir_ + "/links").c_str(), 0700), 0);

  auto maps = listPinnedMaps(dir_);
  ASSERT_TRUE(maps) << maps.error().message();
  ASSERT_EQ(maps->size(), 3u);
  const PinnedMap& svc = (*maps)[0];  // sorted by name
  EXPECT_EQ(svc.name, "meshlet_services");
  EXPECT_EQ(svc.kernel_name, "test_hash");
  EXPECT_EQ(svc.type, "hash");
  EXPECT_EQ(svc.key_size, 4u);
  EXPECT_EQ(svc.value_size, 8u);
  EXPECT_EQ(svc.max_entries, 64u);
  ASSERT_TRUE(svc.entries.has_value());
  EXPECT_EQ(*svc.entries, 3u);
  EXPECT_GT(svc.id, 0u);

  const PinnedMap& sock = (*maps)[1];
  EXPECT_EQ(sock.name, "meshlet_sockets");
  EXPECT_EQ(sock.type, "sockhash");
  ASSERT_TRUE(sock.entries.has_value());
  EXPECT_EQ(*sock.entries, 3u);

  const PinnedMap& stats = (*maps)[2];
  EXPECT_EQ(stats.type, "percpu_array");
  EXPECT_EQ(stats.entries.value_or(0), 8u);  // arrays always hold max_entries keys

  auto json = pinnedMapsJson(*maps);
  ASSERT_EQ(json.size(), 3u);
  std::string keys;
  for (const auto& item : json[0].items()) keys += item.key() + ",";
  EXPECT_EQ(keys, "name,type,key_size,value_size,max_entries,entries,id,");
  EXPECT_EQ(json[1]["entries"], 3);
}

TEST_F(PinInfo, EmptyDirHasNoMapsOrLinks) {
  auto maps = listPinnedMaps(dir_);
  ASSERT_TRUE(maps) << maps.error().message();
  EXPECT_TRUE(maps->empty());
  auto links = listPinnedLinks(dir_);
  ASSERT_TRUE(links) << links.error().message();
  EXPECT_TRUE(links->empty());
}

TEST_F(PinInfo, ListsSockmapProgramsAndCgroupLinks) {
  int map = pinSockhash("meshlet_sockets", 1);
  int msg = keep(loadTrivialProg(BPF_PROG_TYPE_SK_MSG, "test_sk_msg", 1));
  ASSERT_GE(msg, 0) << std::strerror(errno);
  ASSERT_EQ(bpf_prog_attach(msg, map, BPF_SK_MSG_VERDICT, 0), 0) << std::strerror(errno);

  // A cgroup link on an empty cgroup of our own (never the machine's root cgroup).
  std::string cg2 = cgroup2Mount();
  uint64_t cgroup_id = 0;
  if (!cg2.empty()) {
    cgroup_ = cg2 + "/meshlet-test-cli-" + std::to_string(::getpid());
    ::rmdir(cgroup_.c_str());
    if (::mkdir(cgroup_.c_str(), 0755) != 0) cgroup_.clear();
  }
  if (!cgroup_.empty()) {
    struct stat st {};
    ASSERT_EQ(::stat(cgroup_.c_str(), &st), 0);
    cgroup_id = st.st_ino;
    int cg = keep(::open(cgroup_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_GE(cg, 0);
    int prog = keep(loadTrivialProg(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "test_connect4", 1,
                                    BPF_CGROUP_INET4_CONNECT));
    ASSERT_GE(prog, 0) << std::strerror(errno);
    int link = keep(bpf_link_create(prog, cg, BPF_CGROUP_INET4_CONNECT, nullptr));
    ASSERT_GE(link, 0) << std::strerror(errno);
    ASSERT_EQ(::mkdir((dir_ + "/links").c_str(), 0700), 0);
    ASSERT_EQ(bpf_obj_pin(link, (dir_ + "/links/connect4").c_str()), 0) << std::strerror(errno);
  }

  auto progs = listPinnedLinks(dir_);
  ASSERT_TRUE(progs) << progs.error().message();
  const PinnedProg* sk_msg = nullptr;
  const PinnedProg* connect4 = nullptr;
  for (const auto& p : *progs) {
    if (p.attach_type == "sk_msg_verdict") sk_msg = &p;
    if (p.link == "connect4") connect4 = &p;
  }
  // Querying a sockmap's programs needs Linux 6.0+; older kernels skip them silently.
  if (kernelAtLeast(6, 0)) {
    ASSERT_NE(sk_msg, nullptr);
  }
  if (sk_msg) {
    EXPECT_EQ(sk_msg->link, "meshlet_sockets");
    EXPECT_EQ(sk_msg->link_id, 0u);
    EXPECT_EQ(sk_msg->prog_type, "sk_msg");
    EXPECT_EQ(sk_msg->prog_name, "test_sk_msg");
    EXPECT_EQ(sk_msg->tag.size(), 16u);
    EXPECT_GT(sk_msg->prog_id, 0u);
  }
  if (cgroup_.empty()) {
    EXPECT_EQ(progs->size(), sk_msg ? 1u : 0u);
    return;
  }
  ASSERT_NE(connect4, nullptr);
  EXPECT_GT(connect4->link_id, 0u);
  EXPECT_EQ(connect4->link_type, "cgroup");
  EXPECT_EQ(connect4->attach_type, "cgroup_inet4_connect");
  EXPECT_EQ(connect4->cgroup_id, cgroup_id);
  EXPECT_EQ(connect4->prog_type, "cgroup_sock_addr");
  EXPECT_EQ(connect4->prog_name, "test_connect4");

  auto json = pinnedProgsJson(*progs);
  std::string keys;
  for (const auto& item : json[0].items()) keys += item.key() + ",";
  EXPECT_EQ(keys,
            "link,link_id,link_type,attach_type,cgroup_id,prog_id,prog_name,prog_type,tag,"
            "run_cnt,");
  EXPECT_EQ(json[0]["link"], "connect4");  // links/ first
  EXPECT_EQ(json[0]["cgroup_id"], cgroup_id);

  // Unpin and drop our fd: the link detaches before the cgroup is removed in TearDown.
  std::filesystem::remove_all(dir_ + "/links");
}

TEST(PinInfoErrors, MissingDirIsAClearError) {
  auto maps = listPinnedMaps("/nonexistent/meshlet");
  ASSERT_FALSE(maps);
  EXPECT_EQ(maps.error().message().rfind("no meshlet datapath pinned at /nonexistent/meshlet", 0),
            0u)
      << maps.error().message();
  auto links = listPinnedLinks("/nonexistent/meshlet");
  ASSERT_FALSE(links);
  EXPECT_EQ(links.error().message().rfind("no meshlet datapath pinned at /nonexistent/meshlet", 0),
            0u);
}

}  // namespace
}  // namespace meshlet

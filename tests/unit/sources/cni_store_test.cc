#include "agent/sources/cni_store.h"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "agent/admin/cni_server.h"
#include "agent/translate/translate.h"

namespace meshlet {
namespace {

CniPod cniPod(const std::string& ns, const std::string& name, const std::string& ip) {
  CniPod p;
  p.ns = ns;
  p.name = name;
  p.uid = "uid-" + name;
  p.container_id = "cid-" + name;
  p.netns = "/var/run/netns/" + name;
  p.ips.push_back(*IpAddr::parse(ip));
  return p;
}

Snapshot fileSnapshot() {
  Snapshot s;
  Namespace mesh;
  mesh.meta.name = "shop";
  mesh.meta.labels[kDataplaneModeLabel] = kDataplaneModeMeshlet;
  s.namespaces.push_back(mesh);
  Pod web;
  web.meta.ns = "shop";
  web.meta.name = "web-1";
  web.meta.labels["app"] = "web";
  web.node_name = "elsewhere";
  web.ready = true;
  s.pods.push_back(web);
  return s;
}

TEST(CniMerge, KnownPodGetsTheCniNetnsIpsAndThisNode) {
  auto merged = mergeCniPods(fileSnapshot(), {{"shop/web-1", cniPod("shop", "web-1", "198.18.4.2")}},
                             "node-a");
  ASSERT_EQ(merged.pods.size(), 1u);
  const Pod& p = merged.pods[0];
  EXPECT_EQ(p.netns, "/var/run/netns/web-1");
  EXPECT_EQ(p.node_name, "node-a");
  ASSERT_EQ(p.pod_ips.size(), 1u);
  EXPECT_EQ(p.pod_ips[0].toString(), "198.18.4.2");
  EXPECT_EQ(p.meta.labels.at("app"), "web");  // labels from the API server's view stay
  EXPECT_EQ(p.enrolled_by, "cni");
  EXPECT_TRUE(podEnrolled(merged, p));
}

TEST(CniMerge, UnknownPodIsAddedAndEnrolledThroughItsNamespace) {
  auto merged = mergeCniPods(fileSnapshot(),
                             {{"shop/client", cniPod("shop", "client", "198.18.4.3")},
                              {"plain/x", cniPod("plain", "x", "198.18.4.4")}},
                             "node-a");
  ASSERT_EQ(merged.pods.size(), 3u);
  const Pod* client = nullptr;
  const Pod* plain = nullptr;
  for (const auto& p : merged.pods) {
    if (p.meta.name == "client") client = &p;
    if (p.meta.name == "x") plain = &p;
  }
  ASSERT_TRUE(client && plain);
  EXPECT_TRUE(client->ready);
  EXPECT_EQ(client->meta.uid, "uid-client");
  EXPECT_TRUE(podEnrolled(merged, *client));
  EXPECT_FALSE(podEnrolled(merged, *plain));  // its namespace is not in the mesh
}

TEST(CniStore, SavesAndRestoresAtomically) {
  std::string dir = "/tmp/meshlet-test-cnistore-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  {
    CniStore s(dir + "/state/cni-pods.json");
    s.put(cniPod("shop", "a", "198.18.4.2"));
    auto b = cniPod("shop", "b", "2001:db8::5");
    s.put(b);
    ASSERT_TRUE(s.save().ok());
  }
  CniStore r(dir + "/state/cni-pods.json");
  ASSERT_TRUE(r.load().ok());
  ASSERT_EQ(r.pods().size(), 2u);
  const CniPod* b = r.find("shop", "b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->container_id, "cid-b");
  EXPECT_EQ(b->ips.at(0).toString(), "2001:db8::5");
  EXPECT_FALSE(std::filesystem::exists(dir + "/state/cni-pods.json.tmp"));
  EXPECT_TRUE(r.remove("cid-a", "", ""));       // by container id
  EXPECT_TRUE(r.remove("other", "shop", "b"));  // falls back to the name
  EXPECT_FALSE(r.remove("cid-a", "shop", "a"));
  std::filesystem::remove_all(dir);
}

TEST(CniStore, MissingFileIsEmptyAndGarbageIsAnError) {
  std::string dir = "/tmp/meshlet-test-cnistore2-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  CniStore missing(dir + "/none.json");
  EXPECT_TRUE(missing.load().ok());
  EXPECT_TRUE(missing.pods().empty());
  std::ofstream(dir + "/bad.json") << "{not json";
  CniStore bad(dir + "/bad.json");
  auto st = bad.load();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("bad.json"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(CniFraming, MessageAndPassedFdArriveTogether) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::string body(5000, 'x');
  uint32_t len = htonl(body.size());
  std::string framed(reinterpret_cast<char*>(&len), 4);
  framed += body;
  int pass = open("/proc/self/ns/net", O_RDONLY);
  ASSERT_GE(pass, 0);
  iovec iov{framed.data(), 4};
  char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pass, sizeof(int));
  ASSERT_EQ(sendmsg(sv[0], &msg, 0), 4);
  ASSERT_EQ(write(sv[0], framed.data() + 4, framed.size() - 4),
            static_cast<ssize_t>(framed.size() - 4));
  std::string got;
  int fd = -1;
  ASSERT_TRUE(readFramed(sv[1], got, fd).ok());
  EXPECT_EQ(got, body);
  ASSERT_GE(fd, 0);
  struct stat a {}, b {};
  fstat(fd, &a);
  fstat(pass, &b);
  EXPECT_EQ(a.st_ino, b.st_ino);
  close(fd);
  close(pass);
  close(sv[0]);
  close(sv[1]);
}

TEST(CniFraming, OversizedAndTruncatedMessagesAreErrors) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  uint32_t huge = htonl(64u << 20);
  ASSERT_EQ(write(sv[0], &huge, 4), 4);
  std::string got;
  int fd = -1;
  auto st = readFramed(sv[1], got, fd);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("too large"), std::string::npos);
  close(sv[0]);
  close(sv[1]);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  uint32_t ten = htonl(10);
  ASSERT_EQ(write(sv[0], &ten, 4), 4);
  ASSERT_EQ(write(sv[0], "abc", 3), 3);
  close(sv[0]);
  EXPECT_FALSE(readFramed(sv[1], got, fd).ok());
  close(sv[1]);
}

}  // namespace
}  // namespace meshlet

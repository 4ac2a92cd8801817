// End-to-end: the real meshletd's readiness endpoint (what the DaemonSet's readinessProbe
// asks): 503 with the reason while no configuration has been applied, 200 once one is, closed
// when the agent stops.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "tests/lib/e2e_util.h"
#include "tests/lib/sandbox.h"

namespace fs = std::filesystem;

namespace meshlet {
namespace {

using testing::run;
using testing::waitFor;
using testing::writeFile;

// GET /healthz/ready on 127.0.0.1:port: "<code> <body>", or "" when nothing answers.
std::string probe(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return "";
  }
  std::string req =
      "GET /healthz/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe/1.31\r\n\r\n";
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (resp.rfind("HTTP/1.1 ", 0) != 0 || resp.size() < 12) {
    return resp.empty() ? "" : "bad: " + resp;
  }
  auto body = resp.find("\r\n\r\n");
  return resp.substr(9, 3) + " " + (body == std::string::npos ? "" : resp.substr(body + 4));
}

TEST(ReadinessE2E, NotReadyUntilConfiguredThenReadyThenClosedOnStop) {
  std::string reason = testing::kernelTestsUnavailable();
  if (!reason.empty()) GTEST_SKIP() << "end-to-end tests cannot run here: " << reason;
  testing::Sandbox sb;
  std::string dir = "/tmp/meshlet-test-ready-" + sb.id();
  fs::create_directories(dir + "/config");
  // Not YAML: rejected, so no generation is applied.
  writeFile(dir + "/config/00-bad.yaml", "kind: Namespace\nmetadata: {name: [unclosed\n");

  pid_t pid = testing::spawnAgent(MESHLETD_BIN, dir, sb.cgroup(), sb.bpffs());
  ASSERT_GT(pid, 0);
  // The agent was given --readiness-addr 127.0.0.1:0 and says which port it got.
  int port = 0;
  std::regex re("readiness on 127\\.0\\.0\\.1:0 \\(port ([0-9]+)\\)");
  waitFor(
      [&] {
        std::smatch m;
        std::string log = run("cat " + dir + "/meshletd.log").out;
        if (std::regex_search(log, m, re)) port = std::stoi(m[1]);
        return port > 0;
      },
      10000);
  ASSERT_GT(port, 0) << run("cat " + dir + "/meshletd.log").out;

  std::string answer;
  EXPECT_TRUE(waitFor(
      [&] {
        answer = probe(port);
        return answer.find("configuration rejected") != std::string::npos;
      },
      5000));
  EXPECT_EQ(answer.rfind("503 not ready: ", 0), 0u) << answer;

  fs::remove(dir + "/config/00-bad.yaml");
  writeFile(dir + "/config/00-ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ready\n");
  EXPECT_TRUE(waitFor([&] { return (answer = probe(port)) == "200 ready\n"; }, 5000)) << answer;

  // Other paths are not the probe.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::string bad = "GET /metrics HTTP/1.1\r\n\r\n";
  send(fd, bad.data(), bad.size(), MSG_NOSIGNAL);
  char buf[256] = {};
  pollfd p{fd, POLLIN, 0};
  poll(&p, 1, 2000);
  ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  EXPECT_GT(n, 0);
  EXPECT_EQ(std::string(buf).rfind("HTTP/1.1 404", 0), 0u) << buf;

  testing::stopAgent(pid);
  EXPECT_EQ(probe(port), "") << "the readiness port stays open after the agent stopped";
  run(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + sb.bpffs());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace meshlet

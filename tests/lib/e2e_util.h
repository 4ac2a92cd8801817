#pragma once
// Small helpers shared by the end-to-end tests.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace meshlet::testing {

struct Cmd {
  int code = -1;
  std::string out;  // stdout and stderr together
};

// Runs a shell command and captures its output.
inline Cmd run(const std::string& cmd) {
  Cmd c;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return c;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) c.out.append(buf, n);
  int rc = pclose(p);
  c.code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  return c;
}

// Writes a file whole: a temporary file renamed over the path, so an agent watching the
// directory never reads half of it.
inline void writeFile(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << text;
  }
  std::rename(tmp.c_str(), path.c_str());
}

// Polls pred every 50 ms until it holds or timeout_ms passes; returns its last value.
inline bool waitFor(const std::function<bool()>& pred, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// What `promtool check metrics` finds wrong in the agent's scrape at 127.0.0.1:port: "" when
// it parses and lints clean. The one lint complaint tolerated is the unit of Istio's standard
// histogram istio_request_duration_milliseconds, whose name is the contract dashboards use.
inline std::string promtoolProblems(int port) {
  Cmd check =
      run("curl -s http://127.0.0.1:" + std::to_string(port) + "/metrics | promtool check metrics");
  if (check.code == 0) return "";
  std::string lint = check.out;
  const std::string istio_unit =
      "istio_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\"";
  if (size_t p = lint.find(istio_unit); p != std::string::npos) lint.erase(p, istio_unit.size());
  lint.erase(std::remove_if(lint.begin(), lint.end(), [](char c) { return std::isspace(c); }),
             lint.end());
  // Exit 3 is a lint finding, 1 a parse error.
  return check.code == 3 && lint.empty()
             ? ""
             : "promtool exit " + std::to_string(check.code) + ": " + check.out;
}

// The cgroup (under the attach point) the test agents run in; Sandbox removes it.
inline constexpr const char* kAgentCgroup = "meshletd";

// Starts `meshletd` for a test: everything it makes (sockets, state, log, CA) lives under
// `dir`, it attaches at the sandbox's cgroup and pins under its bpffs dir; `extra` flags are
// appended. Returns the agent's PID.
inline pid_t spawnAgent(const std::string& bin, const std::string& dir, const std::string& cgroup,
                        const std::string& bpffs, const std::vector<std::string>& extra = {}) {
  // clang-format off
  std::vector<std::string> args = {
      bin,
      "--config-dir", dir + "/config",
      "--node-name", "e2e-node",
      "--cgroup", cgroup,
      "--bpffs", bpffs,
      "--admin-socket", dir + "/admin.sock",
      "--metrics-addr", "127.0.0.1:0",
      "--readiness-addr", "127.0.0.1:0",
      "--cni-socket", dir + "/cni.sock",
      "--state-dir", dir + "/state",
      "--ca-dir", dir + "/ca"};
  // clang-format on
  // A flag in `extra` that is set above replaces that value (the agent refuses a flag twice).
  for (size_t i = 0; i < extra.size(); ++i) {
    auto it = std::find(args.begin() + 1, args.end(), extra[i]);
    if (it != args.end() && extra[i].rfind("--", 0) == 0 && i + 1 < extra.size() &&
        it + 1 != args.end()) {
      *(it + 1) = extra[++i];
    } else {
      args.push_back(extra[i]);
    }
  }
  // The agent lives inside the subtree it attaches to, as on a real node (where it attaches at
  // the root cgroup): its own in-pod sockets are then seen by the datapath, which must leave
  // them alone (SO_MARK) and splice the tunnel's loopback leg.
  std::string agent_cgroup = cgroup + "/" + kAgentCgroup;
  mkdir(agent_cgroup.c_str(), 0755);
  pid_t pid = fork();
  if (pid == 0) {
    FILE* procs = fopen((agent_cgroup + "/cgroup.procs").c_str(), "w");
    if (procs) {
      fprintf(procs, "%d\n", getpid());
      fclose(procs);
    }
    int fd = open((dir + "/meshletd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// SIGTERM (the agent leaves its datapath pinned) and reap; pid becomes -1.
inline void stopAgent(pid_t& pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  pid = -1;
}

inline int count(const std::string& hay, const std::string& needle) {
  int c = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++c;
  return c;
}

}  // namespace meshlet::testing

#pragma once
// Small helpers shared by the end-to-end tests.
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

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

// Polls pred every 50 ms until it holds or timeout_ms passes; returns its last value.
inline bool waitFor(const std::function<bool()>& pred, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

inline int count(const std::string& hay, const std::string& needle) {
  int c = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++c;
  return c;
}

}  // namespace meshlet::testing

// Helpers for the CNI tests: run the built meshlet-cni binary the way a container runtime does,
// and a fake agent on a temp unix socket that speaks the real framing.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cni.pb.h"

namespace meshlet::cni::testing {

struct RunResult {
  bool exited = false;  // false: killed by a signal (a crash)
  int exit_code = -1;
  std::string out;
  std::string err;
};

// fork/exec of `binary args...` with exactly `env` as its environment and `stdin_data` on stdin.
inline RunResult RunBinary(const std::string& binary, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env,
                           const std::string& stdin_data);

// /tmp/meshlet-test-cni-<pid>/<name>, created empty; removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& name);
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct ReceivedRequest {
  Request request;
  bool got_fd = false;
  struct stat fd_stat {};
};

class FakeAgent {
 public:
  enum class Mode { kAnswer, kCloseWithoutAnswer, kHang, kGarbage };

  explicit FakeAgent(std::string socket_path);
  ~FakeAgent();
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  void Answer(Response::Status status, std::string message = "");
  void SetMode(Mode mode) { mode_ = mode; }
  std::vector<ReceivedRequest> requests();

 private:
  void Serve();
  void Handle(int conn);

  std::string path_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<Mode> mode_{Mode::kAnswer};
  std::mutex mu_;
  Response response_;
  std::vector<ReceivedRequest> requests_;
  std::thread thread_;
};

// Reads a whole file ("" when missing).
inline std::string ReadFileOrEmpty(const std::string& path);
inline void WriteFile(const std::string& path, const std::string& content);

// ---- implementation (header-only: the test glob compiles only *_test.cc) ----

inline RunResult RunBinary(const std::string& binary, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env,
                           const std::string& stdin_data) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    return {};
  }
  std::vector<std::string> argv_s = {binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (std::string& a : argv_s) argv.push_back(a.data());
  for (std::string& e : env_s) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execve(binary.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  signal(SIGPIPE, SIG_IGN);
  size_t written = 0;
  while (written < stdin_data.size()) {
    ssize_t n = write(in[1], stdin_data.data() + written, stdin_data.size() - written);
    if (n <= 0) break;  // the plugin may not read stdin at all
    written += static_cast<size_t>(n);
  }
  close(in[1]);
  RunResult result;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 30000) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exited = WIFEXITED(status);
  result.exit_code = result.exited ? WEXITSTATUS(status) : -1;
  return result;
}

inline TempDir::TempDir(const std::string& name) {
  path_ = "/tmp/meshlet-test-cni-" + std::to_string(getpid()) + "/" + name;
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

inline TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  std::filesystem::remove(std::filesystem::path(path_).parent_path(), ec);  // if empty
}

inline FakeAgent::FakeAgent(std::string socket_path) : path_(std::move(socket_path)) {
  response_.set_status(Response::ENROLLED);
  unlink(path_.c_str());
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 16) != 0 || pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    std::abort();
  }
  thread_ = std::thread([this] { Serve(); });
}

inline FakeAgent::~FakeAgent() {
  if (write(stop_pipe_[1], "x", 1) != 1) std::abort();
  thread_.join();
  close(listen_fd_);
  close(stop_pipe_[0]);
  close(stop_pipe_[1]);
  unlink(path_.c_str());
}

inline void FakeAgent::Answer(Response::Status status, std::string message) {
  std::lock_guard<std::mutex> lock(mu_);
  response_.set_status(status);
  response_.set_message(std::move(message));
  mode_ = Mode::kAnswer;
}

inline std::vector<ReceivedRequest> FakeAgent::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

inline void FakeAgent::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) return;
    int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    Handle(conn);
    close(conn);
  }
}

// Reads the framed request the way the agent must: recvmsg() with room for one SCM_RIGHTS fd
// on the read that returns the first bytes.
inline void FakeAgent::Handle(int conn) {
  ReceivedRequest received;
  std::string bytes;
  bool first = true;
  auto wanted = [&bytes]() -> size_t {
    if (bytes.size() < 4) return 4;
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    return 4 + ((size_t{b[0]} << 24) | (size_t{b[1]} << 16) | (size_t{b[2]} << 8) | b[3]);
  };
  while (bytes.size() < wanted()) {
    pollfd p{conn, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return;
    char buf[4096];
    iovec iov{buf, first ? 4 : sizeof(buf)};  // the fd rides on the length prefix
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0) return;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
        received.got_fd = fstat(fd, &received.fd_stat) == 0;
        close(fd);
      }
    }
    first = false;
    bytes.append(buf, static_cast<size_t>(n));
  }
  received.request.ParseFromString(bytes.substr(4));
  Response response;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(received);
    response = response_;
  }
  Mode mode = mode_;
  if (mode == Mode::kCloseWithoutAnswer) return;
  if (mode == Mode::kHang) {  // until the plugin gives up and closes, or the test ends
    pollfd fds[2] = {{conn, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    poll(fds, 2, 30000);
    return;
  }
  std::string payload =
      mode == Mode::kGarbage ? std::string("\xff\xff\xff") : response.SerializeAsString();
  uint32_t len = static_cast<uint32_t>(payload.size());
  std::string frame = {char(len >> 24), char(len >> 16), char(len >> 8), char(len)};
  frame += payload;
  if (send(conn, frame.data(), frame.size(), MSG_NOSIGNAL) < 0) return;
}

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

}  // namespace meshlet::cni::testing

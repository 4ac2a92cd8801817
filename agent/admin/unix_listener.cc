#include "agent/admin/unix_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace meshlet {

Status UnixListener::start(const std::string& path, std::function<void(int)> on_client) {
  on_client_ = std::move(on_client);
  path_ = path;
  std::error_code ec;
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return Error("socket path is too long: " + path);
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Error::fromErrno("socket " + path, errno);
  ::unlink(path.c_str());  // a stale socket of a previous agent
  mode_t old = umask(0077);
  int rc = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc != 0) return Error::fromErrno("cannot bind socket " + path, errno);
  chmod(path.c_str(), 0600);
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    sock_dev_ = st.st_dev;
    sock_ino_ = st.st_ino;
  }
  if (listen(listen_fd_, 64) != 0) return Error::fromErrno("listen on " + path, errno);
  return thread_.start([this] { serve(); });
}

void UnixListener::stop() {
  thread_.stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  struct stat st {};
  // Another agent may have taken the path over since: leave its socket alone.
  if (!path_.empty() && stat(path_.c_str(), &st) == 0 && st.st_dev == sock_dev_ &&
      st.st_ino == sock_ino_) {
    ::unlink(path_.c_str());
  }
  path_.clear();
}

void UnixListener::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {thread_.wakeFd(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents & POLLIN) {
      int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        on_client_(c);
        ::close(c);
      }
    }
  }
}

}  // namespace meshlet

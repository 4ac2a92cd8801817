#pragma once
// A root-only unix socket that accepts connections on a thread of its own and hands each one
// to a callback, one at a time. Shared by the admin API and the CNI socket.
#include <sys/types.h>

#include <functional>
#include <string>

#include "agent/common/status.h"
#include "agent/common/stoppable_thread.h"

namespace meshlet {

class UnixListener {
 public:
  UnixListener() = default;
  ~UnixListener() { stop(); }
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  // Binds `path` (creating its directory, replacing a stale socket, mode 0600) and serves:
  // on_client(fd) runs on the listener's thread for each connection; the fd is closed after.
  Status start(const std::string& path, std::function<void(int)> on_client);
  // Stops serving and removes the socket file, unless another process has taken the path over.
  void stop();

 private:
  void serve();

  std::function<void(int)> on_client_;
  std::string path_;
  int listen_fd_ = -1;
  dev_t sock_dev_ = 0;
  ino_t sock_ino_ = 0;
  StoppableThread thread_;
};

}  // namespace meshlet

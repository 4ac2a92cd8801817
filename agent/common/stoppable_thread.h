#pragma once
// A thread that serves until stop(): it polls wakeFd() next to its own fds and returns when that
// becomes readable. Shared by the listeners on their own threads (admin, CNI, readiness).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <thread>

#include "agent/common/status.h"

namespace meshlet {

class StoppableThread {
 public:
  StoppableThread() = default;
  ~StoppableThread() { stop(); }
  StoppableThread(const StoppableThread&) = delete;
  StoppableThread& operator=(const StoppableThread&) = delete;

  Status start(std::function<void()> body) {
    if (pipe2(wake_, O_CLOEXEC) != 0) return Error::fromErrno("pipe", errno);
    thread_ = std::thread(std::move(body));
    return Status::Ok();
  }
  // Readable once stop() was called: the body polls it and returns.
  int wakeFd() const { return wake_[0]; }
  // Wakes the body, waits for it to return. Safe to call twice.
  void stop() {
    if (wake_[1] >= 0) {
      char c = 1;
      if (write(wake_[1], &c, 1) < 0) {
        // The body also returns when the pipe is closed below.
      }
    }
    if (thread_.joinable()) thread_.join();
    for (int* fd : {&wake_[0], &wake_[1]}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }

 private:
  int wake_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace meshlet

#pragma once
// The proxy's event loop: epoll over non-blocking fds, one thread, handlers as callbacks. A
// handler may add or remove any fd, its own included, while it runs.
#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "agent/common/status.h"

namespace meshlet::proxy {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;  // EPOLLIN / EPOLLOUT / EPOLLERR ...

  static Result<std::unique_ptr<EventLoop>> make();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  Status add(int fd, uint32_t events, Handler handler);
  // add(), or for an fd already in the loop: a new handler, and new events only if they differ
  // (no syscall when they do not: a pooled connection changes hands without epoll_ctl).
  Status set(int fd, uint32_t events, Handler handler);
  Status modify(int fd, uint32_t events);
  // Forgets fd (does not close it).
  void remove(int fd);
  // Runs `fn` after the handlers of the current wakeup (for teardown that must not happen
  // inside a handler of the object being torn down).
  void defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }
  // Waits up to timeout_ms for events and dispatches them; then runs deferred work.
  Status runOnce(int timeout_ms);
  size_t size() const { return count_; }

 private:
  EventLoop() = default;
  struct Slot {
    std::shared_ptr<Handler> handler;  // null: fd not in the loop
    uint32_t events = 0;               // what fd is registered for
  };
  Slot* slot(int fd);
  int epfd_ = -1;
  std::vector<Slot> slots_;  // by fd
  size_t count_ = 0;
  std::vector<std::function<void()>> deferred_;
};

// Sets O_NONBLOCK.
Status setNonBlocking(int fd);
// Makes the coming close() of a TCP socket send a reset (SO_LINGER 0), not an orderly end: the
// peer learns at once that the exchange failed.
void setResetOnClose(int fd);
// setResetOnClose, then close (nothing for fd < 0).
void closeWithReset(int fd);
// The socket's pending error (SO_ERROR, cleared by reading it): how a non-blocking connect
// ended once the socket is writable, 0 when it connected.
int socketError(int fd);

}  // namespace meshlet::proxy

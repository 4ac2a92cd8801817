#include "agent/proxy/event_loop.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace meshlet::proxy {

Result<std::unique_ptr<EventLoop>> EventLoop::make() {
  std::unique_ptr<EventLoop> loop(new EventLoop());
  loop->epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd_ < 0) return Error::fromErrno("epoll_create1", errno);
  return loop;
}

EventLoop::~EventLoop() {
  if (epfd_ >= 0) close(epfd_);
}

EventLoop::Slot* EventLoop::slot(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= slots_.size() || !slots_[fd].handler) return nullptr;
  return &slots_[fd];
}

Status EventLoop::add(int fd, uint32_t events, Handler handler) {
  if (fd < 0) return Error("epoll add: bad fd");
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return Error::fromErrno("epoll add", errno);
  if (static_cast<size_t>(fd) >= slots_.size()) slots_.resize(static_cast<size_t>(fd) + 64);
  slots_[fd] = Slot{std::make_shared<Handler>(std::move(handler)), events};
  ++count_;
  return Status::Ok();
}

Status EventLoop::set(int fd, uint32_t events, Handler handler) {
  Slot* s = slot(fd);
  if (!s) return add(fd, events, std::move(handler));
  if (s->handler.use_count() == 1) {
    *s->handler = std::move(handler);  // not running: replaced in place, no allocation
  } else {
    s->handler = std::make_shared<Handler>(std::move(handler));  // it is running: keep it alive
  }
  return modify(fd, events);
}

Status EventLoop::modify(int fd, uint32_t events) {
  Slot* s = slot(fd);
  if (s && s->events == events) return Status::Ok();
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) return Error::fromErrno("epoll mod", errno);
  if (s) s->events = events;
  return Status::Ok();
}

void EventLoop::remove(int fd) {
  Slot* s = slot(fd);
  if (!s) return;
  *s = Slot{};
  --count_;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

Status EventLoop::runOnce(int timeout_ms) {
  epoll_event events[64];
  int n = epoll_wait(epfd_, events, 64, timeout_ms);
  if (n < 0 && errno != EINTR) return Error::fromErrno("epoll_wait", errno);
  for (int i = 0; i < n; ++i) {
    // Looked up per event: an earlier handler may have removed (or replaced) this fd.
    Slot* s = slot(events[i].data.fd);
    if (!s) continue;
    std::shared_ptr<Handler> h = s->handler;  // alive even if the handler removes itself
    (*h)(events[i].events);
  }
  auto work = std::move(deferred_);
  deferred_.clear();
  for (auto& fn : work) fn();
  return Status::Ok();
}

Status setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return Error::fromErrno("O_NONBLOCK", errno);
  return Status::Ok();
}

void setResetOnClose(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

int socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  return err;
}

void closeWithReset(int fd) {
  if (fd < 0) return;
  setResetOnClose(fd);
  close(fd);
}

}  // namespace meshlet::proxy

// The proxy's event loop: handlers by fd, replaced or removed from inside a handler.
#include "agent/proxy/event_loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace meshlet::proxy {
namespace {

struct Pair {
  int fd[2] = {-1, -1};
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0); }
  ~Pair() {
    for (int f : fd) close(f);
  }
};

std::unique_ptr<EventLoop> makeLoop() {
  auto loop = EventLoop::make();
  EXPECT_TRUE(loop.ok());
  return std::move(*loop);
}

TEST(EventLoop, DispatchesReadinessToTheFdsHandler) {
  auto loop = makeLoop();
  Pair a, b;
  std::vector<std::string> seen;
  ASSERT_TRUE(loop->add(a.fd[0], EPOLLIN, [&](uint32_t) { seen.push_back("a"); }).ok());
  ASSERT_TRUE(loop->add(b.fd[0], EPOLLIN, [&](uint32_t) { seen.push_back("b"); }).ok());
  EXPECT_EQ(loop->size(), 2u);
  ASSERT_EQ(write(b.fd[1], "x", 1), 1);
  ASSERT_TRUE(loop->runOnce(1000).ok());
  EXPECT_EQ(seen, std::vector<std::string>{"b"});
  // Not readable any more once modified to EPOLLOUT only: a writable socket reports EPOLLOUT.
  uint32_t got = 0;
  ASSERT_TRUE(loop->set(b.fd[0], EPOLLOUT, [&](uint32_t e) { got = e; }).ok());
  ASSERT_TRUE(loop->runOnce(1000).ok());
  EXPECT_EQ(got & (EPOLLIN | EPOLLOUT), static_cast<uint32_t>(EPOLLOUT));
  EXPECT_EQ(seen.size(), 1u);
}

TEST(EventLoop, AHandlerMayReplaceOrRemoveItselfWhileItRuns) {
  auto loop = makeLoop();
  Pair p;
  int first = 0, second = 0;
  std::string captured = "kept alive";  // read after the replacement, through the old closure
  std::string after;
  ASSERT_TRUE(loop->add(p.fd[0], EPOLLIN,
                        [&, captured](uint32_t) {
                          ++first;
                          ASSERT_TRUE(loop->set(p.fd[0], EPOLLIN,
                                                [&](uint32_t) {
                                                  ++second;
                                                  loop->remove(p.fd[0]);
                                                })
                                          .ok());
                          after = captured;  // the running closure is still valid
                        })
                  .ok());
  ASSERT_EQ(write(p.fd[1], "x", 1), 1);
  ASSERT_TRUE(loop->runOnce(1000).ok());
  EXPECT_EQ(after, "kept alive");
  ASSERT_TRUE(loop->runOnce(1000).ok());  // still readable: the new handler runs, removes itself
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  EXPECT_EQ(loop->size(), 0u);
  ASSERT_TRUE(loop->runOnce(50).ok());  // removed: nothing more
  EXPECT_EQ(second, 1);
  // remove() of an unknown fd, or twice, is harmless; the fd can be added again.
  loop->remove(p.fd[0]);
  loop->remove(12345);
  ASSERT_TRUE(loop->add(p.fd[0], EPOLLIN, [&](uint32_t) { ++first; }).ok());
  ASSERT_TRUE(loop->runOnce(1000).ok());
  EXPECT_EQ(first, 2);
}

TEST(EventLoop, SetOnANewFdAddsItAndDeferredWorkRunsAfterTheHandlers) {
  auto loop = makeLoop();
  Pair p;
  std::vector<std::string> order;
  ASSERT_TRUE(loop->set(p.fd[0], EPOLLIN,
                        [&](uint32_t) {
                          order.push_back("handler");
                          loop->defer([&] { order.push_back("deferred"); });
                        })
                  .ok());
  EXPECT_EQ(loop->size(), 1u);
  ASSERT_EQ(write(p.fd[1], "x", 1), 1);
  ASSERT_TRUE(loop->runOnce(1000).ok());
  EXPECT_EQ(order, (std::vector<std::string>{"handler", "deferred"}));
  EXPECT_FALSE(loop->add(-1, EPOLLIN, [](uint32_t) {}).ok());
  EXPECT_FALSE(loop->modify(9999, EPOLLIN).ok());  // not in the loop (and not an fd)
}

}  // namespace
}  // namespace meshlet::proxy

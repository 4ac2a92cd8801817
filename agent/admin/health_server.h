#pragma once
// The readiness endpoint (Istio's port 15021): `GET /healthz/ready` answers 200 "ready" once the
// datapath is attached and the first configuration generation is applied, 503 with the reason
// before that. A tiny HTTP/1.x server on a thread of its own with a non-blocking poll loop:
// bounded request heads, a deadline per connection, a cap on open connections, so neither a
// slow client nor a flood can block it, and it never touches the agent's loop thread (the loop
// only flips the ready flag).
#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "agent/common/status.h"
#include "agent/common/stoppable_thread.h"

namespace meshlet {

inline constexpr std::string_view kReadyPath = "/healthz/ready";
inline constexpr size_t kHealthMaxRequestBytes = 8192;  // request line + headers

struct HealthReply {
  HealthReply() = default;
  HealthReply(int c, std::string b, bool head = false)
      : code(c), body(std::move(b)), head_only(head) {}
  int code = 200;
  std::string body;
  bool head_only = false;  // HEAD: headers without the body
};

// Where a request head stands: more bytes needed, complete (ends with an empty line), or too
// large to be a probe. Pure.
enum class HeadState { kIncomplete, kComplete, kTooLarge };
HeadState requestHeadState(std::string_view data);

// The answer to one complete request head. Pure: 400 for anything that is not a well-formed
// HTTP/1.0 or 1.1 request, 405 for methods other than GET/HEAD, 404 for other paths, else 200
// "ready" or 503 "not ready: <reason>".
HealthReply answerHealthRequest(std::string_view head, bool ready, const std::string& reason);

// The reply as bytes on the wire (HTTP/1.1, Connection: close).
std::string formatHealthReply(const HealthReply& reply);

class HealthServer {
 public:
  HealthServer() = default;
  ~HealthServer() { stop(); }
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // Binds HOST:PORT (HOST a numeric address, IPv6 in brackets; port 0 picks a free port, see
  // port()) and serves on a thread. Starts not ready.
  Status start(const std::string& addr);
  // Stops serving and closes the port. Safe to call twice.
  void stop();
  int port() const { return port_; }

  // Thread-safe; called from the agent's loop thread.
  void setReady() { setState(true, ""); }
  void setNotReady(const std::string& reason) { setState(false, reason); }
  bool ready() const { return ready_.load(); }

 private:
  void setState(bool ready, const std::string& reason);
  void serve();

  int listen_fd_ = -1;
  int port_ = 0;
  StoppableThread thread_;
  std::atomic<bool> ready_{false};
  mutable std::mutex mu_;
  std::string reason_ = "the agent is starting";
};

}  // namespace meshlet

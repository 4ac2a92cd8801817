#pragma once
// The admin API server: HTTP/1.0 over a root-only unix socket, one request per connection,
// JSON answers (see docs/ADMIN_API.md). Runs on its own thread, off the datapath work.
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "agent/admin/unix_listener.h"
#include "agent/common/status.h"

namespace meshlet {

struct AdminRequest {
  std::string method;
  std::string path;                          // without the query
  std::map<std::string, std::string> query;  // decoded
};

struct AdminResponse {
  int code = 200;
  std::string body;  // JSON
};

using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

// Parses "GET /v1/x?a=b HTTP/1.0\r\n..." (only the request line matters). Pure.
Result<AdminRequest> parseAdminRequest(const std::string& head);

class AdminServer {
 public:
  explicit AdminServer(AdminHandler handler) : handler_(std::move(handler)) {}
  ~AdminServer() { stop(); }
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds the socket (replacing a stale one, creating its directory, mode 0600) and starts
  // serving on a thread.
  Status start(const std::string& socket_path) {
    return listener_.start(socket_path, [this](int fd) { handleClient(fd); });
  }
  // Stops serving and removes the socket file (unless another agent has taken it over).
  void stop() { listener_.stop(); }

 private:
  void handleClient(int fd);

  AdminHandler handler_;
  UnixListener listener_;
};

}  // namespace meshlet

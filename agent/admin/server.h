#pragma once
// The admin API server: HTTP/1.0 over a root-only unix socket, one request per connection,
// JSON answers (see docs/ADMIN_API.md). Runs on its own thread, off the datapath work.
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>

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
  Status start(const std::string& socket_path);
  // Stops serving and removes the socket file.
  void stop();

 private:
  void serve();
  void handleClient(int fd);

  AdminHandler handler_;
  std::string path_;
  int listen_fd_ = -1;
  dev_t sock_dev_ = 0;  // identity of the socket file we bound, so stop() removes only ours
  ino_t sock_ino_ = 0;
  int wake_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace meshlet

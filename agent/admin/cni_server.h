#pragma once
// The agent's end of the CNI plugin's unix socket: one framed protobuf Request (4-byte
// big-endian length + bytes, the pod's netns fd as SCM_RIGHTS), one framed Response.
#include <functional>
#include <string>
#include <thread>

#include "agent/admin/unix_listener.h"
#include "agent/common/status.h"
#include "cni.pb.h"

namespace meshlet {

// Handles one request; `netns_fd` is -1 when none came (the handler must not close it).
using CniHandler = std::function<cni::Response(const cni::Request&, int netns_fd)>;

class CniServer {
 public:
  explicit CniServer(CniHandler handler) : handler_(std::move(handler)) {}
  ~CniServer() { stop(); }
  CniServer(const CniServer&) = delete;
  CniServer& operator=(const CniServer&) = delete;

  Status start(const std::string& socket_path) {
    return listener_.start(socket_path, [this](int fd) { handleClient(fd); });
  }
  void stop() { listener_.stop(); }

 private:
  void handleClient(int fd);

  CniHandler handler_;
  UnixListener listener_;
};

// Reads one framed message (and at most one passed fd) from a connected socket. Exposed for
// tests. max_bytes bounds the message.
Status readFramed(int sock, std::string& body, int& passed_fd, size_t max_bytes = 1 << 20);
Status writeFramed(int sock, const std::string& body);

}  // namespace meshlet

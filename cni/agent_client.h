// The plugin's side of the agent protocol: one framed Request (4-byte big-endian length, then the
// serialized message; the netns fd as SCM_RIGHTS on the same sendmsg as the length prefix), one
// framed Response back, all within one deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "cni.pb.h"

namespace meshlet::cni {

inline constexpr uint32_t kMaxFrameBytes = 1 << 20;

// The 4-byte big-endian length prefix followed by payload.
std::string Frame(std::string_view payload);

// Reads the big-endian length from the first 4 bytes of header.
uint32_t FrameLength(const unsigned char header[4]);

struct ExchangeResult {
  bool ok = false;
  std::string error;  // why the exchange failed (connect/send/receive/timeout/bad response)
  Response response;
};

// Connects to socket_path, sends request (with netns_fd attached when it is >= 0; the caller sets
// request.netns_fd_attached accordingly), and reads the response, all within timeout.
ExchangeResult Exchange(const std::string& socket_path, const Request& request, int netns_fd,
                        std::chrono::milliseconds timeout);

}  // namespace meshlet::cni

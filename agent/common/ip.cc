#include "agent/common/ip.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace meshlet {

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  IpAddr a;
  if (s.find(':') == std::string::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, s.c_str(), &v4) != 1) return std::nullopt;
    a.family = IpFamily::kV4;
    std::memcpy(a.bytes.data(), &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) != 1) return std::nullopt;
  a.family = IpFamily::kV6;
  std::memcpy(a.bytes.data(), &v6, 16);
  return a;
}

std::string IpAddr::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (isV4()) {
    inet_ntop(AF_INET, bytes.data(), buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  }
  return buf;
}

std::array<uint32_t, 4> IpAddr::words() const {
  std::array<uint32_t, 4> w{};
  std::memcpy(w.data(), bytes.data(), 16);
  return w;
}

IpAddr IpAddr::fromWords(const uint32_t words[4], uint8_t af) {
  IpAddr a;
  a.family = af == AF_INET6 ? IpFamily::kV6 : IpFamily::kV4;
  std::memcpy(a.bytes.data(), words, 16);
  if (a.isV4()) std::memset(a.bytes.data() + 4, 0, 12);
  return a;
}

std::string endpointString(const IpAddr& ip, int port) {
  return ip.isV4() ? ip.toString() + ":" + std::to_string(port)
                   : "[" + ip.toString() + "]:" + std::to_string(port);
}

}  // namespace meshlet

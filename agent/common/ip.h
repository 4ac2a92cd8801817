#pragma once
// IPv4/IPv6 address value type; parsing never throws.
#include <endian.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace meshlet {

enum class IpFamily : uint8_t { kV4 = 4, kV6 = 6 };

struct IpAddr {
  IpFamily family = IpFamily::kV4;
  // IPv4: bytes[0..3] in network order, the rest zero. IPv6: all 16 bytes.
  std::array<uint8_t, 16> bytes{};

  static std::optional<IpAddr> parse(std::string_view text);
  std::string toString() const;
  bool isV4() const { return family == IpFamily::kV4; }
  // The four 32-bit words as stored in BPF maps (network byte order per word).
  std::array<uint32_t, 4> words() const;
  static IpAddr fromWords(const uint32_t words[4], uint8_t af);
  bool operator==(const IpAddr& o) const { return family == o.family && bytes == o.bytes; }
  bool operator!=(const IpAddr& o) const { return !(*this == o); }
  // Family, then the address as a number (the bytes in order): two 64-bit compares, as
  // 100 000s of backends are sorted by address on every sync.
  bool operator<(const IpAddr& o) const {
    if (family != o.family) return family < o.family;
    uint64_t a[2], b[2];
    std::memcpy(a, bytes.data(), sizeof(a));
    std::memcpy(b, o.bytes.data(), sizeof(b));
    for (int i = 0; i < 2; ++i) {
      if (a[i] != b[i]) return be64toh(a[i]) < be64toh(b[i]);
    }
    return false;
  }
};

// "ip:port", or "[ip]:port" for IPv6: how endpoints are shown, and the L7 proxy's key for one.
std::string endpointString(const IpAddr& ip, int port);

}  // namespace meshlet

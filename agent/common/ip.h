#pragma once
// IPv4/IPv6 address value type; parsing never throws.
#include <array>
#include <cstdint>
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
  bool operator<(const IpAddr& o) const {
    return family != o.family ? family < o.family : bytes < o.bytes;
  }
};

}  // namespace meshlet

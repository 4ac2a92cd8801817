// A small JSON-aware scanner that finds the byte spans of values in a JSON text, so a value can
// be copied or edited without re-serializing (and so reformatting) the rest of the document.
// It expects text that a real parser already accepted; on anything else it throws ScanError.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace meshlet::cni {

class ScanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// [begin, end) byte offsets into the scanned text.
struct Span {
  size_t begin = 0;
  size_t end = 0;
  size_t size() const { return end - begin; }
};

struct Member {
  std::string key;  // decoded (escapes resolved)
  Span value;
};

// Index of the first non-whitespace byte at or after pos (text.size() if none).
size_t SkipWhitespace(std::string_view text, size_t pos);

// Span of the JSON value starting at pos (leading whitespace skipped).
Span ValueAt(std::string_view text, size_t pos);

// Span of the document's top-level value; throws if anything but whitespace follows it.
Span DocumentValue(std::string_view text);

// The members of the object at `object`, in text order.
std::vector<Member> ObjectMembers(std::string_view text, Span object);

// The elements of the array at `array`, in text order.
std::vector<Span> ArrayElements(std::string_view text, Span array);

// The value of the LAST member named key of the object at `object` (the one a parser keeps);
// found is false when there is no such member.
struct FoundMember {
  bool found = false;
  Span value;
};
FoundMember FindMember(std::string_view text, Span object, std::string_view key);

}  // namespace meshlet::cni

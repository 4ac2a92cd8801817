#pragma once
// CompactString: an immutable string behind one pointer, for a text that every object of a kind
// carries but that is unique to it or often absent (an object's uid): 8 bytes when empty and one
// block of the text's size otherwise, where a std::string is 32 bytes, plus a heap block beyond 15
// characters. Over 10 000s of objects that adds up. Not interned (see Name for repeated texts).
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace meshlet {

class CompactString {
 public:
  CompactString() = default;
  CompactString(std::string_view text) { assign(text); }  // NOLINT: a string type
  CompactString(const std::string& text) : CompactString(std::string_view(text)) {}  // NOLINT
  CompactString(const char* text) : CompactString(std::string_view(text)) {}         // NOLINT
  CompactString(const CompactString& o) { assign(o.view()); }
  CompactString(CompactString&&) noexcept = default;
  CompactString& operator=(const CompactString& o) {
    if (this != &o) assign(o.view());
    return *this;
  }
  CompactString& operator=(CompactString&&) noexcept = default;

  std::string_view view() const {
    if (!p_) return {};
    uint32_t size;
    std::memcpy(&size, p_.get(), sizeof(size));
    return std::string_view(p_.get() + sizeof(size), size);
  }
  operator std::string_view() const { return view(); }  // NOLINT: reads as a string
  std::string str() const { return std::string(view()); }
  bool empty() const { return p_ == nullptr; }
  size_t size() const { return view().size(); }

  friend bool operator==(const CompactString& a, const CompactString& b) {
    return a.view() == b.view();
  }
  friend bool operator==(const CompactString& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const CompactString& a, const std::string& b) { return a.view() == b; }
  friend bool operator==(const CompactString& a, const char* b) { return a.view() == b; }
  friend std::ostream& operator<<(std::ostream& os, const CompactString& s) {
    return os << s.view();
  }

 private:
  // The size (4 bytes, unaligned) then the text, in one block; null when empty.
  void assign(std::string_view text) {
    if (text.empty()) {
      p_.reset();
      return;
    }
    const auto size = static_cast<uint32_t>(text.size());
    std::unique_ptr<char[]> p(new char[sizeof(size) + size]);
    std::memcpy(p.get(), &size, sizeof(size));
    std::memcpy(p.get() + sizeof(size), text.data(), size);
    p_ = std::move(p);
  }

  std::unique_ptr<char[]> p_;
};

}  // namespace meshlet

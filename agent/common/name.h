#pragma once
// Name: an immutable, interned string. Every holder of the same text shares one copy, and a
// Name is one pointer, so the names that repeat across 100 000s of records (an endpoint's
// node, its target pod) cost 8 bytes each instead of a std::string apiece. A copy is lost
// when its last holder goes. Safe to create, copy and drop from any thread.
#include <atomic>
#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>

namespace meshlet {

class Name {
 public:
  Name() = default;             // ""
  Name(std::string_view text);  // NOLINT(google-explicit-constructor): a string type
  Name(const std::string& text) : Name(std::string_view(text)) {}  // NOLINT
  Name(const char* text) : Name(std::string_view(text)) {}         // NOLINT
  Name(const Name& o) : rep_(o.rep_) { retain(); }
  Name(Name&& o) noexcept : rep_(o.rep_) { o.rep_ = nullptr; }
  Name& operator=(const Name& o);
  Name& operator=(Name&& o) noexcept;
  ~Name() { release(); }

  const std::string& str() const;
  operator const std::string&() const { return str(); }  // NOLINT
  operator std::string_view() const { return str(); }    // NOLINT
  bool empty() const { return rep_ == nullptr; }
  size_t size() const { return str().size(); }

  // Interned: equal texts are the same pointer.
  friend bool operator==(const Name& a, const Name& b) { return a.rep_ == b.rep_; }
  friend bool operator!=(const Name& a, const Name& b) { return a.rep_ != b.rep_; }
  friend bool operator==(const Name& a, const std::string& b) { return a.str() == b; }
  friend bool operator!=(const Name& a, const std::string& b) { return a.str() != b; }
  friend bool operator==(const Name& a, const char* b) { return a.str() == b; }
  friend bool operator!=(const Name& a, const char* b) { return a.str() != b; }
  friend bool operator==(const Name& a, std::string_view b) { return a.str() == b; }
  friend bool operator!=(const Name& a, std::string_view b) { return a.str() != b; }
  friend bool operator<(const Name& a, const Name& b) { return a.str() < b.str(); }
  // Against a std::string without interning it: the (Name, Name) overload would convert it,
  // a lookup in the interning table under its lock on every comparison of a sort or search.
  friend bool operator<(const Name& a, const std::string& b) { return a.str() < b; }
  friend bool operator<(const std::string& a, const Name& b) { return a < b.str(); }
  friend std::ostream& operator<<(std::ostream& os, const Name& n) { return os << n.str(); }
  friend std::string operator+(const Name& a, const std::string& b) { return a.str() + b; }
  friend std::string operator+(const std::string& a, const Name& b) { return a + b.str(); }
  friend std::string operator+(const Name& a, const char* b) { return a.str() + b; }
  friend std::string operator+(const char* a, const Name& b) { return a + b.str(); }

  // Distinct texts alive in the process (tests and diagnostics).
  static size_t internedCount();

 private:
  // An element of the interning table (name.cc), which owns it: the table's node is the only
  // allocation a distinct text costs besides the text itself (if it is too long to be inline).
  struct Rep {
    explicit Rep(std::string_view t) : text(t) {}
    mutable std::atomic<uint32_t> refs{1};
    std::string text;
  };
  struct Table;
  void retain() {
    if (rep_) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release();

  const Rep* rep_ = nullptr;
};

}  // namespace meshlet

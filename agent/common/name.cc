#include "agent/common/name.h"

#include <mutex>
#include <unordered_map>

namespace meshlet {
namespace {

// The interning table. A Rep's count goes from 1 to 0 only under the table's lock, and the
// table hands out Reps only under it, so a Rep found in the table is never being freed.
struct Table {
  std::mutex mu;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  // Keyed by the Rep's own text (a view into it), mapped to the Rep.
  std::unordered_map<std::string_view, void*, Hash, Eq> reps;
};

Table& table() {
  static Table* t = new Table;  // never destroyed: Names in static objects outlive main()
  return *t;
}

const std::string& emptyString() {
  static const std::string* s = new std::string;
  return *s;
}

}  // namespace

Name::Name(std::string_view text) {
  if (text.empty()) return;
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.reps.find(text);
  if (it != t.reps.end()) {
    rep_ = static_cast<Rep*>(it->second);
    rep_->refs.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  rep_ = new Rep;
  rep_->text.assign(text);
  t.reps.emplace(std::string_view(rep_->text), rep_);
}

Name& Name::operator=(const Name& o) {
  if (rep_ != o.rep_) {
    Name copy(o);
    std::swap(rep_, copy.rep_);
  }
  return *this;
}

Name& Name::operator=(Name&& o) noexcept {
  if (this != &o) {
    release();
    rep_ = o.rep_;
    o.rep_ = nullptr;
  }
  return *this;
}

const std::string& Name::str() const { return rep_ ? rep_->text : emptyString(); }

void Name::release() {
  if (!rep_) return;
  Rep* r = rep_;
  rep_ = nullptr;
  // Not the last holder: drop the count without the lock.
  uint32_t n = r->refs.load(std::memory_order_relaxed);
  while (n > 1) {
    if (r->refs.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) return;
  }
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;  // copied meanwhile
  t.reps.erase(std::string_view(r->text));
  delete r;
}

size_t Name::internedCount() {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  return t.reps.size();
}

}  // namespace meshlet

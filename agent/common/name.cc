#include "agent/common/name.h"

#include <mutex>
#include <unordered_set>

namespace meshlet {

// The interning table: a set of Reps, each in the set's own node (a node's address never changes
// while it is in the set). A Rep's count goes from 1 to 0 only under the table's lock, and the
// table hands out Reps only under it, so a Rep found in the table is never being freed.
struct Name::Table {
  std::mutex mu;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
    size_t operator()(const Rep& r) const { return (*this)(std::string_view(r.text)); }
  };
  struct Eq {
    using is_transparent = void;
    static std::string_view text(std::string_view s) { return s; }
    static std::string_view text(const Rep& r) { return r.text; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return text(a) == text(b);
    }
  };
  std::unordered_set<Rep, Hash, Eq> reps;

  static Table& get() {
    static Table* t = new Table;  // never destroyed: Names in static objects outlive main()
    return *t;
  }
};

namespace {

const std::string& emptyString() {
  static const std::string* s = new std::string;
  return *s;
}

}  // namespace

Name::Name(std::string_view text) {
  if (text.empty()) return;
  Table& t = Table::get();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.reps.find(text);
  if (it != t.reps.end()) {
    rep_ = &*it;
    rep_->refs.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  rep_ = &*t.reps.emplace(text).first;
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
  const Rep* r = rep_;
  rep_ = nullptr;
  // Not the last holder: drop the count without the lock.
  uint32_t n = r->refs.load(std::memory_order_relaxed);
  while (n > 1) {
    if (r->refs.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) return;
  }
  Table& t = Table::get();
  std::lock_guard<std::mutex> lock(t.mu);
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;  // copied meanwhile
  t.reps.erase(t.reps.find(std::string_view(r->text)));
}

size_t Name::internedCount() {
  Table& t = Table::get();
  std::lock_guard<std::mutex> lock(t.mu);
  return t.reps.size();
}

}  // namespace meshlet

#pragma once
// StringMap: a string -> string map in key order (labels, annotations, label selectors) that
// costs one pointer while it is empty, as it is on most objects: 10 000s of Services and
// EndpointSlices carry labels and annotations, and a std::map is 48 bytes even when empty.
// The entries live in one sorted vector (FlatMap) on the heap.
//
// The subset of std::map's interface the agent uses; iterators and references are invalidated
// by any insertion or erasure, as a vector's are.
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "agent/common/boxed.h"
#include "agent/common/flat_map.h"

namespace meshlet {

class StringMap {
  using Rep = FlatMap<std::string, std::string>;

 public:
  using key_type = std::string;
  using mapped_type = std::string;
  using value_type = Rep::value_type;
  using iterator = Rep::iterator;
  using const_iterator = Rep::const_iterator;

  StringMap() = default;
  StringMap(std::initializer_list<value_type> init) { assign(Rep(init)); }
  template <typename It>
  StringMap(It first, It last) {
    assign(Rep(Rep::container_type(first, last)));
  }

  const_iterator begin() const { return get().begin(); }
  const_iterator end() const { return get().end(); }
  iterator begin() { return rep_ ? rep_->begin() : iterator(); }
  iterator end() { return rep_ ? rep_->end() : iterator(); }
  size_t size() const { return rep_ ? rep_->size() : 0; }
  bool empty() const { return size() == 0; }

  const_iterator find(const std::string& k) const { return get().find(k); }
  iterator find(const std::string& k) { return rep_ ? rep_->find(k) : iterator(); }
  size_t count(const std::string& k) const { return get().count(k); }
  bool contains(const std::string& k) const { return count(k) != 0; }
  const std::string& at(const std::string& k) const { return get().at(k); }

  std::string& operator[](const std::string& k) { return mut()[k]; }
  std::pair<iterator, bool> emplace(const std::string& k, std::string v) {
    return mut().emplace(k, std::move(v));
  }
  std::pair<iterator, bool> insert_or_assign(const std::string& k, std::string v) {
    auto [it, added] = mut().emplace(k, v);
    if (!added) it->second = std::move(v);
    return {it, added};
  }
  size_t erase(const std::string& k) {
    if (!rep_) return 0;
    size_t n = rep_->erase(k);
    if (rep_->empty()) rep_.reset();
    return n;
  }
  void clear() { rep_.reset(); }

  bool operator==(const StringMap& o) const { return get() == o.get(); }

 private:
  const Rep& get() const {
    static const Rep kEmpty;
    return rep_ ? *rep_ : kEmpty;
  }
  Rep& mut() {
    if (!rep_) rep_ = Rep();
    return *rep_;
  }
  void assign(Rep r) {
    if (!r.empty()) rep_ = std::move(r);
  }

  Boxed<Rep> rep_;  // absent when empty (copies copy the entries)
};

}  // namespace meshlet

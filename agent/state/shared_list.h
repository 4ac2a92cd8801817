#pragma once
// A list of cluster objects that copies share until one of them writes: a Snapshot copied to add
// a few pods (CNI enrollment) or a few synthesized EndpointSlices shares its 100 000 endpoints
// with the original instead of holding them twice.
//
// Reading never copies: iteration and indexing are const whatever the list's constness. Writing
// goes through the methods below, or through mut() for the elements themselves; each first makes
// the list private when another copy still shares it.
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

namespace meshlet {

template <typename T>
class SharedList {
 public:
  using value_type = T;
  using const_iterator = typename std::vector<T>::const_iterator;
  using iterator = const_iterator;  // reading only: see mut()

  SharedList() = default;
  SharedList(std::initializer_list<T> init) : p_(std::make_shared<std::vector<T>>(init)) {}
  SharedList(std::vector<T> v) : p_(std::make_shared<std::vector<T>>(std::move(v))) {}  // NOLINT

  const std::vector<T>& get() const { return p_ ? *p_ : none(); }
  operator const std::vector<T>&() const { return get(); }  // NOLINT: read as a vector

  const_iterator begin() const { return get().begin(); }
  const_iterator end() const { return get().end(); }
  size_t size() const { return get().size(); }
  bool empty() const { return get().empty(); }
  const T& operator[](size_t i) const { return get()[i]; }
  const T& front() const { return get().front(); }
  const T& at(size_t i) const { return get().at(i); }
  const T& back() const { return get().back(); }

  // The list to write to: private to this copy from now on.
  std::vector<T>& mut() {
    if (!p_) {
      p_ = std::make_shared<std::vector<T>>();
    } else if (p_.use_count() > 1) {
      p_ = std::make_shared<std::vector<T>>(*p_);
    }
    return *p_;
  }
  void push_back(T v) { mut().push_back(std::move(v)); }
  template <typename... Args>
  T& emplace_back(Args&&... args) {
    return mut().emplace_back(std::forward<Args>(args)...);
  }
  void clear() { p_.reset(); }
  // Erases at a position read from this list (begin() + n).
  void erase(const_iterator pos) {
    const auto n = pos - begin();
    auto& v = mut();
    v.erase(v.begin() + n);
  }

  // True when both copies still share one list (for tests of the sharing itself).
  bool sharesWith(const SharedList& o) const { return p_ && p_ == o.p_; }

  bool operator==(const SharedList& o) const { return get() == o.get(); }

 private:
  static const std::vector<T>& none() {
    static const std::vector<T> kEmpty;
    return kEmpty;
  }
  std::shared_ptr<std::vector<T>> p_;
};

}  // namespace meshlet

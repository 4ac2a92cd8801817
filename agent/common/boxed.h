#pragma once
// Boxed<T>: an optional value kept on the heap, for members that are large and usually absent
// (a Service's rate limit): one pointer per object instead of sizeof(std::optional<T>), which
// adds up over 10 000s of objects. Reads like std::optional; copies are deep.
#include <memory>
#include <optional>
#include <utility>

namespace meshlet {

template <typename T>
class Boxed {
 public:
  Boxed() = default;
  Boxed(std::nullopt_t) {}                               // NOLINT: like std::optional
  Boxed(T v) : p_(std::make_unique<T>(std::move(v))) {}  // NOLINT: like std::optional
  Boxed(const Boxed& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(const Boxed& o) {
    if (this != &o) p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
    return *this;
  }
  Boxed& operator=(Boxed&&) noexcept = default;
  Boxed& operator=(std::nullopt_t) {
    p_.reset();
    return *this;
  }
  Boxed& operator=(T v) {
    p_ = std::make_unique<T>(std::move(v));
    return *this;
  }

  bool has_value() const { return p_ != nullptr; }
  explicit operator bool() const { return has_value(); }
  const T& operator*() const { return *p_; }
  T& operator*() { return *p_; }
  const T* operator->() const { return p_.get(); }
  T* operator->() { return p_.get(); }
  const T& value() const {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  void reset() { p_.reset(); }
  // A copy, for whoever keeps the value as a std::optional.
  operator std::optional<T>() const {  // NOLINT: reads like std::optional
    return p_ ? std::optional<T>(*p_) : std::nullopt;
  }

  bool operator==(const Boxed& o) const {
    return p_ == nullptr ? o.p_ == nullptr : o.p_ != nullptr && *p_ == *o.p_;
  }

 private:
  std::unique_ptr<T> p_;  // null when absent
};

}  // namespace meshlet

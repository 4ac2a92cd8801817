#pragma once
// One error model: errors are values carrying an errno (0 when none applies) and context.
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace meshlet {

class Error {
 public:
  Error() = default;
  explicit Error(std::string message, int err = 0) : message_(std::move(message)), errno_(err) {}
  // An OS/libbpf failure: "what: strerror(err)".
  static Error fromErrno(const std::string& what, int err) {
    return Error(what + ": " + std::strerror(err < 0 ? -err : err), err < 0 ? -err : err);
  }
  const std::string& message() const { return message_; }
  int code() const { return errno_; }
  // Adds outer context: "context: inner message".
  Error wrap(const std::string& context) const { return Error(context + ": " + message_, errno_); }

 private:
  std::string message_;
  int errno_ = 0;
};

// Result<T>: a T or an Error.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}       // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}   // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Status: success or an Error.
class Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  static Status Ok() { return Status(); }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace meshlet

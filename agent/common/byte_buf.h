#pragma once
// A byte queue for the proxy's data path: bytes are appended at the back (or received in place:
// reserve, write there, commit) and taken from the front without moving the rest. Unlike
// std::string, growing it does not zero the new room, and taking a frame from the front of a
// large queue costs nothing. The room freed at the front is reused when the back runs out and the
// bytes left fit below where they start (so moving them costs at most what was taken since);
// otherwise they go to a block twice the size.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace meshlet {

class ByteBuf {
 public:
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  const char* data() const { return buf_.get() + begin_; }
  std::string_view view() const { return {data(), size()}; }
  size_t capacity() const { return cap_; }

  // Room for at least `n` more bytes at the back; write there, then commit() what was written.
  char* reserve(size_t n) {
    if (cap_ - end_ >= n) return buf_.get() + end_;
    size_t live = size();
    if (live + n <= cap_ && begin_ >= live) {
      // The bytes left fit below where they start: moving them costs no more than what was
      // taken from the front since they last moved.
      std::memcpy(buf_.get(), data(), live);
    } else {
      size_t cap = std::max({cap_ * 2, live + n, size_t{4096}});
      std::unique_ptr<char[]> bigger(new char[cap]);
      if (live) std::memcpy(bigger.get(), data(), live);
      buf_ = std::move(bigger);
      cap_ = cap;
    }
    begin_ = 0;
    end_ = live;
    return buf_.get() + end_;
  }
  void commit(size_t n) { end_ += n; }
  void append(const void* p, size_t n) {
    if (n == 0) return;
    std::memcpy(reserve(n), p, n);
    end_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  // Drops `n` bytes from the front.
  void consume(size_t n) {
    begin_ += n;
    if (begin_ >= end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }
  // Empty and holding more than `keep` bytes of storage: give it back (an idle connection keeps
  // no large buffer).
  void release(size_t keep) {
    if (empty() && cap_ > keep) {
      buf_.reset();
      cap_ = 0;
      begin_ = end_ = 0;
    }
  }

 private:
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t begin_ = 0, end_ = 0;
};

}  // namespace meshlet

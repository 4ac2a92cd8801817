#pragma once
// A byte queue for the proxy's data path: bytes are appended at the back (or received in place:
// reserve, write there, commit) and taken from the front without moving the rest. Unlike
// std::string, growing it does not zero the new room, and taking a frame from the front of a
// large queue costs nothing. The room freed at the front is reused when the back runs out and the
// bytes left fit below where they start (so moving them costs at most what was taken since);
// otherwise they go to a block twice the size.
#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace meshlet {

class ByteBuf {
 public:
  ByteBuf() = default;
  ~ByteBuf() { deallocate(buf_, cap_); }
  ByteBuf(const ByteBuf&) = delete;
  ByteBuf& operator=(const ByteBuf&) = delete;
  ByteBuf(ByteBuf&& o) noexcept
      : buf_(std::exchange(o.buf_, nullptr)),
        cap_(std::exchange(o.cap_, 0)),
        begin_(std::exchange(o.begin_, 0)),
        end_(std::exchange(o.end_, 0)) {}
  ByteBuf& operator=(ByteBuf&& o) noexcept {
    if (this != &o) {
      deallocate(buf_, cap_);
      buf_ = std::exchange(o.buf_, nullptr);
      cap_ = std::exchange(o.cap_, 0);
      begin_ = std::exchange(o.begin_, 0);
      end_ = std::exchange(o.end_, 0);
    }
    return *this;
  }

  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  const char* data() const { return buf_ + begin_; }
  std::string_view view() const { return {data(), size()}; }
  size_t capacity() const { return cap_; }

  // Room for at least `n` more bytes at the back; write there, then commit() what was written.
  char* reserve(size_t n) {
    if (cap_ - end_ >= n) return buf_ + end_;
    size_t live = size();
    if (live + n <= cap_ && begin_ >= live) {
      // The bytes left fit below where they start: moving them costs no more than what was
      // taken from the front since they last moved.
      std::memcpy(buf_, data(), live);
    } else {
      size_t cap = std::max({cap_ * 2, live + n, size_t{4096}});
      if (cap >= kMapFrom) cap = (cap + 4095) & ~size_t{4095};
      char* bigger = allocate(cap);
      if (live) std::memcpy(bigger, data(), live);
      deallocate(buf_, cap_);
      buf_ = bigger;
      cap_ = cap;
    }
    begin_ = 0;
    end_ = live;
    return buf_ + end_;
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
  // The bytes as a string, leaving the queue empty.
  std::string take() {
    std::string s(view());
    clear();
    return s;
  }
  // Empty and holding more than `keep` bytes of storage: give it back (an idle connection keeps
  // no large buffer).
  void release(size_t keep) {
    if (empty() && cap_ > keep) {
      deallocate(buf_, cap_);
      buf_ = nullptr;
      cap_ = 0;
      begin_ = end_ = 0;
    }
  }

  // Storage of kMapFrom bytes or more is a mapping of its own, so that it goes back to the
  // system when freed: the agent's heap keeps what it frees (agent/main.cc raises glibc's trim
  // threshold for the sync's tables), and a burst's buffers should not stay resident after it.
  static constexpr size_t kMapFrom = 128 * 1024;

 private:
  static char* allocate(size_t cap) {
    if (cap < kMapFrom) return new char[cap];
    void* m = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    return static_cast<char*>(m);
  }
  static void deallocate(char* p, size_t cap) {
    if (!p) return;
    if (cap < kMapFrom) {
      delete[] p;
    } else {
      munmap(p, cap);
    }
  }

  char* buf_ = nullptr;
  size_t cap_ = 0;
  size_t begin_ = 0, end_ = 0;
};

}  // namespace meshlet

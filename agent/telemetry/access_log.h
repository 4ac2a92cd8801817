#pragma once
// The L7 path's access log: one JSON object per line per request (Envoy's fields, by their
// usual names), written to a file or to stdout ("-"). Off unless --access-log names a target,
// as in Istio, where access logging is off unless meshConfig.accessLogFile is set.
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "agent/common/status.h"
#include "agent/l7/http_proxy.h"

namespace meshlet {

class AccessLog {
 public:
  // "-" is stdout; anything else is a file, appended to.
  static Result<std::unique_ptr<AccessLog>> open(const std::string& target);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Any thread.
  void write(const l7::RequestRecord& r);

 private:
  AccessLog() = default;
  std::mutex mu_;
  FILE* f_ = nullptr;
  bool own_ = false;
};

// The line write() emits, without its newline.
std::string accessLogLine(const l7::RequestRecord& r);

}  // namespace meshlet

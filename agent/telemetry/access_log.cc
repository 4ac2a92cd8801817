#include "agent/telemetry/access_log.h"

#include <cerrno>
#include <nlohmann/json.hpp>

#include "agent/common/log.h"

namespace meshlet {

Result<std::unique_ptr<AccessLog>> AccessLog::open(const std::string& target) {
  std::unique_ptr<AccessLog> log(new AccessLog());
  if (target == "-") {
    log->f_ = stdout;
  } else {
    log->f_ = fopen(target.c_str(), "ae");
    if (!log->f_) return Error::fromErrno("access log " + target, errno);
    log->own_ = true;
  }
  setvbuf(log->f_, nullptr, _IOLBF, 0);
  return log;
}

AccessLog::~AccessLog() {
  if (own_ && f_) fclose(f_);
}

std::string accessLogLine(const l7::RequestRecord& r) {
  nlohmann::json j = {
      {"start_time", nowRfc3339()},
      {"method", r.method},
      {"path", r.path},
      {"authority", r.authority},
      {"protocol", r.protocol},
      {"response_code", r.status},
      {"response_flags", r.flags},
      {"duration_ms", static_cast<int64_t>(r.duration_ms + 0.5)},
      {"bytes_received", r.request_bytes},
      {"bytes_sent", r.response_bytes},
      {"route_name", r.route},
      {"upstream_cluster", r.cluster},
      {"upstream_host", r.upstream},
      {"upstream_pod", r.upstream_pod},
      {"attempts", r.attempts},
      {"source_pod", r.source_pod},
      {"source_principal", r.source_principal},
      {"destination_service", r.service_host},
      {"request_id", r.request_id},
      {"trace_id", r.trace_id},
      {"connection_security_policy", r.mutual_tls ? "mutual_tls" : "none"},
  };
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void AccessLog::write(const l7::RequestRecord& r) {
  std::string line = accessLogLine(r);
  line += '\n';
  std::lock_guard<std::mutex> l(mu_);
  fwrite(line.data(), 1, line.size(), f_);
}

}  // namespace meshlet

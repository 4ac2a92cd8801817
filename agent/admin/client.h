#pragma once
// Client of meshletd's admin API (docs/ADMIN_API.md): HTTP/1.0 GET over a unix socket, JSON
// answers. Used by the CLI; no exceptions escape.
#include <string>

#include <nlohmann/json.hpp>

#include "agent/common/status.h"

namespace meshlet {

inline constexpr const char* kDefaultAdminSocket = "/var/run/meshlet/admin.sock";

// A parsed HTTP/1.x response.
struct HttpResponse {
  int status = 0;
  std::string reason;
  std::string content_type;
  std::string body;
};

// Parses a complete HTTP/1.x response (status line, headers, body up to Content-Length or EOF).
Result<HttpResponse> parseHttpResponse(const std::string& raw);

// GET `path` (e.g. "/v1/status") from the agent listening on `socket_path`. Returns the JSON
// body (object key order preserved, so tables show the agent's column order). Errors:
//  - socket unreachable: "cannot reach meshletd at PATH: <strerror> (is the agent running?)"
//  - no complete answer within timeout_ms: "meshletd at PATH did not answer within N ms"
//  - non-2xx: the body's "error" field (or "HTTP <code> <reason>"), code() is 0
//  - malformed HTTP or JSON: "bad answer from meshletd at PATH: ..."
// *http_status (when given): the answer's HTTP status, 0 when none was parsed.
Result<nlohmann::ordered_json> adminGet(const std::string& socket_path, const std::string& path,
                                        int timeout_ms = 5000, int* http_status = nullptr);

// Percent-encodes a query value; '/' is kept as is (the admin API accepts "ns/name").
std::string urlEncodeQueryValue(const std::string& value);

}  // namespace meshlet

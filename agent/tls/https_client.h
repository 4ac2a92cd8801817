#pragma once
// A small HTTPS/1.1 client for the Kubernetes API server: one TLS connection per request
// (Connection: close), server verification against the configured CA (tls_conn.h), optional
// client certificate, bearer token, connect and idle timeouts, Content-Length / chunked /
// read-to-close bodies with a size cap, and a streaming mode that hands a watch's
// newline-delimited JSON events to a callback line by line.
#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "agent/common/status.h"
#include "agent/tls/tls_conn.h"

namespace meshlet::tls {

struct HttpsClientOptions {
  std::string host;  // DNS name or IP literal (IPv6 without brackets)
  int port = 443;
  std::shared_ptr<const ClientContext> tls;
  int connect_timeout_ms = 5000;
  int io_timeout_ms = 30000;          // per read/write of a plain request
  size_t max_body_bytes = 64u << 20;  // a larger body is an error
  size_t max_line_bytes = 16u << 20;  // one watch event
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;  // the whole body; in stream mode only for a non-2xx answer
};

class HttpsClient {
 public:
  explicit HttpsClient(HttpsClientOptions opts);

  // GET `target` (path and query) with an optional bearer token; the whole body, capped.
  Result<HttpResponse> get(const std::string& target, const std::string& bearer_token);

  // GET whose 2xx body is a stream of lines: on_line(line) for each (without the newline;
  // return false to stop reading). Returns when the server ends the body, on_line says stop,
  // the connection breaks (an error) or cancel() is called (an error with ECANCELED). A
  // non-2xx answer is returned with its body (capped) and no line is delivered. The read
  // timeout is idle_timeout_ms between two bytes.
  // on_status(status), when given, is called as soon as the response headers are in.
  using LineFn = std::function<bool(std::string_view line)>;
  using StatusFn = std::function<void(int status)>;
  Result<HttpResponse> stream(const std::string& target, const std::string& bearer_token,
                              int idle_timeout_ms, const LineFn& on_line,
                              const StatusFn& on_status = nullptr);

  // Thread-safe: aborts the request in progress (if any) and every later one.
  void cancel();

  // "host:port", with brackets around an IPv6 literal.
  std::string address() const;

 private:
  Result<HttpResponse> request(const std::string& target, const std::string& bearer_token,
                               int io_timeout_ms, const LineFn* on_line, const StatusFn* on_status);
  Result<int> dial(int io_timeout_ms);

  HttpsClientOptions opts_;
  std::mutex mu_;
  int active_fd_ = -1;  // the socket of the request in progress, for cancel()
  bool cancelled_ = false;
};

}  // namespace meshlet::tls

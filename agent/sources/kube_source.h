#pragma once
// The Kubernetes source: list+watch of the API server (Namespaces, Services, EndpointSlices,
// Pods and the Istio resources) into a KubeStore, from which the agent's loop thread takes a
// Snapshot when something changed.
//
// Threads: one per watched resource (8). A watch is a long-lived blocking HTTPS stream, so a
// thread per stream keeps every step (list, paginate, watch, back off, re-list) straight-line
// code over blocking sockets; the threads spend their life blocked in read(), and there are
// few of them. One thread multiplexing non-blocking TLS streams would need an event loop and
// per-stream state machines for no gain at this scale. stop() cancels the sockets and joins.
//
// Failure handling: a failed request (unreachable, TLS, 5xx, 401 twice) backs off
// exponentially with jitter (from backoff_initial_ms, capped at backoff_max_ms) and retries; the
// store keeps the last known objects meanwhile, so the agent's state stays in force. A watch
// resumes from the last resourceVersion it saw (events and bookmarks); 410 Gone (as a status or
// an ERROR event) re-lists. A 401 re-reads the token file (and the file is re-read whenever it
// changes, for rotated projected tokens) and retries once. An optional resource (an Istio CRD)
// answering 404 on every version is "not installed": logged once, re-checked every
// crd_recheck_ms; one the agent may not read (403) is "forbidden", likewise re-checked, so
// missing RBAC for the Istio kinds does not hold back the core ones. An object that fails
// validation is logged (Kind ns/name: field: why) and
// its previous version, if any, stays.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/status.h"
#include "agent/sources/kube_config.h"
#include "agent/sources/kube_status.h"
#include "agent/sources/kube_store.h"
#include "agent/tls/https_client.h"

namespace meshlet {

struct KubeSourceOptions {
  int watch_timeout_s = 300;  // timeoutSeconds of each watch request (the server ends it)
  int page_size = 500;
  int backoff_initial_ms = 200;
  int backoff_max_ms = 30000;
  int crd_recheck_ms = 60000;
  int connect_timeout_ms = 5000;
  int io_timeout_ms = 30000;
};

class KubeSource {
 public:
  explicit KubeSource(KubeConfig cfg, KubeSourceOptions opts = {});
  ~KubeSource();
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  // Builds the TLS context (a bad CA or client certificate is an error here) and starts the
  // watch threads.
  Status start();
  void stop();

  // For the loop thread: the cluster as a Snapshot when it changed since the last take and
  // every resource has been listed once (else null). Never blocks on the network.
  std::shared_ptr<Snapshot> take();
  KubeSourceStatus status() const;

 private:
  enum class Outcome { kOk, kNotInstalled, kForbidden, kGone, kEnded, kError };
  class Tokens;

  void run(size_t index);
  Outcome list(size_t index, std::string& version, std::string& rv, std::string& error);
  Outcome watch(size_t index, const std::string& version, std::string& rv, std::string& error,
                int& events);
  // GET with the current token; a 401 re-reads the token and retries once. Tracks the
  // connection state.
  // `started` (may be null) tells whether a response began: a stream that breaks after that
  // was dropped, which is not the API server being unreachable.
  Result<tls::HttpResponse> call(size_t index, const std::string& target, bool stream,
                                 int idle_timeout_ms,
                                 const std::function<bool(std::string_view)>& on_line,
                                 bool* started = nullptr);
  void setConnected(bool connected, const std::string& error);
  void setState(size_t index, const std::string& state, const std::string& version,
                const std::string& error);
  void countRejected(size_t index);
  bool sleepFor(int ms);  // false when stopping
  bool stopping() const { return stop_.load(); }

  KubeConfig cfg_;
  KubeSourceOptions opts_;
  std::shared_ptr<const tls::ClientContext> tls_;
  std::unique_ptr<Tokens> tokens_;
  KubeStore store_;
  std::vector<std::unique_ptr<tls::HttpsClient>> clients_;  // one per resource thread
  std::vector<std::thread> threads_;

  std::atomic<bool> stop_{false};
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;

  mutable std::mutex status_mu_;
  KubeSourceStatus status_;
  std::vector<std::string> last_dropped_;  // loop thread only
};

}  // namespace meshlet

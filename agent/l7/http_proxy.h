#pragma once
// The L7 path's HTTP/1.1 proxy: one HttpSession per app connection the kernel steered to the
// agent (MESHLET_PATH_L7). Each request is matched against the service's compiled routes
// (routes.h) and sent to an endpoint of the cluster the route picks, over a pooled keep-alive
// connection made from the client pod's side; the response streams back. Bodies are never
// buffered whole: a side is not read while the other's queue is above kHighWater. Requests are
// handled one at a time per connection, so pipelined requests are answered in order.
//
// Istio semantics applied per request: first matching route, weighted destinations and
// subsets, redirect, rewrite (uri prefix/regex, authority), request/response header rules,
// fault delay/abort with percentages, timeout, retries (attempts, perTryTimeout, retryOn),
// the DestinationRule's load balancer. Local answers carry Envoy's response flags: NR (no
// route), UH (no healthy upstream), UF (connect failure), UT (timeout), URX (retries
// exhausted), UC (upstream closed), FI/DI (fault abort/delay), DC (client went away).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "agent/common/byte_buf.h"
#include "agent/common/status.h"
#include "agent/l7/http1.h"
#include "agent/l7/routes.h"
#include "agent/proxy/event_loop.h"

namespace meshlet::l7 {

// One request as telemetry and the access log see it.
struct RequestRecord {
  std::string method, path, authority;
  std::string protocol = "http";
  std::string source_pod;        // "ns/name" of the client pod
  std::string source_principal;  // its SPIFFE id
  int status = 0;                // 0: no response (the client went away first)
  std::string flags = "-";       // Envoy response flags, comma-separated
  std::string route;             // L7Route::name, "" with no route
  std::string cluster;           // L7Cluster::name
  std::string upstream;          // "ip:port" of the last endpoint tried
  std::string upstream_pod;      // its "ns/name"
  bool mutual_tls = false;       // the upstream connection is an HBONE tunnel
  std::string service_host;      // the service dialled (FQDN)
  std::string service_name, service_namespace;
  std::string destination_host;                    // the cluster's service (FQDN), after routing
  uint64_t request_bytes = 0, response_bytes = 0;  // body bytes
  double duration_ms = 0;
  int attempts = 0;
  std::string request_id;  // x-request-id
  std::string trace_id;    // W3C trace id (traceparent)
  std::string grpc_status;  // grpc-status of a gRPC response, "" otherwise
};

// Where sessions get their upstream connections and where they report.
struct SessionEnv {
  // A non-blocking TCP connect to ep, made on the client pod's behalf (writable when done).
  // `h2`: the request came over HTTP/2 and goes upstream over HTTP/2 too; the connection is
  // still spoken as HTTP/1.1 by the session (h2_bridge.h's H2ClientPool is at its other end).
  std::function<Result<int>(const std::string& source_pod, const L7Endpoint& ep, bool h2)> dial;
  std::function<void(const RequestRecord&)> on_request;
};

class HttpSession;

// What sessions of one agent share (loop thread only): idle upstream connections, the load
// balancers' state, DestinationRule connection-pool accounting and outlier detection.
class L7Runtime {
 public:
  explicit L7Runtime(proxy::EventLoop& loop);
  ~L7Runtime();
  L7Runtime(const L7Runtime&) = delete;
  L7Runtime& operator=(const L7Runtime&) = delete;

  // An idle keep-alive connection for `key`, -1 when none. The caller owns it; *uses is how
  // many requests it carried.
  int takeIdle(const std::string& key, int* uses = nullptr);
  // Keeps `fd` for reuse under `key` (at most kIdlePerKey; the oldest goes). A connection the
  // peer closes or writes to while idle is dropped.
  void putIdle(const std::string& key, int fd, int uses = 0);
  size_t idleCount() const { return idle_fds_.size(); }
  // Closes every idle connection (configuration changed, or shutting down).
  void dropIdle();

  uint32_t random() { return static_cast<uint32_t>(rng_()); }
  uint32_t nextRoundRobin(const std::string& cluster) { return rr_[cluster]++; }
  // In-flight requests per endpoint "ip:port" (LEAST_REQUEST).
  std::map<std::string, int>& active() { return active_; }

  // connectionPool accounting per cluster (L7Cluster::name).
  struct ClusterLoad {
    int requests = 0;                   // in flight (http2MaxRequests)
    int connections = 0;                // upstream connections in use (tcp.maxConnections)
    std::vector<HttpSession*> pending;  // waiting for a connection, oldest first
  };
  ClusterLoad& load(const std::string& cluster) { return load_[cluster]; }
  // A connection of `cluster` was given back: the oldest waiting session may go on.
  void connectionReleased(const std::string& cluster);
  // Takes `s` off the wait list of `cluster` (it was answered, or went away).
  void forgetPending(HttpSession* s, const std::string& cluster);

  // Outlier detection (per cluster and endpoint): the outcome of one request to an endpoint.
  // `gateway_error`: 502/503/504 or a connect failure/reset; `server_error`: any 5xx.
  void recordOutcome(const L7Cluster& c, const std::string& endpoint, bool server_error,
                     bool gateway_error);
  bool ejected(const std::string& cluster, const std::string& endpoint);
  // Takes a token from the bucket `key` of `limit` (made full on first use); false when empty.
  bool takeToken(const std::string& key, const LocalRateLimit& limit);
  size_t ejectedCount() const;  // endpoints ejected now, every cluster

  // VirtualService mirrors: sends `request` (a whole HTTP/1.1 request that asks for
  // "connection: close") to `ep` over a new connection (HTTP/2 upstream when `h2`, through the
  // dialer's bridge) and reads the answer only to drop it; the connection closes when the
  // answer is complete. At most kMaxShadows at once, each given up after kShadowTimeoutMs.
  // False when not started (too many, or the dial failed).
  bool shadow(const SessionEnv& env, const std::string& source_pod, const L7Endpoint& ep, bool h2,
              ByteBuf request);
  size_t shadowCount() const { return shadows_.size(); }
  uint64_t shadowsSent() const { return shadows_sent_; }

  static constexpr size_t kIdlePerKey = 16;
  static constexpr size_t kMaxShadows = 256;
  static constexpr int64_t kShadowTimeoutMs = 10000;

 private:
  struct IdleConn {
    int fd;
    int uses;
  };
  struct Health {
    int consecutive_5xx = 0;
    int consecutive_gateway = 0;
    int ejections = 0;
    int64_t ejected_until = 0;  // steady ms
  };
  void drop(int fd);
  struct Shadow : Http1Events {
    ByteBuf out;
    int64_t deadline = 0;  // steady ms
    bool connecting = true;
    int status = 0;         // of the last response head
    bool answered = false;  // a final (non-1xx) response ended
    std::unique_ptr<Http1Parser> parser;
    void onResponseHead(ResponseHead&& head) override { status = head.status; }
    void onMessageEnd() override { answered = answered || status >= 200; }
  };
  void onShadow(int fd, uint32_t events);
  void closeShadow(int fd);
  void sweepShadows();
  proxy::EventLoop& loop_;
  std::map<int, Shadow> shadows_;
  int shadow_timer_ = -1;  // ticks while shadows are out, to give up on stuck ones
  uint64_t shadows_sent_ = 0;
  std::map<std::string, std::vector<IdleConn>> idle_;  // oldest first
  std::map<int, std::string> idle_fds_;
  std::map<std::string, ClusterLoad> load_;
  std::map<std::string, std::map<std::string, Health>> health_;  // cluster -> endpoint
  struct Bucket {
    double tokens = 0;
    int64_t at_ms = 0;  // when `tokens` was last brought up to date
    std::string limit;  // the LocalRateLimit text it was made for
  };
  std::map<std::string, Bucket> buckets_;
  std::map<std::string, uint32_t> rr_;
  std::map<std::string, int> active_;
  std::mt19937_64 rng_{std::random_device{}()};
};

// Who is calling, as routing and telemetry see it.
struct SessionSource {
  std::string pod;  // "ns/name" on this node
  std::string ns;
  Labels labels;
  std::string principal;  // SPIFFE id
  IpAddr ip;
};

class HttpSession {
 public:
  // Takes over `fd` (non-blocking). `svc_id` is the service port the app dialled.
  HttpSession(proxy::EventLoop& loop, L7Runtime& rt, const SessionEnv& env, int fd,
              std::shared_ptr<const L7Config> config, uint32_t svc_id, SessionSource source);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  Status start();
  // The session ended (both sockets out of the loop). Called once; destroy the session from a
  // deferred task, not inside the callback.
  std::function<void()> on_done;
  bool done() const { return done_; }
  // The client is gone (the HTTP/2 bridge's stream closed, by the client's RST_STREAM or at its
  // end): a request in flight ends with DC and is recorded, its upstream connection is closed
  // (an HTTP/2 one gets RST_STREAM CANCEL); an idle held connection goes back to the pool.
  void clientGone();
  uint64_t requests() const { return requests_; }

  // HTTP/2 (h2c prior knowledge). When set, a connection that starts with the HTTP/2 preface is
  // handed over before any request: the callback gets the fd and the bytes already read, and
  // the session ends without closing the fd.
  std::function<void(int fd, ByteBuf&& read)> on_h2_preface;
  // The session carries one stream of an H2ServerBridge: requests marked with
  // kDownstreamH2Header are taken as HTTP/2 ones (request_protocol, HTTP/2 upstream). In other
  // sessions that header is removed and has no effect.
  bool bridged = false;
  static constexpr const char* kDownstreamH2Header = "x-meshlet-downstream-h2";
  // H2ClientPool's answer when a request failed before the upstream answered: a 503 carrying
  // this field, valued "connect-failure" or "refused-stream". Honoured only on an HTTP/2
  // upstream (whose other end is the pool); the session then fails or retries the request as
  // for an HTTP/1.1 upstream (UF / refused-stream), and the field never reaches the client.
  static constexpr const char* kUpstreamResetHeader = "x-meshlet-upstream-reset";

  static constexpr size_t kHighWater = 256 * 1024;  // a side's queue above this: stop reading
  static constexpr size_t kReplayMax = 64 * 1024;   // requests up to this size can be retried
  static constexpr int64_t kConnectTimeoutMs = 10000;

 private:
  struct Exchange;
  struct DownEvents;
  struct UpEvents;

  // Downstream
  void onDown(uint32_t events);
  void readDown();
  void writeDown();
  void pump();
  void onRequestHead(RequestHead&& head);
  void onRequestBody(std::string_view bytes);
  void onRequestEnd();
  void onRequestTrailers(HeaderList&& trailers);
  void parseError();
  bool handOffH2();  // the preface decided: true when the connection was handed over
  // Routing and dispatch
  void dispatch();
  void connectUpstream();
  bool pickEndpoint();
  void respondLocal(int status, std::string_view body, const std::string& flag,
                    const HeaderList& extra = {});
  void releaseClusterSlot();
  friend class L7Runtime;
  void resumePending();  // L7Runtime: a connection of the cluster is free now
  // Upstream
  void onUp(uint32_t events);
  void readUp();
  void writeUp();
  void onResponseHead(ResponseHead&& head);
  void onResponseBody(std::string_view bytes);
  void onResponseEnd();
  void onResponseTrailers(HeaderList&& trailers);
  void upstreamFailed(const std::string& flag, bool connect_failure);
  bool retry(const std::string& reason_flag);
  void poolReset(const std::string& why);  // H2ClientPool said the request failed (`why`)
  // AuthorizationPolicy of the picked endpoint's workload for this request; answers 403 and
  // returns false when denied.
  bool authorize();
  // Whether `ep`'s workload admits this request; *why describes a denial.
  bool allowedTo(const L7Endpoint& ep, std::string* why);
  // VirtualService mirrors: copies of the request are kept while it streams (up to
  // kReplayMax) and sent once it is complete.
  void startShadows(const RequestHead& upstream_head);
  void sendShadows();
  void closeUpstream(bool reusable);
  // Both
  void finishExchange();
  void releaseHeld();    // the held connection goes to the runtime's pool
  void startExchange();  // ex_ for a new request
  void endExchange();    // the request is over: ex_ becomes spare_
  void onTimer();
  void armTimer();
  void updateInterest();
  void finish();
  void addFlag(const std::string& flag);

  proxy::EventLoop& loop_;
  L7Runtime& rt_;
  const SessionEnv& env_;
  std::shared_ptr<const L7Config> config_;
  const L7Service* service_ = nullptr;
  SessionSource source_;

  int dfd_ = -1;
  ByteBuf din_, dout_;
  bool d_eof_ = false;      // the client finished sending
  bool d_closing_ = false;  // close once dout_ is flushed
  uint32_t d_interest_ = 0;
  std::unique_ptr<DownEvents> down_events_;
  std::unique_ptr<Http1Parser> dparser_;

  int ufd_ = -1;
  bool u_connecting_ = false;
  uint32_t u_interest_ = 0;
  ByteBuf uin_, uout_;
  std::unique_ptr<UpEvents> up_events_;
  std::unique_ptr<Http1Parser> uparser_;
  std::string u_key_;  // pool key of the upstream connection
  int u_uses_ = 0;     // requests the upstream connection carried, this one included
  std::string waiting_in_;  // the cluster whose wait list holds this session, "" for none
  bool u_counted_ = false;  // counted in its cluster's connections
  // The upstream connection of the last request, kept (idle, EPOLLIN, onUp's handler) for the
  // next one when its cluster has no connection limit; ufd_ is -1 meanwhile.
  struct HeldUpstream {
    int fd = -1;
    std::string key;  // its pool key
    int uses = 0;     // requests it carried
  } held_;

  int timer_fd_ = -1;
  int64_t timer_at_ = 0;  // steady ms the timer is armed for, 0 when disarmed
  bool tunnel_ = false;  // after a 101: raw bytes both ways
  bool done_ = false;
  uint64_t requests_ = 0;
  std::unique_ptr<Exchange> ex_;
  std::unique_ptr<Exchange> spare_;  // the last request's, reused by the next one
};

}  // namespace meshlet::l7

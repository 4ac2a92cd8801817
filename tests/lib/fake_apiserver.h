#pragma once
// An in-process fake Kubernetes API server for tests, speaking the real wire format over HTTPS
// (a throwaway CA and a server certificate for 127.0.0.1 / localhost, made with the openssl
// CLI): typed JSON lists with metadata.resourceVersion and continue tokens (limit/continue
// pagination), chunked watch streams of ADDED / MODIFIED / DELETED / BOOKMARK / ERROR events
// from a resourceVersion, 410 Gone for a compacted resourceVersion (as a status or as an ERROR
// event), 404 for resources it does not serve, 401 for a wrong bearer token. It can be
// stopped (every connection dropped) and started again on the same port.
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/tls/tls_conn.h"

namespace meshlet::testing {

using FakeJson = nlohmann::json;

// A throwaway PKI in `dir`: ca.crt/ca.key, server.crt/server.key (SAN 127.0.0.1, ::1,
// localhost), wrong-name.crt/key (SAN DNS:other.invalid only), client.crt/client.key (signed
// by the same CA), other-ca.crt (an unrelated CA).
// Returns "" or why it failed.
std::string makeTestPki(const std::string& dir);
std::string readText(const std::string& path);

class FakeApiServer {
 public:
  // `pki_dir` as made by makeTestPki; `cert` names the server certificate in it.
  explicit FakeApiServer(std::string pki_dir, std::string cert = "server");
  ~FakeApiServer();

  // Listens on 127.0.0.1:port (0 picks one; a restart reuses the previous port when 0).
  bool start(int port = 0);
  // Closes the listener and drops every connection abruptly.
  void stop();
  int port() const { return port_; }
  std::string server() const { return "https://127.0.0.1:" + std::to_string(port_); }

  // Resource collections are addressed by their path: "/api/v1/services",
  // "/apis/networking.istio.io/v1/virtualservices". Only served paths answer (else 404).
  void serve(const std::string& path, const std::string& list_kind, const std::string& api_version,
             const std::string& kind);
  void unserve(const std::string& path);
  // Answers 403 Forbidden for `path` (RBAC does not allow it).
  void forbid(const std::string& path);

  // Adds or replaces an object (ADDED or MODIFIED to watchers); sets its resourceVersion.
  void put(const std::string& path, FakeJson object);
  void remove(const std::string& path, const std::string& ns, const std::string& name);
  void bookmark(const std::string& path);
  // An ERROR event with code 410 to current watchers of `path`, and forgets history so a
  // watch from an older resourceVersion is refused.
  void expireWatches(const std::string& path, bool as_status_code = false);
  // Closes every open watch stream (no final chunk: a dropped connection).
  void dropWatches();

  // The bearer token required ("" accepts anything); `also` is a second one accepted.
  void setToken(const std::string& token, const std::string& also = "");
  std::string lastToken();  // the token of the last request
  void setPageSize(int n);  // the server's own cap on limit (0: honour the client's limit)

  int lists(const std::string& path);
  int watches(const std::string& path);
  int unauthorized();
  std::string lastWatchRv(const std::string& path);
  int openWatches();
  // Waits until `pred` holds (checked under the lock) or timeout; for tests.
  bool waitUntil(const std::function<bool()>& pred, int timeout_ms);

 private:
  struct Event {
    uint64_t rv;
    std::string type;
    FakeJson object;
  };
  struct Collection {
    std::string list_kind, api_version, kind;
    std::map<std::string, FakeJson> objects;  // by ns/name
    std::vector<Event> history;
    uint64_t oldest_rv = 0;  // a watch from below this is 410
    bool status_410 = false;
  };
  void acceptLoop(int lfd);
  void handle(int fd);
  std::string respond(const std::string& method, const std::string& target,
                      const std::map<std::string, std::string>& headers, int fd, void* conn);
  FakeJson withKind(const Collection& c, const FakeJson& o) const;
  void notify(const std::string& path, const std::string& type, const FakeJson& object);

  std::string pki_;
  std::string cert_;
  std::shared_ptr<const tls::ServerContext> ctx_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false;
  uint64_t generation_ = 0;  // bumped by stop/dropWatches: watch streams of older ones end
  uint64_t rv_ = 1000;
  std::map<std::string, Collection> served_;
  std::set<std::string> forbidden_;
  std::map<std::string, int> lists_, watches_;
  std::map<std::string, std::string> last_watch_rv_;
  std::string token_, token_also_, last_token_;
  int unauthorized_ = 0;
  int page_size_ = 0;
  int open_watches_ = 0;
  std::set<int> conns_;
  std::vector<std::thread> handlers_;
};

// Objects shaped as a real cluster returns them (managedFields, uid, creationTimestamp,
// ownerReferences, status, ...), for Service, EndpointSlice, Pod and Namespace.
FakeJson realNamespace(const std::string& name, const std::map<std::string, std::string>& labels);
FakeJson realService(const std::string& ns, const std::string& name, const std::string& ip,
                     int port, int target_port, const std::string& app);
struct FakeEndpoint {
  std::string ip;
  std::string pod;
  bool ready = true;
  std::string node = "node-a";
};
FakeJson realEndpointSlice(const std::string& ns, const std::string& name,
                           const std::string& service, int port,
                           const std::vector<FakeEndpoint>& endpoints);
FakeJson realPod(const std::string& ns, const std::string& name, const std::string& ip,
                 const std::string& node, const std::string& app, const std::string& netns = "");

}  // namespace meshlet::testing

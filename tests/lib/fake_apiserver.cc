#include "tests/lib/fake_apiserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "agent/tls/tls_conn.h"

namespace meshlet::testing {
namespace {

std::string keyOf(const FakeJson& o) {
  const auto& m = o["metadata"];
  std::string name = m.value("name", "");
  std::string ns = m.value("namespace", "");
  return ns.empty() ? name : ns + "/" + name;
}

std::map<std::string, std::string> parseQuery(const std::string& q) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= q.size()) {
    size_t amp = q.find('&', pos);
    std::string kv = q.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = kv.find('=');
    std::string v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    std::string dec;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '%' && i + 2 < v.size()) {
        dec.push_back(static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16)));
        i += 2;
      } else {
        dec.push_back(v[i]);
      }
    }
    if (!kv.empty()) out[kv.substr(0, eq)] = dec;
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return out;
}

std::string chunk(const std::string& data) {
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%zx\r\n", data.size());
  return hex + data + "\r\n";
}

std::string reply(int code, const std::string& reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(code) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

std::string statusBody(int code, const std::string& reason, const std::string& message) {
  return FakeJson{{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", FakeJson::object()},
                  {"status", "Failure"}, {"message", message}, {"reason", reason},
                  {"code", code}}
      .dump();
}

FakeJson managedFields(const std::string& manager) {
  return FakeJson::array(
      {{{"manager", manager},
        {"operation", "Update"},
        {"apiVersion", "v1"},
        {"time", "2026-11-27T20:00:00Z"},
        {"fieldsType", "FieldsV1"},
        {"fieldsV1", {{"f:metadata", {{"f:labels", {{".", FakeJson::object()}}}}}}}}});
}

FakeJson baseMeta(const std::string& ns, const std::string& name) {
  FakeJson m = {{"name", name},
                {"uid", "0f3c" + std::to_string(std::hash<std::string>()(ns + name) % 100000) +
                            "-1b2c-4d5e-8f90-a1b2c3d4e5f6"},
                {"resourceVersion", "1"},
                {"creationTimestamp", "2026-11-27T20:00:00Z"},
                {"managedFields", managedFields("kubectl-client-side-apply")}};
  if (!ns.empty()) m["namespace"] = ns;
  return m;
}

}  // namespace

std::string readText(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string makeTestPki(const std::string& d) {
  std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::string cmds =
      "set -e; cd '" + d +
      "'; "
      "openssl req -x509 " +
      ec +
      " -keyout ca.key -out ca.crt -days 2 -subj /CN=fake-kube-ca "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign; "
      "openssl req -x509 " +
      ec +
      " -keyout other-ca.key -out other-ca.crt -days 2 "
      "-subj /CN=other-ca -addext basicConstraints=critical,CA:TRUE; "
      "openssl req " +
      ec +
      " -keyout server.key -out server.csr -subj /CN=kube-apiserver; "
      "printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' "
      "> server.ext; "
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt "
      "-days 2 -extfile server.ext; "
      "openssl req " +
      ec +
      " -keyout wrong-name.key -out wrong-name.csr -subj /CN=other; "
      "printf 'subjectAltName=DNS:other.invalid\\n' > wrong-name.ext; "
      "openssl x509 -req -in wrong-name.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out wrong-name.crt -days 2 -extfile wrong-name.ext; "
      "openssl req " +
      ec +
      " -keyout client.key -out client.crt.csr -subj /CN=meshlet; "
      "printf 'extendedKeyUsage=clientAuth\\n' > client.ext; "
      "openssl x509 -req -in client.crt.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out client.crt -days 2 -extfile client.ext";
  std::string full = "(" + cmds + ") >'" + d + "/pki.log' 2>&1";
  if (std::system(full.c_str()) != 0) return "openssl failed: " + readText(d + "/pki.log");
  return "";
}

FakeApiServer::FakeApiServer(std::string pki_dir, std::string cert)
    : pki_(std::move(pki_dir)), cert_(std::move(cert)) {}
FakeApiServer::~FakeApiServer() { stop(); }

bool FakeApiServer::start(int port) {
  if (port == 0) port = port_;
  if (!ctx_) {
    auto c = tls::makeServerContext(readText(pki_ + "/" + cert_ + ".crt"),
                                    readText(pki_ + "/" + cert_ + ".key"));
    if (!c.ok()) return false;
    ctx_ = *c;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 64) != 0) {
    ::close(fd);
    return false;
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  {
    std::lock_guard<std::mutex> lock(mu_);
    port_ = ntohs(a.sin_port);
    listen_fd_ = fd;
    running_ = true;
  }
  acceptor_ = std::thread([this, fd] { acceptLoop(fd); });
  return true;
}

void FakeApiServer::stop() {
  std::vector<std::thread> handlers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!running_) return;
    running_ = false;
    ++generation_;
    ::shutdown(listen_fd_, SHUT_RDWR);
    for (int c : conns_) ::shutdown(c, SHUT_RDWR);
  }
  cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    handlers.swap(handlers_);
  }
  for (auto& t : handlers) t.join();
  std::lock_guard<std::mutex> lock(mu_);
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void FakeApiServer::acceptLoop(int lfd) {
  while (true) {
    int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    std::lock_guard<std::mutex> lock(mu_);
    if (c < 0 || !running_) {
      if (c >= 0) ::close(c);
      return;
    }
    conns_.insert(c);
    handlers_.emplace_back([this, c] { handle(c); });
  }
}

void FakeApiServer::serve(const std::string& path, const std::string& list_kind,
                          const std::string& api_version, const std::string& kind) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& c = served_[path];
  c.list_kind = list_kind;
  c.api_version = api_version;
  c.kind = kind;
}

void FakeApiServer::unserve(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  served_.erase(path);
  ++generation_;
  cv_.notify_all();
}

void FakeApiServer::forbid(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  forbidden_.insert(path);
}

void FakeApiServer::notify(const std::string& path, const std::string& type,
                           const FakeJson& object) {
  auto& c = served_.at(path);
  c.history.push_back({rv_, type, object});
  cv_.notify_all();
}

void FakeApiServer::put(const std::string& path, FakeJson object) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& c = served_.at(path);
  object["metadata"]["resourceVersion"] = std::to_string(++rv_);
  std::string key = keyOf(object);
  bool existed = c.objects.count(key) > 0;
  c.objects[key] = object;
  notify(path, existed ? "MODIFIED" : "ADDED", object);
}

void FakeApiServer::remove(const std::string& path, const std::string& ns,
                           const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& c = served_.at(path);
  std::string key = ns.empty() ? name : ns + "/" + name;
  auto it = c.objects.find(key);
  if (it == c.objects.end()) return;
  FakeJson o = it->second;
  c.objects.erase(it);
  o["metadata"]["resourceVersion"] = std::to_string(++rv_);
  notify(path, "DELETED", o);
}

void FakeApiServer::bookmark(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& c = served_.at(path);
  FakeJson o = {{"kind", c.kind},
                {"apiVersion", c.api_version},
                {"metadata",
                 {{"resourceVersion", std::to_string(++rv_)},
                  {"annotations", {{"k8s.io/initial-events-end", "true"}}}}}};
  notify(path, "BOOKMARK", o);
}

void FakeApiServer::expireWatches(const std::string& path, bool as_status_code) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& c = served_.at(path);
  c.history.clear();
  c.oldest_rv = ++rv_;
  c.status_410 = as_status_code;
  FakeJson status = {{"kind", "Status"},
                     {"apiVersion", "v1"},
                     {"metadata", FakeJson::object()},
                     {"status", "Failure"},
                     {"message", "too old resource version: 1 (" + std::to_string(rv_) + ")"},
                     {"reason", "Expired"},
                     {"code", 410}};
  c.history.push_back({rv_, "ERROR", status});
  cv_.notify_all();
}

void FakeApiServer::dropWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  cv_.notify_all();
}

void FakeApiServer::setToken(const std::string& token, const std::string& also) {
  std::lock_guard<std::mutex> lock(mu_);
  token_ = token;
  token_also_ = also;
}

std::string FakeApiServer::lastToken() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_token_;
}

void FakeApiServer::setPageSize(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  page_size_ = n;
}

int FakeApiServer::lists(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return lists_[path];
}
int FakeApiServer::watches(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return watches_[path];
}
int FakeApiServer::unauthorized() {
  std::lock_guard<std::mutex> lock(mu_);
  return unauthorized_;
}
std::string FakeApiServer::lastWatchRv(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return last_watch_rv_[path];
}
int FakeApiServer::openWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  return open_watches_;
}

bool FakeApiServer::waitUntil(const std::function<bool()>& pred, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

FakeJson FakeApiServer::withKind(const Collection& c, const FakeJson& o) const {
  FakeJson out = o;
  out["kind"] = c.kind;
  out["apiVersion"] = c.api_version;
  return out;
}

void FakeApiServer::handle(int fd) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto finish = [this, fd] {
    std::lock_guard<std::mutex> lock(mu_);
    conns_.erase(fd);
  };
  auto ctx = ctx_;
  if (!ctx) {
    finish();
    ::close(fd);
    return;
  }
  auto conn = tls::TlsConn::accept(fd, *ctx);  // owns fd from here
  if (!conn.ok()) {
    finish();
    return;
  }
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
    auto n = (*conn)->read(buf, sizeof(buf));
    if (!n.ok() || *n == 0) {
      finish();
      return;
    }
    req.append(buf, *n);
  }
  std::istringstream in(req.substr(0, req.find("\r\n\r\n")));
  std::string line, method, target;
  std::getline(in, line);
  std::istringstream rl(line);
  rl >> method >> target;
  std::map<std::string, std::string> headers;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string k = line.substr(0, colon);
    std::transform(k.begin(), k.end(), k.begin(), ::tolower);
    headers[k] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  std::string out = respond(method, target, headers, fd, conn->get());
  if (!out.empty()) (void)(*conn)->write(out);
  (*conn)->close();
  finish();
}

std::string FakeApiServer::respond(const std::string& method, const std::string& target,
                                   const std::map<std::string, std::string>& headers, int fd,
                                   void* conn_ptr) {
  auto& conn = *static_cast<tls::TlsConn*>(conn_ptr);
  size_t q = target.find('?');
  std::string path = target.substr(0, q);
  auto query = parseQuery(q == std::string::npos ? "" : target.substr(q + 1));
  std::unique_lock<std::mutex> lock(mu_);
  auto auth = headers.find("authorization");
  last_token_ =
      auth == headers.end() || auth->second.rfind("Bearer ", 0) != 0 ? "" : auth->second.substr(7);
  if (!token_.empty()) {
    if (last_token_ != token_ && (token_also_.empty() || last_token_ != token_also_)) {
      ++unauthorized_;
      return reply(401, "Unauthorized", statusBody(401, "Unauthorized", "Unauthorized"));
    }
  }
  if (method != "GET")
    return reply(405, "Method Not Allowed", statusBody(405, "MethodNotAllowed", method));
  if (forbidden_.count(path)) {
    return reply(403, "Forbidden",
                 statusBody(403, "Forbidden", "serviceaccount cannot list resource at " + path));
  }
  auto cit = served_.find(path);
  if (cit == served_.end()) {
    return reply(404, "Not Found",
                 statusBody(404, "NotFound",
                            "the server could not find the "
                            "requested resource"));
  }
  Collection& c = cit->second;
  if (query.count("watch") == 0) {
    ++lists_[path];
    size_t offset = query.count("continue") ? std::stoul(query["continue"]) : 0;
    size_t limit = query.count("limit") ? std::stoul(query["limit"]) : 0;
    if (page_size_ > 0) limit = limit == 0 ? page_size_ : std::min<size_t>(limit, page_size_);
    FakeJson items = FakeJson::array();
    size_t i = 0;
    for (const auto& [key, o] : c.objects) {
      if (i++ < offset) continue;
      if (limit > 0 && items.size() == limit) break;
      items.push_back(o);  // list items carry no kind/apiVersion
    }
    FakeJson meta = {{"resourceVersion", std::to_string(rv_)}};
    if (limit > 0 && offset + items.size() < c.objects.size()) {
      meta["continue"] = std::to_string(offset + items.size());
      meta["remainingItemCount"] = c.objects.size() - offset - items.size();
    }
    FakeJson body = {
        {"kind", c.list_kind}, {"apiVersion", c.api_version}, {"metadata", meta}, {"items", items}};
    return reply(200, "OK", body.dump());
  }
  // A watch.
  ++watches_[path];
  std::string rv_text = query["resourceVersion"];
  last_watch_rv_[path] = rv_text;
  uint64_t from = rv_text.empty() ? 0 : std::stoull(rv_text);
  if (from < c.oldest_rv && c.status_410) {
    return reply(410, "Gone", statusBody(410, "Expired", "too old resource version"));
  }
  int timeout_s = query.count("timeoutSeconds") ? std::stoi(query["timeoutSeconds"]) : 1800;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  uint64_t gen = generation_;
  ++open_watches_;
  lock.unlock();
  if (!conn.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n")) {
    lock.lock();
    --open_watches_;
    return "";
  }
  lock.lock();
  bool expired_at_start = from < c.oldest_rv;
  uint64_t sent = from;
  std::string out;
  while (true) {
    if (generation_ != gen || served_.find(path) == served_.end()) {
      // Dropped: no final chunk.
      --open_watches_;
      ::shutdown(fd, SHUT_RDWR);
      return "";
    }
    auto& coll = served_.at(path);
    std::string batch;
    bool ended = false;
    if (expired_at_start) {
      batch +=
          chunk(FakeJson{{"type", "ERROR"},
                         {"object",
                          FakeJson::parse(statusBody(410, "Expired", "too old resource version"))}}
                    .dump() +
                "\n");
      ended = true;
    } else {
      for (const Event& e : coll.history) {
        if (e.rv <= sent) continue;
        sent = e.rv;
        FakeJson obj =
            e.type == "ERROR" || e.type == "BOOKMARK" ? e.object : withKind(coll, e.object);
        batch += chunk(FakeJson{{"type", e.type}, {"object", obj}}.dump() + "\n");
        if (e.type == "ERROR") {
          ended = true;
          break;
        }
      }
    }
    if (!batch.empty()) {
      lock.unlock();
      bool ok = conn.write(batch).ok();
      lock.lock();
      if (!ok) {
        --open_watches_;
        return "";
      }
    }
    if (ended || std::chrono::steady_clock::now() >= deadline || !running_) {
      --open_watches_;
      return "0\r\n\r\n";
    }
    cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() +
                                                std::chrono::milliseconds(200)));
  }
}

FakeJson realNamespace(const std::string& name, const std::map<std::string, std::string>& labels) {
  FakeJson m = baseMeta("", name);
  FakeJson l = {{"kubernetes.io/metadata.name", name}};
  for (const auto& [k, v] : labels) l[k] = v;
  m["labels"] = l;
  return {{"metadata", m},
          {"spec", {{"finalizers", {"kubernetes"}}}},
          {"status", {{"phase", "Active"}}}};
}

FakeJson realService(const std::string& ns, const std::string& name, const std::string& ip,
                     int port, int target_port, const std::string& app) {
  FakeJson m = baseMeta(ns, name);
  m["labels"] = {{"app", app}};
  m["annotations"] = {{"kubectl.kubernetes.io/last-applied-configuration",
                       "{\"apiVersion\":\"v1\",\"kind\":\"Service\"}\n"}};
  return {
      {"metadata", m},
      {"spec",
       {{"ports",
         {{{"name", "tcp"}, {"protocol", "TCP"}, {"port", port}, {"targetPort", target_port}}}},
        {"selector", {{"app", app}}},
        {"clusterIP", ip},
        {"clusterIPs", {ip}},
        {"type", "ClusterIP"},
        {"sessionAffinity", "None"},
        {"ipFamilies", {"IPv4"}},
        {"ipFamilyPolicy", "SingleStack"},
        {"internalTrafficPolicy", "Cluster"}}},
      {"status", {{"loadBalancer", FakeJson::object()}}}};
}

FakeJson realEndpointSlice(const std::string& ns, const std::string& name,
                           const std::string& service, int port,
                           const std::vector<FakeEndpoint>& endpoints) {
  FakeJson m = baseMeta(ns, name);
  m["generateName"] = service + "-";
  m["generation"] = 3;
  m["labels"] = {{"endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io"},
                 {"kubernetes.io/service-name", service}};
  m["annotations"] = {{"endpoints.kubernetes.io/last-change-trigger-time", "2026-11-27T20:00:00Z"}};
  m["ownerReferences"] = {{{"apiVersion", "v1"},
                           {"kind", "Service"},
                           {"name", service},
                           {"uid", "6a1b2c3d-0000-4000-8000-000000000001"},
                           {"controller", true},
                           {"blockOwnerDeletion", true}}};
  FakeJson eps = FakeJson::array();
  for (const auto& e : endpoints) {
    eps.push_back(
        {{"addresses", {e.ip}},
         {"conditions", {{"ready", e.ready}, {"serving", e.ready}, {"terminating", false}}},
         {"targetRef",
          {{"kind", "Pod"},
           {"namespace", ns},
           {"name", e.pod},
           {"uid", "7b2c3d4e-0000-4000-8000-000000000002"}}},
         {"nodeName", e.node}});
  }
  return {{"metadata", m},
          {"addressType", "IPv4"},
          {"endpoints", eps},
          {"ports", {{{"name", "tcp"}, {"protocol", "TCP"}, {"port", port}}}}};
}

FakeJson realPod(const std::string& ns, const std::string& name, const std::string& ip,
                 const std::string& node, const std::string& app, const std::string& netns) {
  FakeJson m = baseMeta(ns, name);
  m["generateName"] = app + "-5d8f7c9b4-";
  m["labels"] = {{"app", app}, {"pod-template-hash", "5d8f7c9b4"}};
  if (!netns.empty()) m["annotations"] = {{"meshlet.io/netns", netns}};
  m["ownerReferences"] = {{{"apiVersion", "apps/v1"},
                           {"kind", "ReplicaSet"},
                           {"name", app + "-5d8f7c9b4"},
                           {"uid", "8c3d4e5f-0000-4000-8000-000000000003"},
                           {"controller", true},
                           {"blockOwnerDeletion", true}}};
  FakeJson spec = {{"containers",
                    {{{"name", "app"},
                      {"image", "nginx:1.27"},
                      {"ports", {{{"name", "http"}, {"containerPort", 8080}, {"protocol", "TCP"}}}},
                      {"resources", FakeJson::object()},
                      {"terminationMessagePath", "/dev/termination-log"},
                      {"terminationMessagePolicy", "File"},
                      {"imagePullPolicy", "IfNotPresent"},
                      {"volumeMounts",
                       {{{"name", "kube-api-access-x7k2p"},
                         {"readOnly", true},
                         {"mountPath", "/var/run/secrets/kubernetes.io/serviceaccount"}}}}}}},
                   {"restartPolicy", "Always"},
                   {"terminationGracePeriodSeconds", 30},
                   {"dnsPolicy", "ClusterFirst"},
                   {"serviceAccountName", "default"},
                   {"serviceAccount", "default"},
                   {"nodeName", node},
                   {"securityContext", FakeJson::object()},
                   {"schedulerName", "default-scheduler"},
                   {"tolerations",
                    {{{"key", "node.kubernetes.io/not-ready"},
                      {"operator", "Exists"},
                      {"effect", "NoExecute"},
                      {"tolerationSeconds", 300}}}},
                   {"priority", 0},
                   {"enableServiceLinks", true},
                   {"preemptionPolicy", "PreemptLowerPriority"}};
  FakeJson status = {{"phase", "Running"},
                     {"conditions",
                      {{{"type", "Initialized"},
                        {"status", "True"},
                        {"lastProbeTime", nullptr},
                        {"lastTransitionTime", "2026-11-27T20:00:00Z"}},
                       {{"type", "Ready"},
                        {"status", "True"},
                        {"lastProbeTime", nullptr},
                        {"lastTransitionTime", "2026-11-27T20:00:01Z"}},
                       {{"type", "ContainersReady"},
                        {"status", "True"},
                        {"lastProbeTime", nullptr},
                        {"lastTransitionTime", "2026-11-27T20:00:01Z"}},
                       {{"type", "PodScheduled"},
                        {"status", "True"},
                        {"lastProbeTime", nullptr},
                        {"lastTransitionTime", "2026-11-27T20:00:00Z"}}}},
                     {"hostIP", "198.18.255.1"},
                     {"hostIPs", {{{"ip", "198.18.255.1"}}}},
                     {"podIP", ip},
                     {"podIPs", {{{"ip", ip}}}},
                     {"startTime", "2026-11-27T20:00:00Z"},
                     {"containerStatuses",
                      {{{"name", "app"},
                        {"state", {{"running", {{"startedAt", "2026-11-27T20:00:01Z"}}}}},
                        {"lastState", FakeJson::object()},
                        {"ready", true},
                        {"restartCount", 0},
                        {"image", "docker.io/library/nginx:1.27"},
                        {"imageID", "docker.io/library/nginx@sha256:0123"},
                        {"containerID", "containerd://abc123"},
                        {"started", true}}}},
                     {"qosClass", "BestEffort"}};
  return {{"metadata", m}, {"spec", spec}, {"status", status}};
}

}  // namespace meshlet::testing

// The Kubernetes source: list+watch threads over the HTTPS client, into the KubeStore.
#include "agent/sources/kube_source.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "agent/common/log.h"

namespace meshlet {
namespace {

std::string urlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string scalarOf(const YamlNode& n) { return std::string(n.scalar()); }

std::string metaField(const YamlNode& obj, const char* field) {
  return scalarOf(obj.get("metadata").get(field));
}

// The message of a metav1.Status body, or the start of whatever the body is.
std::string bodyMessage(const std::string& body) {
  YamlDocument doc;
  YamlParseError e;
  if (doc.parse(body, e) && doc.root().get("message").isScalar()) {
    return scalarOf(doc.root().get("message"));
  }
  std::string s = body.substr(0, 200);
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

std::string httpError(const std::string& what, const tls::HttpResponse& r) {
  std::string msg = bodyMessage(r.body);
  return what + ": HTTP " + std::to_string(r.status) + (msg.empty() ? "" : ": " + msg);
}

// Exponential backoff with jitter: the n-th delay is uniform in [d/2, d], d = initial * 2^n,
// capped.
class Backoff {
 public:
  Backoff(int initial_ms, int max_ms)
      : initial_(initial_ms), max_(max_ms), rng_(std::random_device{}()) {}
  int next() {
    int64_t d = static_cast<int64_t>(initial_) << std::min(attempt_, 20);
    if (d > max_) d = max_;
    if (attempt_ < 30) ++attempt_;
    std::uniform_int_distribution<int64_t> pick(d / 2, d);
    return static_cast<int>(pick(rng_));
  }
  void reset() { attempt_ = 0; }

 private:
  int initial_, max_;
  int attempt_ = 0;
  std::mt19937 rng_;
};

}  // namespace

// The bearer token: fixed, or read from a file and re-read when the file changes (projected
// service account tokens rotate in place) or when the server says 401.
class KubeSource::Tokens {
 public:
  Tokens(std::string fixed, std::string file) : token_(std::move(fixed)), file_(std::move(file)) {}

  std::string get() {
    std::lock_guard<std::mutex> lock(mu_);
    if (file_.empty()) return token_;
    struct stat st {};
    std::string sig;
    if (stat(file_.c_str(), &st) == 0) {
      sig = std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
            std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    }
    if (sig != sig_) readLocked(sig);
    return token_;
  }
  // After a 401: read the file again whatever its signature; true when the token changed.
  bool reload() {
    std::lock_guard<std::mutex> lock(mu_);
    if (file_.empty()) return false;
    std::string before = token_;
    readLocked(sig_);
    return token_ != before;
  }

 private:
  void readLocked(const std::string& sig) {
    std::ifstream f(file_);
    if (!f) {
      logWarn("kube source: cannot read the token file " + file_ + ": " + std::strerror(errno) +
              " (keeping the previous token)");
      return;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    std::string t = ss.str();
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
    if (!token_.empty() && t != token_) logInfo("kube source: token file " + file_ + " changed");
    token_ = std::move(t);
    sig_ = sig;
  }

  std::mutex mu_;
  std::string token_;
  std::string file_;
  std::string sig_;
};

KubeSource::KubeSource(KubeConfig cfg, KubeSourceOptions opts)
    : cfg_(std::move(cfg)), opts_(opts), store_(kubeResources().size()) {
  status_.origin = cfg_.origin;
  status_.server = cfg_.server();
  status_.since = nowRfc3339();
  for (const KubeResource& r : kubeResources()) {
    KubeResourceStatus rs;
    rs.resource = r.name();
    rs.state = "syncing";
    status_.resources.push_back(rs);
  }
}

KubeSource::~KubeSource() { stop(); }

Status KubeSource::start() {
  tls::ClientTlsOptions t;
  t.ca_pem = cfg_.ca_pem;
  t.insecure_skip_verify = cfg_.insecure_skip_verify;
  t.cert_pem = cfg_.client_cert_pem;
  t.key_pem = cfg_.client_key_pem;
  auto ctx = tls::makeClientContext(t);
  if (!ctx.ok()) return ctx.error().wrap("kube source (" + cfg_.origin + ")");
  tls_ = *ctx;
  tokens_ = std::make_unique<Tokens>(cfg_.token, cfg_.token_file);
  for (size_t i = 0; i < kubeResources().size(); ++i) {
    tls::HttpsClientOptions o;
    o.host = cfg_.host;
    o.port = cfg_.port;
    o.tls = tls_;
    o.connect_timeout_ms = opts_.connect_timeout_ms;
    o.io_timeout_ms = opts_.io_timeout_ms;
    clients_.push_back(std::make_unique<tls::HttpsClient>(o));
  }
  logInfo("kube source: following " + cfg_.server() + " (" + cfg_.origin + ")");
  for (size_t i = 0; i < kubeResources().size(); ++i) threads_.emplace_back([this, i] { run(i); });
  return Status::Ok();
}

void KubeSource::stop() {
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    if (stop_.exchange(true) && threads_.empty()) return;
  }
  sleep_cv_.notify_all();
  for (auto& c : clients_) c->cancel();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

bool KubeSource::sleepFor(int ms) {
  std::unique_lock<std::mutex> lock(sleep_mu_);
  sleep_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_.load(); });
  return !stop_;
}

std::shared_ptr<Snapshot> KubeSource::take() {
  std::vector<std::string> dropped;
  auto snap = store_.take(&dropped);
  if (snap && dropped != last_dropped_) {
    for (const std::string& d : dropped) {
      logError("kube source: " + d + " (the Service is left out until that is resolved)");
    }
    last_dropped_ = dropped;
  }
  return snap;
}

KubeSourceStatus KubeSource::status() const {
  KubeSourceStatus s;
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    s = status_;
  }
  for (size_t i = 0; i < s.resources.size(); ++i) s.resources[i].objects = store_.size(i);
  s.synced = store_.allSynced();
  return s;
}

void KubeSource::setConnected(bool connected, const std::string& error) {
  std::lock_guard<std::mutex> lock(status_mu_);
  if (!connected) status_.last_error = error;
  if (status_.connected == connected) return;
  status_.connected = connected;
  status_.since = nowRfc3339();
  if (connected) {
    logInfo("kube source: connected to " + cfg_.server());
  } else {
    logError("kube source: API server " + cfg_.server() + " unreachable: " + error +
             "; the last known state stays in force");
  }
}

void KubeSource::setState(size_t index, const std::string& state, const std::string& version,
                          const std::string& error) {
  std::lock_guard<std::mutex> lock(status_mu_);
  auto& r = status_.resources[index];
  r.state = state;
  if (!version.empty()) r.api_version = version;
  r.error = error;
}

void KubeSource::countRejected(size_t index) {
  std::lock_guard<std::mutex> lock(status_mu_);
  status_.resources[index].rejected++;
}

Result<tls::HttpResponse> KubeSource::call(size_t index, const std::string& target, bool stream,
                                           int idle_timeout_ms,
                                           const std::function<bool(std::string_view)>& on_line,
                                           bool* started) {
  tls::HttpsClient& client = *clients_[index];
  for (int attempt = 0;; ++attempt) {
    std::string token = tokens_->get();
    bool began = false;
    auto on_status = [&](int status) {
      began = true;
      if (status < 500 && status != 401) setConnected(true, "");
    };
    auto r = stream ? client.stream(target, token, idle_timeout_ms, on_line, on_status)
                    : client.get(target, token);
    if (started) *started = began;
    if (!r.ok()) {
      if (r.error().code() != ECANCELED && !began) setConnected(false, r.error().message());
      return r;
    }
    if (r->status == 401) {
      if (attempt == 0) {
        tokens_->reload();
        continue;  // no line was delivered for a non-2xx answer: safe to retry
      }
      std::string e = httpError("GET " + target, *r) + " (the API server rejects the credentials" +
                      (cfg_.token_file.empty() ? "" : "; token file " + cfg_.token_file) + ")";
      setConnected(false, e);
      return Error(e, EACCES);
    }
    if (r->status >= 500) {
      setConnected(false, httpError("GET " + target, *r));
    } else {
      setConnected(true, "");
    }
    return r;
  }
}

KubeSource::Outcome KubeSource::list(size_t index, std::string& version, std::string& rv,
                                     std::string& error) {
  const KubeResource& res = kubeResources()[index];
  std::string where = "kube list " + res.name();
  for (const std::string& v : res.versions) {
    std::map<std::string, KubeStore::Fragment> objects;
    std::set<std::string> keep;
    std::string cont;
    int restarts = 0;
    bool not_found = false;
    while (true) {
      std::string target = res.path(v) + "?limit=" + std::to_string(opts_.page_size);
      if (!cont.empty()) target += "&continue=" + urlEncode(cont);
      auto r = call(index, target, false, 0, nullptr);
      if (!r.ok()) {
        error = r.error().message();
        return Outcome::kError;
      }
      if (r->status == 404 && cont.empty()) {
        not_found = true;
        break;
      }
      if (r->status == 410 && !cont.empty() && restarts++ < 3) {
        // The continue token expired mid-list: start the list over.
        objects.clear();
        keep.clear();
        cont.clear();
        continue;
      }
      if (r->status == 403 && res.optional) {
        error = httpError("GET " + target, *r);
        return Outcome::kForbidden;
      }
      if (r->status != 200) {
        error = httpError("GET " + target, *r);
        return Outcome::kError;
      }
      YamlDocument doc;  // the objects are parsed from it, none refers to it afterwards
      YamlParseError e;
      if (!doc.parse(r->body, e)) {
        error = "GET " + target + ": invalid JSON: " + e.format();
        return Outcome::kError;
      }
      YamlNode body = doc.root();
      YamlNode items = body.get("items");
      if (items.present() && !items.isSeq()) {
        error = "GET " + target + ": items is not a list";
        return Outcome::kError;
      }
      for (size_t i = 0; i < items.size(); ++i) {
        YamlNode item = items.at(i);
        std::string key = kubeObjectKey(item);
        auto f = parseKubeObject(item, res, res.apiVersion(v), where);
        if (f.ok() && !key.empty()) {
          objects[key] = *f;
          continue;
        }
        countRejected(index);
        bool had = !key.empty() && store_.has(index, key);
        logError(
            "kube source: rejected " +
            (f.ok() ? where + ": " + res.kind + " without metadata.name" : f.error().message()) +
            (had ? "; its previous version stays in force" : "; it is left out"));
        if (!key.empty()) keep.insert(key);
      }
      rv = metaField(body, "resourceVersion");
      cont = metaField(body, "continue");
      if (cont.empty()) break;
    }
    if (not_found) continue;
    store_.replace(index, std::move(objects), keep);
    version = v;
    return Outcome::kOk;
  }
  if (res.optional) return Outcome::kNotInstalled;
  error = "GET " + res.path(res.versions[0]) + ": HTTP 404: the API server does not serve " +
          res.name();
  return Outcome::kError;
}

KubeSource::Outcome KubeSource::watch(size_t index, const std::string& version, std::string& rv,
                                      std::string& error, int& events) {
  const KubeResource& res = kubeResources()[index];
  std::string where = "kube watch " + res.name();
  std::string target = res.path(version) +
                       "?watch=1&allowWatchBookmarks=true&resourceVersion=" + urlEncode(rv) +
                       "&timeoutSeconds=" + std::to_string(opts_.watch_timeout_s);
  bool gone = false;
  std::string stream_error;
  auto on_line = [&](std::string_view line) -> bool {
    YamlDocument doc;
    YamlParseError e;
    if (!doc.parse(line, e)) {
      stream_error = where + ": invalid event JSON: " + e.format();
      return false;
    }
    YamlNode ev = doc.root();
    std::string type = scalarOf(ev.get("type"));
    YamlNode obj = ev.get("object");
    if (type == "ERROR") {
      std::string code = scalarOf(obj.get("code"));
      std::string msg = scalarOf(obj.get("message"));
      if (code == "410") {
        gone = true;
      } else {
        stream_error = where + ": ERROR event " + code + (msg.empty() ? "" : ": " + msg);
      }
      return false;
    }
    if (!obj.isMap()) {
      stream_error = where + ": event without an object";
      return false;
    }
    ++events;
    std::string new_rv = metaField(obj, "resourceVersion");
    std::string key = kubeObjectKey(obj);
    if (type == "ADDED" || type == "MODIFIED") {
      auto f = parseKubeObject(obj, res, res.apiVersion(version), where);
      if (f.ok() && !key.empty()) {
        store_.upsert(index, key, *f);
      } else {
        countRejected(index);
        bool had = !key.empty() && store_.has(index, key);
        logError(
            "kube source: rejected " +
            (f.ok() ? where + ": " + res.kind + " without metadata.name" : f.error().message()) +
            (had ? "; its previous version stays in force" : "; it is left out"));
      }
    } else if (type == "DELETED") {
      if (!key.empty()) store_.erase(index, key);
    } else if (type != "BOOKMARK") {
      logWarn(where + ": unknown event type \"" + type + "\" ignored");
    }
    if (!new_rv.empty()) rv = new_rv;
    return !stopping();
  };
  int idle_ms = (opts_.watch_timeout_s + 30) * 1000;
  bool started = false;
  auto r = call(index, target, true, idle_ms, on_line, &started);
  if (!r.ok()) {
    error = r.error().message();
    if (started && stream_error.empty() && !gone) {
      // The stream was cut (a restarted API server, a load balancer's idle timeout): resume.
      logInfo("kube source: " + where + ": connection dropped (" + error + "); resuming from " +
              "resourceVersion " + rv);
      return Outcome::kEnded;
    }
    return Outcome::kError;
  }
  if (r->status == 410 || gone) return Outcome::kGone;
  if (r->status == 404) return Outcome::kGone;  // the CRD went away: the list will tell
  if (r->status != 200) {
    error = httpError("GET " + target, *r);
    return Outcome::kError;
  }
  if (!stream_error.empty()) {
    error = stream_error;
    return Outcome::kError;
  }
  return Outcome::kEnded;
}

void KubeSource::run(size_t index) {
  const KubeResource& res = kubeResources()[index];
  Backoff backoff(opts_.backoff_initial_ms, opts_.backoff_max_ms);
  bool listed = false;
  bool said_not_installed = false;
  std::string version, rv, error;
  while (!stopping()) {
    if (!listed) {
      Outcome o = list(index, version, rv, error);
      if (stopping()) break;
      if (o == Outcome::kNotInstalled || o == Outcome::kForbidden) {
        bool forbidden = o == Outcome::kForbidden;
        store_.replace(index, {}, {});
        store_.markSynced(index);
        setState(index, forbidden ? "forbidden" : "not installed", "", forbidden ? error : "");
        if (!said_not_installed) {
          std::string again =
              "; checking again every " + std::to_string(opts_.crd_recheck_ms) + " ms";
          if (forbidden) {
            logWarn("kube source: " + res.name() + ": " + error + " (RBAC)" + again);
          } else {
            logInfo("kube source: " + res.name() +
                    " is not served by the API server (CRD not installed)" + again);
          }
          said_not_installed = true;
        }
        sleepFor(opts_.crd_recheck_ms);
        continue;
      }
      if (o != Outcome::kOk) {
        setState(index, "error", "", error);
        int ms = backoff.next();
        logWarn("kube source: list " + res.name() + ": " + error + "; retrying in " +
                std::to_string(ms) + " ms");
        sleepFor(ms);
        continue;
      }
      if (said_not_installed) {
        logInfo("kube source: " + res.name() + " is now served (" + res.apiVersion(version) + ")");
        said_not_installed = false;
      }
      listed = true;
      store_.markSynced(index);
      setState(index, "synced", res.apiVersion(version), "");
      backoff.reset();
    }
    auto started = std::chrono::steady_clock::now();
    int events = 0;
    Outcome o = watch(index, version, rv, error, events);
    if (stopping()) break;
    if (o == Outcome::kGone) {
      logInfo("kube source: watch " + res.name() + ": resourceVersion " + rv +
              " is too old (410 Gone); listing again");
      listed = false;
      continue;
    }
    bool short_lived = std::chrono::steady_clock::now() - started < std::chrono::seconds(1);
    if (o == Outcome::kError) {
      setState(index, "error", "", error);
      int ms = backoff.next();
      logWarn("kube source: watch " + res.name() + ": " + error + "; retrying in " +
              std::to_string(ms) + " ms");
      sleepFor(ms);
      continue;
    }
    // The server ended the watch (timeoutSeconds, or a dropped connection): resume from rv. A
    // watch that ends at once, again and again, is throttled like an error.
    setState(index, "synced", "", "");
    if (events > 0 || !short_lived) {
      backoff.reset();
    } else {
      sleepFor(backoff.next());
    }
  }
}

}  // namespace meshlet

#include "agent/proxy/mesh_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "agent/common/log.h"
#include "agent/datapath/datapath.h"
#include "agent/hbone/link.h"
#include "agent/hbone/relay.h"
#include "agent/l7/h2_bridge.h"
#include "agent/policy/authz.h"
#include "agent/proxy/event_loop.h"
#include "agent/proxy/netns_socket.h"
#include "agent/proxy/tcp_pipe.h"
#include "agent/tls/mtls.h"

namespace meshlet::proxy {
namespace {

constexpr uint32_t kStreamGone = 8;  // NGHTTP2_CANCEL: makes a relay reset its socket
// Streams a pooled link carries at once before the next connection gets a link of its own (as
// ztunnel's pool does): one TCP connection's window and loss recovery are shared by all its
// streams, and a peer may allow fewer (its SETTINGS_MAX_CONCURRENT_STREAMS; beyond it nghttp2
// would hold the CONNECT until a stream ends, stalling the app's connection).
constexpr size_t kStreamsPerLink = 100;
// CONNECT header naming the service the client dialled, for the destination's telemetry.
constexpr const char* kServiceHeader = "x-meshlet-service";
// CONNECT header of an L7-path upstream: the client's agent authorized each request on it with
// every HTTP attribute, so the destination judges AuthorizationPolicy rules on their L4 parts
// (authorizeL4AfterL7). HBONE clients are node agents (workloads never hold their SVIDs).
constexpr const char* kL7Header = "x-meshlet-l7-authorized";

std::string hostPort(const IpAddr& ip, int port) {
  return (ip.isV4() ? ip.toString() : "[" + ip.toString() + "]") + ":" + std::to_string(port);
}

bool parseAuthority(const std::string& a, IpAddr* ip, int* port) {
  size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon + 1 >= a.size()) return false;
  std::string host = a.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto parsed = IpAddr::parse(host);
  if (!parsed) return false;
  int p = 0;
  for (char c : a.substr(colon + 1)) {
    if (c < '0' || c > '9' || p > 65535) return false;
    p = p * 10 + (c - '0');
  }
  if (p < 1 || p > 65535) return false;
  *ip = *parsed;
  *port = p;
  return true;
}

IpAddr ipOf(const sockaddr_storage& ss) {
  IpAddr ip;
  if (ss.ss_family == AF_INET) {
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, 4);
  } else {
    ip.family = IpFamily::kV6;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, 16);
  }
  return ip;
}

int portOf(const sockaddr_storage& ss) {
  return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&ss)->sin_port
                                       : reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
}

// How a non-blocking connect stands: -1 still in progress, 0 connected, else its errno.
int connectOutcome(int fd) {
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, 0) != 1) return -1;
  return socketError(fd);
}

std::string principalOf(const std::string& spiffe_id) {
  constexpr std::string_view kScheme = "spiffe://";
  return spiffe_id.rfind(kScheme, 0) == 0 ? spiffe_id.substr(kScheme.size()) : spiffe_id;
}

}  // namespace

struct MeshProxy::Impl {
  struct ConnBase {
    TunnelConn info;
    bool opened = false;  // counted as opened (inbound: once the app accepted)
    uint64_t reported_sent = 0, reported_received = 0;  // bytes already told to events.bytes
  };
  struct Conn : ConnBase {  // a stream of an HBONE link
    std::unique_ptr<hbone::Relay> relay;
    uint64_t sent() const { return relay->bytesUp(); }
    uint64_t received() const { return relay->bytesDown(); }
  };
  struct PlainConn : ConnBase {  // captured plaintext: client socket (a) piped to the app (b)
    std::unique_ptr<TcpPipe> pipe;
    uint64_t sent() const { return pipe->bytesBtoA(); }
    uint64_t received() const { return pipe->bytesAtoB(); }
  };
  struct L7Conn : ConnBase {  // an app connection on the L7 path
    std::unique_ptr<l7::HttpSession> session;
  };
  struct H2Conn : ConnBase {  // an L7 app connection that speaks HTTP/2: a session per stream
    std::unique_ptr<l7::H2ServerBridge> bridge;
  };
  struct LinkEntry {
    std::unique_ptr<hbone::Link> link;  // declared first: destroyed after the relays using it
    std::map<int32_t, Conn> conns;
    bool inbound = false;
    std::string pool_key;  // outbound while it takes new streams; "" once draining
    IpAddr target;         // outbound: the pod dialled
    std::string target_id;
    std::string pod_key;  // the pod on this node
    IpAddr peer_ip;       // inbound: the client pod's IP
    bool dead = false;
    std::vector<int32_t> full;  // streams whose relay waits for the link's progress
    uint64_t seen_activity = 0;  // the link's activity() at the last idle check
  };
  struct PodState {
    ProxyPod pod;
    std::vector<int> fds;
    std::map<uint8_t, int> plain_fds;  // 15006 listener by family (MESHLET_AF_*)
    std::vector<std::string> errors;
    std::unique_ptr<SpareSockets> spares;  // made on first use: sockets in the pod's netns
  };

  int map_fd = -1;
  int inbound_fd = -1;
  TunnelEvents events;
  std::unique_ptr<EventLoop> loop;
  std::thread thread;
  std::atomic<bool> stop{false};

  mutable std::mutex mu;  // guards pending and published
  std::shared_ptr<const ProxyConfig> pending;
  ProxyReport published;

  // Loop thread only.
  std::shared_ptr<const ProxyConfig> cfg;
  std::map<std::string, PodState> pods;  // by "ns/name"
  std::map<std::string, std::shared_ptr<const tls::MtlsContext>> contexts;
  std::map<uint64_t, std::unique_ptr<LinkEntry>> links;
  std::map<std::string, LinkEntry*> pool;
  uint64_t next_link = 1;
  uint64_t next_conn = 1;
  std::map<IpAddr, std::string> pod_by_ip;        // every pod of the snapshot, "ns/name"
  std::map<IpAddr, const ProxyPod*> local_by_ip;  // the pods served here (into `pods`)
  std::string roots_tag;                // identifies cfg->roots_pem in context and pool keys
  std::map<uint64_t, PlainConn> plain;  // by TunnelConn::id
  std::unique_ptr<l7::L7Runtime> l7rt;  // made with the loop
  l7::SessionEnv l7env;
  std::map<uint64_t, L7Conn> l7conns;   // by TunnelConn::id
  std::map<uint64_t, H2Conn> h2conns;   // by TunnelConn::id
  std::unique_ptr<l7::H2ClientPool> h2pool;  // HTTP/2 upstream connections of the L7 path
  ProxyReport counters;                 // counters only; live is filled at publish
  std::chrono::steady_clock::time_point last_publish{};
  std::chrono::steady_clock::time_point last_idle_check{};
  std::map<std::string, std::string> logged;  // what was last logged per subject

  ~Impl() {
    h2conns.clear();
    l7conns.clear();
    l7rt.reset();
    h2pool.reset();
    pool.clear();
    links.clear();
    plain.clear();
    for (auto& [key, p] : pods) closeListeners(p);
    if (map_fd >= 0) close(map_fd);
    if (inbound_fd >= 0) close(inbound_fd);
  }

  void run() {
    while (!stop) {
      if (auto st = loop->runOnce(50); !st) logWarn("mesh proxy: " + st.error().message());
      std::shared_ptr<const ProxyConfig> next;
      {
        std::lock_guard<std::mutex> l(mu);
        next = std::move(pending);
      }
      if (next) apply(std::move(next));
      sweep();
      auto now = std::chrono::steady_clock::now();
      if (now - last_publish > std::chrono::milliseconds(200)) {
        last_publish = now;
        publish();
      }
      if (now - last_idle_check > std::chrono::seconds(2)) {
        last_idle_check = now;
        releaseIdleBuffers();
      }
    }
  }

  void logOnce(const std::string& subject, const std::string& message) {
    if (logged[subject] == message) return;
    logged[subject] = message;
    logWarn(message);
  }

  // ---- configuration ----

  // Registers (or withdraws) the pod's 15006 listeners as the target of its inbound capture.
  void syncCapture(const std::string& key, PodState& st) {
    for (const IpAddr& ip : st.pod.ips) {
      auto fd = st.plain_fds.find(ip.isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6);
      if (!st.pod.capture_inbound || fd == st.plain_fds.end()) {
        clearInboundListener(inbound_fd, ip);
        continue;
      }
      if (auto s = setInboundListener(inbound_fd, ip, fd->second); !s) {
        logOnce(key + "/capture", "mesh proxy: pod " + key + ": " + s.error().message());
      }
    }
  }

  static bool sameListeners(const ProxyPod& a, const ProxyPod& b) {
    return a.netns == b.netns && a.netns_cookie == b.netns_cookie && a.ips == b.ips;
  }

  void apply(std::shared_ptr<const ProxyConfig> next) {
    bool new_snapshot = !cfg || cfg->snapshot != next->snapshot;
    cfg = std::move(next);
    roots_tag = std::to_string(std::hash<std::string>{}(cfg->roots_pem));
    if (new_snapshot) {
      pod_by_ip.clear();
      if (cfg->snapshot) {
        for (const Pod& p : cfg->snapshot->pods) {
          for (const IpAddr& ip : p.pod_ips) pod_by_ip.emplace(ip, p.meta.ns + "/" + p.meta.name);
        }
      }
    }
    std::map<std::string, std::shared_ptr<const tls::MtlsContext>> fresh;
    for (const auto& [id, svid] : cfg->svids) {
      for (auto role : {tls::MtlsRole::kClient, tls::MtlsRole::kServer}) {
        std::string key = contextKey(*svid, role);
        if (auto it = contexts.find(key); it != contexts.end()) {
          fresh[key] = it->second;
          continue;
        }
        auto ctx = tls::MtlsContext::make(*svid, cfg->roots_pem, cfg->trust_domain, role);
        if (ctx.ok()) {
          fresh[key] = *ctx;
        } else {
          logOnce(key, "mesh proxy: TLS context for " + id + ": " + ctx.error().message());
        }
      }
    }
    contexts = std::move(fresh);

    std::map<std::string, const ProxyPod*> wanted;
    for (const ProxyPod& p : cfg->pods) wanted[p.ns + "/" + p.name] = &p;
    for (auto it = pods.begin(); it != pods.end();) {
      auto w = wanted.find(it->first);
      if (w == wanted.end() || !sameListeners(it->second.pod, *w->second)) {
        closeListeners(it->second);
        it = pods.erase(it);
      } else {
        bool capture_changed = it->second.pod.capture_inbound != w->second->capture_inbound;
        it->second.pod = *w->second;  // identity, labels and capture may change in place
        if (capture_changed) syncCapture(it->first, it->second);
        ++it;
      }
    }
    for (const auto& [key, p] : wanted) {
      if (pods.count(key) != 0) continue;
      PodState& st = pods[key];
      st.pod = *p;
      openListeners(key, st);
      syncCapture(key, st);
    }
    local_by_ip.clear();
    for (const auto& [key, st] : pods) {
      for (const IpAddr& ip : st.pod.ips) local_by_ip.emplace(ip, &st.pod);
    }

    // Pooled links whose destination left, changed identity, or whose source certificate was
    // renewed take no new streams; they close once their streams are done.
    for (auto it = pool.begin(); it != pool.end();) {
      LinkEntry* le = it->second;
      auto rp = cfg->remote_pods.find(le->target);
      bool keep = rp != cfg->remote_pods.end() && pods.count(le->pod_key) != 0 &&
                  poolKey(pods.at(le->pod_key).pod, rp->second) == it->first;
      if (keep) {
        ++it;
        continue;
      }
      le->pool_key.clear();
      le->link->h2().goAway();
      le->link->flush();
      it = pool.erase(it);
    }
  }

  // A context per role, certificate and trust bundle: a renewed certificate or a changed
  // bundle (a root added ahead of a rotation) gives new links new contexts.
  std::string contextKey(const tls::Svid& svid, tls::MtlsRole role) const {
    return std::string(role == tls::MtlsRole::kClient ? "client|" : "server|") + svid.spiffe_id +
           "|" + svid.info.serial + "|" + roots_tag;
  }

  std::shared_ptr<const tls::MtlsContext> context(const std::string& spiffe_id,
                                                  tls::MtlsRole role) const {
    auto s = cfg->svids.find(spiffe_id);
    if (s == cfg->svids.end()) return nullptr;
    auto c = contexts.find(contextKey(*s->second, role));
    return c == contexts.end() ? nullptr : c->second;
  }

  std::string poolKey(const ProxyPod& src, const RemotePodInfo& dst) const {
    auto s = cfg->svids.find(src.spiffe_id);
    std::string serial = s == cfg->svids.end() ? "" : s->second->info.serial;
    return src.ns + "/" + src.name + "|" + dst.node_name + "|" +
           tls::spiffeId(cfg->trust_domain, dst.ns, dst.service_account) + "|" + serial + "|" +
           roots_tag;
  }

  // A non-blocking connect from inside `pod`'s netns, with a spare socket of that pod.
  Result<int> dialFrom(const ProxyPod& pod, const IpAddr& ip, int port) {
    auto it = pods.find(pod.ns + "/" + pod.name);
    if (it == pods.end()) return connectInNetns(pod.netns, ip, port);
    if (!it->second.spares) it->second.spares = std::make_unique<SpareSockets>(pod.netns);
    return it->second.spares->connect(ip, port);
  }

  void closeListeners(PodState& st) {
    for (const IpAddr& ip : st.pod.ips) clearInboundListener(inbound_fd, ip);
    for (int fd : st.fds) {
      loop->remove(fd);
      close(fd);
    }
    st.fds.clear();
    st.plain_fds.clear();
  }

  void openListeners(const std::string& key, PodState& st) {
    enum class Kind { kOutbound, kHbone, kPlain };
    struct Want {
      IpAddr ip;
      int port;
      Kind kind;
      bool optional;  // IPv6 loopback: a pod netns without IPv6 has none
    };
    const IpAddr lo4 = *IpAddr::parse("127.0.0.1"), lo6 = *IpAddr::parse("::1");
    std::vector<Want> wants = {{lo4, MESHLET_OUTBOUND_PORT, Kind::kOutbound, false},
                               {lo6, MESHLET_OUTBOUND_PORT, Kind::kOutbound, true},
                               {lo4, MESHLET_INBOUND_PORT, Kind::kPlain, false},
                               {lo6, MESHLET_INBOUND_PORT, Kind::kPlain, true}};
    for (const IpAddr& ip : st.pod.ips) {
      wants.push_back({ip, MESHLET_HBONE_PORT, Kind::kHbone, false});
    }
    for (const Want& w : wants) {
      auto fd = listenInNetns(st.pod.netns, w.ip, w.port);
      if (!fd.ok()) {
        if (!w.optional) {
          st.errors.push_back(fd.error().message());
          logOnce(key + hostPort(w.ip, w.port),
                  "mesh proxy: pod " + key + ": cannot listen: " + fd.error().message());
        }
        continue;
      }
      int lfd = *fd;
      uint8_t family = w.ip.isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
      Status added;
      switch (w.kind) {
        case Kind::kOutbound:
          added = loop->add(lfd, EPOLLIN, [this, key, lfd, family](uint32_t) {
            acceptOutbound(key, lfd, family);
          });
          break;
        case Kind::kHbone:
          added = loop->add(lfd, EPOLLIN, [this, key, lfd](uint32_t) { acceptInbound(key, lfd); });
          break;
        case Kind::kPlain:
          added = loop->add(lfd, EPOLLIN, [this, key, lfd](uint32_t) { acceptPlain(key, lfd); });
          if (added) st.plain_fds[family] = lfd;
          break;
      }
      if (!added) {
        close(lfd);
        st.errors.push_back(added.error().message());
        continue;
      }
      st.fds.push_back(lfd);
    }
  }

  // ---- links ----

  LinkEntry* newLink(int fd, std::shared_ptr<const tls::MtlsContext> ctx,
                     const std::string& expected_peer, bool inbound, std::string* error) {
    auto le = std::make_unique<LinkEntry>();
    LinkEntry* raw = le.get();
    raw->inbound = inbound;
    hbone::Events ev;
    ev.on_response = [this, raw](int32_t id, int status) {
      auto it = raw->conns.find(id);
      if (it == raw->conns.end()) return;
      if (status == 200) {
        markOpened(it->second);
      } else {
        it->second.info.policy = "refused by the destination: HTTP " + std::to_string(status);
        ++counters.outbound_failed;
        logInfo("mesh proxy: " + it->second.info.pod + " -> " + it->second.info.destination + ": " +
                it->second.info.policy);
      }
    };
    ev.on_data = [raw](int32_t id, std::string_view d) {
      if (auto it = raw->conns.find(id); it != raw->conns.end()) it->second.relay->onData(d);
    };
    ev.on_end = [raw](int32_t id) {
      if (auto it = raw->conns.find(id); it != raw->conns.end()) it->second.relay->onEnd();
    };
    ev.on_close = [raw](int32_t id, uint32_t code) {
      if (auto it = raw->conns.find(id); it != raw->conns.end()) it->second.relay->onClose(code);
    };
    if (inbound) {
      ev.on_request = [this, raw](int32_t id, const hbone::ConnectRequest& r) {
        return serveConnect(raw, id, r);
      };
    }
    auto link = hbone::Link::make(*loop, fd, std::move(ctx), expected_peer, ev);
    if (!link.ok()) {
      *error = link.error().message();
      return nullptr;
    }
    raw->link = std::move(*link);
    // Only relays that stopped reading for a full queue need to hear of progress.
    raw->link->on_progress = [raw] {
      if (raw->full.empty()) return;
      std::vector<int32_t> full;
      full.swap(raw->full);
      for (int32_t id : full) {
        if (auto it = raw->conns.find(id); it != raw->conns.end())
          it->second.relay->onLinkProgress();
      }
    };
    raw->link->on_closed = [this, raw](const std::string& why) {
      raw->dead = true;
      if (!raw->pool_key.empty()) pool.erase(raw->pool_key);
      raw->pool_key.clear();
      if (!why.empty() && !raw->conns.empty()) {
        logInfo("mesh proxy: HBONE link of " + raw->pod_key + " closed with " +
                std::to_string(raw->conns.size()) + " stream(s) open: " + why);
      }
    };
    ++counters.links_opened;
    links[next_link++] = std::move(le);
    return raw;
  }

  LinkEntry* outboundLink(const ProxyPod& src, const IpAddr& dst, const RemotePodInfo& remote,
                          std::string* error) {
    std::string key = poolKey(src, remote);
    if (auto it = pool.find(key); it != pool.end() && !it->second->dead) {
      LinkEntry* pooled = it->second;
      hbone::H2Conn& h2 = pooled->link->h2();
      if (h2.openStreams() < std::min<size_t>(kStreamsPerLink, h2.peerMaxStreams())) return pooled;
      // Full: it keeps its streams and closes once they are done; a new link takes the next.
      pooled->pool_key.clear();
      pool.erase(it);
    }
    auto ctx = context(src.spiffe_id, tls::MtlsRole::kClient);
    if (!ctx) {
      *error = "no certificate for " + src.spiffe_id;
      return nullptr;
    }
    auto fd = dialFrom(src, dst, MESHLET_HBONE_PORT);
    if (!fd.ok()) {
      *error = fd.error().message();
      return nullptr;
    }
    std::string dst_id = tls::spiffeId(cfg->trust_domain, remote.ns, remote.service_account);
    LinkEntry* le = newLink(*fd, ctx, dst_id, false, error);
    if (!le) return nullptr;
    le->pool_key = key;
    le->target = dst;
    le->target_id = dst_id;
    le->pod_key = src.ns + "/" + src.name;
    pool[key] = le;
    return le;
  }

  void markOpened(ConnBase& c) {
    c.opened = true;
    ++(c.info.path == "captured" ? counters.captured_opened
       : c.info.inbound          ? counters.inbound_opened
                                 : counters.outbound_opened);
    if (events.opened) events.opened(c.info, cfg->snapshot.get());
  }

  template <typename C>
  void reportBytes(C& c) {
    uint64_t sent = c.sent(), received = c.received();
    if (events.bytes && (sent > c.reported_sent || received > c.reported_received)) {
      events.bytes(c.info, sent - c.reported_sent, received - c.reported_received);
    }
    c.reported_sent = sent;
    c.reported_received = received;
  }

  // The stream's connection; it stays in le->conns until its relay is done (a deferred erase).
  Conn& attach(LinkEntry* le, int32_t stream, int fd, bool connecting, TunnelConn info) {
    Conn c;
    c.relay = std::make_unique<hbone::Relay>(*loop, fd, *le->link, stream);
    c.info = std::move(info);
    c.info.id = next_conn++;
    c.info.start_unix = static_cast<int64_t>(time(nullptr));
    c.relay->on_done = [this, le, stream] {
      loop->defer([this, le, stream] {
        auto it = le->conns.find(stream);
        if (it == le->conns.end()) return;
        if (it->second.opened) {
          reportBytes(it->second);
          ++(le->inbound ? counters.inbound_closed : counters.outbound_closed);
          if (events.closed) events.closed(it->second.info);
        }
        le->conns.erase(it);
      });
    };
    c.relay->on_full = [le, stream] { le->full.push_back(stream); };
    Conn& conn = le->conns.emplace(stream, std::move(c)).first->second;
    if (auto st = conn.relay->start(connecting); !st) {
      le->link->h2().reset(stream, kStreamGone);
      conn.relay->onClose(kStreamGone);
    }
    return conn;
  }

  // Accepts every connection waiting on a listener: fn(fd, peer address) for each.
  template <typename Fn>
  static void acceptAll(int lfd, Fn fn) {
    while (true) {
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      fn(fd, peer);
    }
  }

  // ---- outbound: the app's connection, rewritten by the kernel to 127.0.0.1:15001 ----

  void acceptOutbound(const std::string& key, int lfd, uint8_t family) {
    acceptAll(lfd, [&](int fd, const sockaddr_storage& peer) { outbound(key, fd, peer, family); });
  }

  void outbound(const std::string& key, int fd, const sockaddr_storage& peer, uint8_t family) {
    auto ps = pods.find(key);
    if (ps == pods.end()) {
      closeWithReset(fd);
      return;
    }
    const ProxyPod& src = ps->second.pod;
    auto origin =
        takeTunnelOrigin(map_fd, src.netns_cookie, static_cast<uint16_t>(portOf(peer)), family);
    if (!origin) {
      ++counters.no_origin;
      logOnce(key + "/origin", "mesh proxy: pod " + key +
                                   ": a connection to the outbound listener has no kernel "
                                   "record (not redirected by meshlet?); reset");
      closeWithReset(fd);
      return;
    }
    IpAddr dst = IpAddr::fromWords(origin->backend_addr, origin->family);
    IpAddr orig = IpAddr::fromWords(origin->orig_addr, origin->family);
    TunnelConn info;
    info.pod = key;
    info.local_id = src.spiffe_id;
    info.destination = hostPort(orig, origin->orig_port);
    if (cfg->desired && origin->svc_id != MESHLET_NO_ID) {
      auto svc = cfg->desired->service_info.find(origin->svc_id);
      if (svc != cfg->desired->service_info.end()) {
        info.service = svc->second.name + "." + svc->second.ns + ".svc.cluster.local";
      }
    }
    if (origin->path == MESHLET_PATH_L7) {
      l7Outbound(key, fd, src, origin->svc_id, std::move(info));
      return;
    }
    openTunnel(key, src, fd, dst, origin->backend_port, std::move(info));
  }

  // Carries the app connection `fd` of pod `key` to dst:port over an HBONE link.
  void openTunnel(const std::string& key, const ProxyPod& src, int fd, const IpAddr& dst, int port,
                  TunnelConn info, bool l7_authorized = false) {
    info.peer = hostPort(dst, port);
    auto remote = cfg->remote_pods.find(dst);
    if (remote != cfg->remote_pods.end()) {
      info.peer_pod = remote->second.ns + "/" + remote->second.name;
    }
    std::string error;
    LinkEntry* le = nullptr;
    if (remote == cfg->remote_pods.end()) {
      error = info.peer + " is no longer an enrolled pod on another node";
    } else {
      le = outboundLink(src, dst, remote->second, &error);
    }
    Result<int32_t> stream = Error("no link");
    if (le) {
      hbone::Headers headers;
      if (!info.service.empty()) headers.emplace_back(kServiceHeader, info.service);
      if (l7_authorized) headers.emplace_back(kL7Header, "1");
      stream = le->link->h2().connect(info.peer, headers);
    }
    if (!le || !stream.ok()) {
      if (le) error = stream.error().message();
      ++counters.outbound_failed;
      logOnce(key + "/dial", "mesh proxy: " + key + " -> " + info.peer + ": " + error);
      closeWithReset(fd);
      return;
    }
    info.peer_id = le->target_id;
    attach(le, *stream, fd, false, std::move(info)).relay->readNow();
    le->link->flush();
  }

  // ---- the L7 path: the app's HTTP connection, proxied request by request ----

  void l7Outbound(const std::string& key, int fd, const ProxyPod& src, uint32_t svc_id,
                  TunnelConn info) {
    info.path = "l7";
    info.id = next_conn++;
    info.start_unix = static_cast<int64_t>(time(nullptr));
    l7::SessionSource source{key, src.ns, src.labels, src.spiffe_id,
                             src.ips.empty() ? IpAddr{} : src.ips.front()};
    uint64_t id = info.id;
    L7Conn& c = l7conns[id];
    c.session = std::make_unique<l7::HttpSession>(*loop, *l7rt, l7env, fd, cfg->l7, svc_id, source);
    c.session->on_h2_preface = [this, key, svc_id, source, info](int h2fd, ByteBuf&& read) {
      l7H2(key, h2fd, std::move(read), svc_id, source, info);
    };
    c.info = std::move(info);
    c.session->on_done = [this, id] {
      loop->defer([this, id] {
        auto it = l7conns.find(id);
        if (it == l7conns.end()) return;
        ++counters.l7_closed;
        l7conns.erase(it);
      });
    };
    ++counters.l7_opened;
    if (auto st = c.session->start(); !st) {
      logOnce(key + "/l7", "mesh proxy: " + key + ": L7 session: " + st.error().message());
      l7conns.erase(id);
    }
  }

  // An L7 app connection that started with the HTTP/2 preface: each stream is served by an
  // HttpSession made like the connection's own (same service, same source) over a socket pair.
  void l7H2(const std::string& key, int fd, ByteBuf&& read, uint32_t svc_id,
            const l7::SessionSource& source, TunnelConn info) {
    info.id = next_conn++;
    info.path = "l7";
    uint64_t id = info.id;
    H2Conn& c = h2conns[id];
    c.info = std::move(info);
    c.bridge = std::make_unique<l7::H2ServerBridge>(
        *loop, fd, [this, svc_id, source](int sfd) -> std::unique_ptr<l7::HttpSession> {
          auto s = std::make_unique<l7::HttpSession>(*loop, *l7rt, l7env, sfd,
                                                     cfg ? cfg->l7 : nullptr, svc_id, source);
          s->bridged = true;
          if (!s->start().ok()) return nullptr;  // its destructor closes sfd
          return s;
        });
    c.bridge->on_done = [this, id] { loop->defer([this, id] { h2conns.erase(id); }); };
    if (auto st = c.bridge->start(std::move(read)); !st) {
      logOnce(key + "/h2", "mesh proxy: " + key + ": HTTP/2 bridge: " + st.error().message());
      h2conns.erase(id);
    }
  }

  void l7Request(const l7::RequestRecord& r) {
    ++counters.l7_requests;
    if (events.request) events.request(r, cfg ? cfg->snapshot.get() : nullptr);
  }

  // An upstream connection for an L7 session of pod `pod_key`: straight from the pod's netns,
  // or, to an enrolled pod on another node, through an HBONE tunnel (one end of a socket pair
  // goes to the session, the other is carried like an app connection).
  // With `h2`, the session gets a socket pair to the HTTP/2 pool instead (which dials here).
  Result<int> l7Dial(const std::string& pod_key, const l7::L7Endpoint& ep, bool h2) {
    auto ps = pods.find(pod_key);
    if (ps == pods.end()) return Error("pod " + pod_key + " is no longer served here");
    if (h2) return h2pool->open(pod_key, ep);
    const ProxyPod& src = ps->second.pod;
    if (!ep.tunnel && !cfg->remote_pods.count(ep.ip)) return dialFrom(src, ep.ip, ep.port);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
      return Error::fromErrno("socketpair", errno);
    }
    TunnelConn info;
    info.pod = pod_key;
    info.local_id = src.spiffe_id;
    info.destination = hostPort(ep.ip, ep.port);
    openTunnel(pod_key, src, sv[1], ep.ip, ep.port, std::move(info), true);
    return sv[0];
  }

  // ---- inbound: HBONE from another node's agent on <pod IP>:15008 ----

  void acceptInbound(const std::string& key, int lfd) {
    acceptAll(lfd, [&](int fd, const sockaddr_storage& peer) { inbound(key, fd, peer); });
  }

  void inbound(const std::string& key, int fd, const sockaddr_storage& peer) {
    auto ps = pods.find(key);
    auto ctx =
        ps == pods.end() ? nullptr : context(ps->second.pod.spiffe_id, tls::MtlsRole::kServer);
    if (!ctx) {
      logOnce(key + "/server",
              "mesh proxy: pod " + key + " has no certificate yet; HBONE connection refused");
      close(fd);
      return;
    }
    std::string error;
    LinkEntry* le = newLink(fd, ctx, "", true, &error);
    if (!le) {
      logOnce(key + "/inbound", "mesh proxy: pod " + key + ": " + error);
      return;
    }
    le->pod_key = key;
    le->peer_ip = ipOf(peer);
  }

  // ---- inbound plaintext, steered by sk_lookup to 127.0.0.1:15006 in the pod ----

  void acceptPlain(const std::string& key, int lfd) {
    acceptAll(lfd, [&](int fd, const sockaddr_storage& peer) { plainInbound(key, fd, peer); });
  }

  void plainInbound(const std::string& key, int fd, const sockaddr_storage& peer) {
    sockaddr_storage local{};
    socklen_t llen = sizeof(local);
    auto ps = pods.find(key);
    if (ps == pods.end() || getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0) {
      closeWithReset(fd);
      return;
    }
    const ProxyPod& pod = ps->second.pod;
    IpAddr dst = ipOf(local), src = ipOf(peer);
    int port = portOf(local);
    bool ours = false;
    for (const IpAddr& ip : pod.ips) ours |= ip == dst;
    if (!ours || port == MESHLET_INBOUND_PORT) {  // dialled 15006 itself, or misrouted
      closeWithReset(fd);
      return;
    }
    TunnelConn info;
    info.inbound = true;
    info.path = "captured";
    info.pod = key;
    info.local_id = pod.spiffe_id;
    info.peer = src.toString();
    info.destination = hostPort(dst, port);
    if (auto p = pod_by_ip.find(src); p != pod_by_ip.end()) info.peer_pod = p->second;
    if (!admitPlain(pod, src, dst, port, info)) {
      closeWithReset(fd);
      return;
    }
    auto up = dialFrom(pod, dst, port);
    if (!up.ok()) {
      logOnce(key + "/deliver",
              "mesh proxy: cannot deliver to " + key + ": " + up.error().message());
      closeWithReset(fd);
      return;
    }
    uint64_t id = next_conn++;
    info.id = id;
    info.start_unix = static_cast<int64_t>(time(nullptr));
    PlainConn& pc = plain[id];
    pc.info = std::move(info);
    pc.pipe = std::make_unique<TcpPipe>(*loop, fd, *up);
    pc.pipe->on_connected = [this, id](int err) {
      if (auto it = plain.find(id); it != plain.end() && err == 0) markOpened(it->second);
    };
    pc.pipe->on_done = [this, id] {
      loop->defer([this, id] {
        auto it = plain.find(id);
        if (it == plain.end()) return;
        if (it->second.opened) {
          reportBytes(it->second);
          if (events.closed) events.closed(it->second.info);
        }
        plain.erase(it);
      });
    };
    if (!pc.pipe->start(true).ok()) plain.erase(id);
  }

  // PeerAuthentication, then AuthorizationPolicy, for a plaintext connection; fills the
  // decision into `info` and reports a refusal.
  bool admitPlain(const ProxyPod& pod, const IpAddr& src, const IpAddr& dst, int port,
                  TunnelConn& info) {
    const Snapshot* snap = cfg->snapshot.get();
    MtlsDecision m = snap ? effectiveMtls(*snap, pod.ns, pod.labels, port) : MtlsDecision{};
    if (m.mode == MtlsMode::kStrict) {
      info.policy = "rejected: plaintext to a STRICT mTLS port" +
                    (m.policy.empty() ? "" : " (PeerAuthentication " + m.policy + ")");
      info.policy_name = m.policy;
      ++counters.plaintext_rejected;
      if (events.rejected) events.rejected(info, snap);
      logInfo("mesh proxy: " + info.peer + " -> " + info.pod + " " + info.destination + ": " +
              info.policy);
      return false;
    }
    L4Connection c;
    c.source_ip = src;
    c.destination_ip = dst;
    c.destination_port = port;
    c.destination_namespace = pod.ns;
    c.destination_labels = pod.labels;
    AuthzDecision d = snap ? authorizeL4(*snap, c) : AuthzDecision{};
    info.policy = describe(d);
    info.policy_name = d.policy;
    if (d.allowed) return true;
    ++counters.denied[d.policy];
    if (events.denied) events.denied(info, snap);
    logInfo("mesh proxy: denied plaintext " + info.peer + " -> " + info.pod + " " +
            info.destination + ": " + info.policy);
    return false;
  }

  const ProxyPod* localPodByIp(const IpAddr& ip) const {
    auto it = local_by_ip.find(ip);
    return it == local_by_ip.end() ? nullptr : it->second;
  }

  int serveConnect(LinkEntry* le, int32_t stream, const hbone::ConnectRequest& r) {
    IpAddr ip;
    int port = 0;
    if (!parseAuthority(r.authority, &ip, &port)) return 400;
    const ProxyPod* target = localPodByIp(ip);
    auto served = pods.find(le->pod_key);
    // The link proved the identity of the pod whose listener took it; it may carry streams
    // for any pod of that identity on this node, no other.
    if (!target || served == pods.end() || target->spiffe_id != served->second.pod.spiffe_id) {
      logOnce(le->pod_key + "/misdirected", "mesh proxy: HBONE stream for " + r.authority +
                                                " arrived at " + le->pod_key +
                                                ", which does not serve it; refused");
      return target ? 403 : 404;
    }
    TunnelConn info;
    info.inbound = true;
    info.pod = target->ns + "/" + target->name;
    info.peer = le->peer_ip.toString();
    info.destination = hostPort(ip, port);
    info.peer_id = le->link->peerId();
    info.local_id = target->spiffe_id;
    if (auto p = pod_by_ip.find(le->peer_ip); p != pod_by_ip.end()) info.peer_pod = p->second;
    bool l7_authorized = false;
    for (const auto& [name, value] : r.headers) {
      if (name == kServiceHeader) info.service = value;
      if (name == kL7Header) l7_authorized = value == "1";
    }

    L4Connection c;
    c.source_principal = principalOf(info.peer_id);
    c.source_ip = le->peer_ip;
    c.destination_ip = ip;
    c.destination_port = port;
    c.destination_namespace = target->ns;
    c.destination_labels = target->labels;
    AuthzDecision d = !cfg->snapshot  ? AuthzDecision{}
                      : l7_authorized ? authorizeL4AfterL7(*cfg->snapshot, c)
                                      : authorizeL4(*cfg->snapshot, c);
    info.policy = describe(d);
    info.policy_name = d.policy;
    if (!d.allowed) {
      ++counters.denied[d.policy];
      if (events.denied) events.denied(info, cfg->snapshot.get());
      logInfo("mesh proxy: denied " + info.peer_id + " -> " + info.pod + " " + info.destination +
              ": " + info.policy);
      return 403;
    }
    auto fd = dialFrom(*target, ip, port);
    if (!fd.ok()) {
      logOnce(info.pod + "/deliver",
              "mesh proxy: cannot deliver to " + info.pod + ": " + fd.error().message());
      return 503;
    }
    // The app is in this pod: its connect usually completes within connect() itself, and then
    // the stream is answered now, with the bytes that came with the CONNECT passed on at once.
    if (int err = connectOutcome(*fd); err >= 0) {
      if (err != 0) {
        close(*fd);
        return 503;
      }
      markOpened(attach(le, stream, *fd, false, std::move(info)));
      return 200;
    }
    attach(le, stream, *fd, true, std::move(info)).relay->on_connected = [this, le, stream](int err) {
      auto c = le->conns.find(stream);
      if (c == le->conns.end()) return;
      if (err == 0) markOpened(c->second);
      le->link->h2().respond(stream, err == 0 ? 200 : 503);
      le->link->flush();
    };
    return hbone::kPending;
  }

  // ---- housekeeping ----

  // Links quiet since the last check give their buffers back (big ones are mappings of their
  // own, so the memory leaves the process: ByteBuf::kMapFrom).
  void releaseIdleBuffers() {
    for (auto& [id, le] : links) {
      uint64_t activity = le->link->activity();
      if (activity == le->seen_activity) le->link->releaseBuffers();
      le->seen_activity = activity;
    }
  }

  void sweep() {
    if (h2pool) h2pool->sweep(60000);
    for (auto it = links.begin(); it != links.end();) {
      LinkEntry* le = it->second.get();
      bool drained = !le->inbound && le->pool_key.empty() && le->conns.empty();
      if (le->dead || drained || le->link->h2().finished()) {
        if (!le->pool_key.empty()) pool.erase(le->pool_key);
        ++counters.links_closed;
        it = links.erase(it);  // relays first (reset), then the link
      } else {
        ++it;
      }
    }
  }

  void publish() {
    ProxyReport r = counters;
    for (auto& [id, le] : links) {
      for (auto& [stream, c] : le->conns) {
        if (c.opened) reportBytes(c);
        TunnelConn t = c.info;
        t.bytes_sent = c.relay->bytesUp();
        t.bytes_received = c.relay->bytesDown();
        r.live.push_back(std::move(t));
      }
    }
    for (auto& [id, c] : plain) {
      if (!c.opened) continue;
      reportBytes(c);
      TunnelConn t = c.info;
      t.bytes_sent = c.sent();
      t.bytes_received = c.received();
      r.live.push_back(std::move(t));
    }
    for (auto& [id, c] : l7conns) {
      TunnelConn t = c.info;
      t.policy = std::to_string(c.session->requests()) + " requests";
      r.live.push_back(std::move(t));
    }
    for (auto& [id, c] : h2conns) {
      TunnelConn t = c.info;
      t.policy = "h2, " + std::to_string(c.bridge->streams()) + " streams";
      r.live.push_back(std::move(t));
    }
    for (const auto& [key, st] : pods) {
      for (const auto& e : st.errors) r.listener_errors.push_back(key + ": " + e);
      if (st.errors.empty() && !st.fds.empty() &&
          context(st.pod.spiffe_id, tls::MtlsRole::kServer)) {
        ++r.ready_pods;
      }
    }
    r.pooled_links = pool.size();
    std::lock_guard<std::mutex> l(mu);
    published = std::move(r);
  }
};

Result<std::unique_ptr<MeshProxy>> MeshProxy::start(int tunnel_map_fd, int inbound_map_fd,
                                                    TunnelEvents events) {
  auto loop = EventLoop::make();
  if (!loop.ok()) {
    close(tunnel_map_fd);
    close(inbound_map_fd);
    return loop.error();
  }
  std::unique_ptr<MeshProxy> p(new MeshProxy());
  p->impl_ = std::make_unique<Impl>();
  p->impl_->map_fd = tunnel_map_fd;
  p->impl_->inbound_fd = inbound_map_fd;
  p->impl_->events = std::move(events);
  p->impl_->loop = std::move(*loop);
  Impl* impl = p->impl_.get();
  impl->l7rt = std::make_unique<l7::L7Runtime>(*impl->loop);
  impl->l7env.dial = [impl](const std::string& pod, const l7::L7Endpoint& ep, bool h2) {
    return impl->l7Dial(pod, ep, h2);
  };
  impl->l7env.on_request = [impl](const l7::RequestRecord& r) { impl->l7Request(r); };
  impl->h2pool = std::make_unique<l7::H2ClientPool>(
      *impl->loop, [impl](const std::string& pod, const l7::L7Endpoint& ep) {
        return impl->l7Dial(pod, ep, false);
      });
  p->impl_->thread = std::thread([impl] { impl->run(); });
  return p;
}

MeshProxy::~MeshProxy() {
  if (!impl_) return;
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
}

void MeshProxy::update(std::shared_ptr<const ProxyConfig> cfg) {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->pending = std::move(cfg);
}

ProxyReport MeshProxy::report() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->published;
}

}  // namespace meshlet::proxy

// Kubeconfig and in-cluster configuration for the Kubernetes source.
#include "agent/sources/kube_config.h"

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/common/ip.h"
#include "agent/sources/yaml_doc.h"

// Returns the error of a Status from a function returning Status or Result<T>.
#define MESHLET_KUBE_TRY(expr)         \
  do {                                 \
    ::meshlet::Status st_ = (expr);    \
    if (!st_.ok()) return st_.error(); \
  } while (0)

namespace meshlet {
namespace {

constexpr size_t kMaxConfigBytes = 4 << 20;

Result<std::string> readSmallFile(const std::string& path, const std::string& what) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return Error::fromErrno(what + " " + path + ": cannot read", ec.value());
  if (size > kMaxConfigBytes) return Error(what + " " + path + ": larger than 4 MiB", EFBIG);
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error::fromErrno(what + " " + path + ": cannot open", errno ? errno : ENOENT);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string resolvePath(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(base_dir) / p).string();
}

// A string field of a map (empty when absent); an error when present but not a scalar.
Status scalar(const YamlNode& map, const char* key, const std::string& where, std::string& out) {
  YamlNode n = map.get(key);
  if (!n.present()) return Status::Ok();
  if (!n.isScalar()) return Error(where + "." + key + ": expected a string");
  out = n.scalar();
  return Status::Ok();
}

// The entry named `name` of a kubeconfig list (clusters, users, contexts): its `field` map
// (missing when the entry has none: every lookup in it then finds nothing, as in an empty map).
Result<YamlNode> namedEntry(const YamlNode& root, const char* list, const char* field,
                            const std::string& name, const std::string& file) {
  YamlNode l = root.get(list);
  if (l.present() && !l.isSeq()) {
    return Error("kubeconfig " + file + ": " + list + ": expected a list");
  }
  if (l.isSeq()) {
    for (size_t i = 0; i < l.size(); ++i) {
      YamlNode e = l.at(i);
      if (!e.get("name").isScalar()) continue;
      if (e.get("name").scalar() != name) continue;
      YamlNode f = e.get(field);
      if (!f.present()) return YamlNode();
      if (!f.isMap()) {
        return Error("kubeconfig " + file + ": " + list + "[" + std::to_string(i) + "] (" + name +
                     "): " + field + ": expected a mapping");
      }
      return f;
    }
  }
  return Error(
      "kubeconfig " + file + ": no " + std::string(field) + " named \"" + name + "\" in " + list,
      ENOENT);
}

// A PEM from either FIELD-data (base64) or FIELD (a path).
Status pemFrom(const YamlNode& map, const std::string& field, const std::string& where,
               const std::string& base_dir, std::string& out) {
  std::string data, path;
  MESHLET_KUBE_TRY(scalar(map, (field + "-data").c_str(), where, data));
  MESHLET_KUBE_TRY(scalar(map, field.c_str(), where, path));
  if (!data.empty()) {
    auto decoded = decodeBase64(data);
    if (!decoded.ok()) return Error(where + "." + field + "-data: " + decoded.error().message());
    out = std::move(*decoded);
  } else if (!path.empty()) {
    auto text = readSmallFile(resolvePath(base_dir, path), where + "." + field);
    if (!text.ok()) return text.error();
    out = std::move(*text);
  } else {
    return Status::Ok();
  }
  if (out.find("-----BEGIN ") == std::string::npos) {
    return Error(where + "." + field + (data.empty() ? "" : "-data") + ": not PEM data");
  }
  return Status::Ok();
}

}  // namespace

std::string KubeConfig::server() const {
  bool v6 = host.find(':') != std::string::npos;
  return "https://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Status parseServerUrl(const std::string& url, std::string& host, int& port) {
  const std::string scheme = "https://";
  if (url.rfind(scheme, 0) != 0) {
    if (url.rfind("http://", 0) == 0) {
      return Error("server " + url + ": plain http is not supported (use https)");
    }
    return Error("server \"" + url + "\": expected https://HOST[:PORT]");
  }
  std::string rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    if (rest.find_first_not_of('/', slash) != std::string::npos) {
      return Error("server " + url + ": a path prefix is not supported");
    }
    rest = rest.substr(0, slash);
  }
  std::string port_text;
  bool has_port = false;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) return Error("server " + url + ": unclosed [ in the host");
    host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Error("server " + url + ": unexpected text after ]");
      port_text = after.substr(1);
      has_port = true;
    }
    auto ip = IpAddr::parse(host);
    if (!ip || ip->isV4())
      return Error("server " + url + ": [" + host + "] is not an IPv6 address");
  } else {
    size_t colon = rest.find(':');
    if (colon != std::string::npos && rest.find(':', colon + 1) != std::string::npos) {
      return Error("server " + url + ": an IPv6 address must be in brackets");
    }
    host = rest.substr(0, colon);
    if (colon != std::string::npos) {
      port_text = rest.substr(colon + 1);
      has_port = true;
    }
  }
  if (host.empty()) return Error("server " + url + ": no host");
  port = 443;
  if (has_port) {
    if (port_text.empty() || port_text.size() > 5 ||
        port_text.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port_text) < 1 || std::stoi(port_text) > 65535) {
      return Error("server " + url + ": invalid port \"" + port_text + "\"");
    }
    port = std::stoi(port_text);
  }
  return Status::Ok();
}

Result<std::string> decodeBase64(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    int v = value(c);
    if (v < 0 || padding) return Error("invalid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6) return Error("invalid base64 (truncated)");
  return out;
}

Result<KubeConfig> loadKubeconfig(const std::string& path) {
  auto text = readSmallFile(path, "kubeconfig");
  if (!text.ok()) return text.error();
  return parseKubeconfig(*text, path);
}

Result<KubeConfig> parseKubeconfig(const std::string& text, const std::string& path) {
  YamlDocument doc;
  YamlParseError e;
  if (!doc.parse(text, e)) {
    return Error("kubeconfig " + path + ": invalid YAML" + (e.line < 0 ? ": " : " at ") +
                 e.format());
  }
  YamlNode root = doc.root();
  if (!root.isMap()) return Error("kubeconfig " + path + ": not a mapping");
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  std::string kind;
  MESHLET_KUBE_TRY(scalar(root, "kind", "kubeconfig " + path, kind));
  if (!kind.empty() && kind != "Config") {
    return Error("kubeconfig " + path + ": kind is \"" + kind + "\", expected Config");
  }
  std::string context_name;
  MESHLET_KUBE_TRY(scalar(root, "current-context", "kubeconfig " + path, context_name));
  if (context_name.empty()) return Error("kubeconfig " + path + ": no current-context");

  auto context = namedEntry(root, "contexts", "context", context_name, path);
  if (!context.ok()) return context.error();
  std::string cwhere = "kubeconfig " + path + ": context " + context_name;
  std::string cluster_name, user_name;
  KubeConfig cfg;
  cfg.origin = "kubeconfig " + path + " (context " + context_name + ")";
  MESHLET_KUBE_TRY(scalar(*context, "cluster", cwhere, cluster_name));
  MESHLET_KUBE_TRY(scalar(*context, "user", cwhere, user_name));
  MESHLET_KUBE_TRY(scalar(*context, "namespace", cwhere, cfg.ns));
  if (cluster_name.empty()) return Error(cwhere + ": no cluster");

  auto cluster = namedEntry(root, "clusters", "cluster", cluster_name, path);
  if (!cluster.ok()) return cluster.error();
  std::string where = "kubeconfig " + path + ": cluster " + cluster_name;
  std::string server;
  MESHLET_KUBE_TRY(scalar(*cluster, "server", where, server));
  if (server.empty()) return Error(where + ": no server");
  if (auto st = parseServerUrl(server, cfg.host, cfg.port); !st) return st.error().wrap(where);
  std::string insecure;
  MESHLET_KUBE_TRY(scalar(*cluster, "insecure-skip-tls-verify", where, insecure));
  if (!insecure.empty() && insecure != "true" && insecure != "false") {
    return Error(where + ".insecure-skip-tls-verify: expected true or false, got \"" + insecure +
                 "\"");
  }
  cfg.insecure_skip_verify = insecure == "true";
  MESHLET_KUBE_TRY(pemFrom(*cluster, "certificate-authority", where, base_dir, cfg.ca_pem));
  if (cfg.insecure_skip_verify && !cfg.ca_pem.empty()) {
    return Error(where +
                 ": certificate-authority and insecure-skip-tls-verify together are "
                 "not allowed (as kubectl says)");
  }
  std::string proxy;
  MESHLET_KUBE_TRY(scalar(*cluster, "proxy-url", where, proxy));
  if (!proxy.empty()) return Error(where + ".proxy-url: proxies are not supported");

  if (user_name.empty()) return cfg;  // no credentials: anonymous
  auto user = namedEntry(root, "users", "user", user_name, path);
  if (!user.ok()) return user.error();
  std::string uwhere = "kubeconfig " + path + ": user " + user_name;
  for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
    if (user->get(unsupported).present()) {
      return Error(uwhere + "." + unsupported +
                   ": not supported (use token, tokenFile or a client certificate)");
    }
  }
  MESHLET_KUBE_TRY(scalar(*user, "token", uwhere, cfg.token));
  std::string token_file;
  MESHLET_KUBE_TRY(scalar(*user, "tokenFile", uwhere, token_file));
  if (!token_file.empty()) {
    cfg.token_file = resolvePath(base_dir, token_file);
    if (cfg.token.empty()) {  // kubectl: a token given inline wins over the file
      auto t = readSmallFile(cfg.token_file, uwhere + ".tokenFile");
      if (!t.ok()) return t.error();
    } else {
      cfg.token_file.clear();
    }
  }
  MESHLET_KUBE_TRY(pemFrom(*user, "client-certificate", uwhere, base_dir, cfg.client_cert_pem));
  MESHLET_KUBE_TRY(pemFrom(*user, "client-key", uwhere, base_dir, cfg.client_key_pem));
  if (cfg.client_cert_pem.empty() != cfg.client_key_pem.empty()) {
    return Error(uwhere + ": " +
                 (cfg.client_cert_pem.empty() ? "client-key without client-certificate"
                                              : "client-certificate without client-key"));
  }
  return cfg;
}

Result<KubeConfig> inClusterConfig(const std::string& sa_dir, const EnvFn& env) {
  const char* host = env("KUBERNETES_SERVICE_HOST");
  const char* port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !*host) {
    return Error("in-cluster configuration: KUBERNETES_SERVICE_HOST is not set (not in a pod?)");
  }
  KubeConfig cfg;
  cfg.origin = "in-cluster";
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string p = port && *port ? port : "443";
  if (auto st = parseServerUrl(
          "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + p, cfg.host,
          cfg.port);
      !st) {
    return st.error().wrap("in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT)");
  }
  cfg.token_file = sa_dir + "/token";
  auto token = readSmallFile(cfg.token_file, "in-cluster configuration: service account token");
  if (!token.ok()) return token.error();
  auto ca = readSmallFile(sa_dir + "/ca.crt", "in-cluster configuration: CA bundle");
  if (!ca.ok()) return ca.error();
  cfg.ca_pem = std::move(*ca);
  auto ns = readSmallFile(sa_dir + "/namespace", "namespace");
  if (ns.ok()) {
    cfg.ns = *ns;
    while (!cfg.ns.empty() && std::isspace(static_cast<unsigned char>(cfg.ns.back()))) {
      cfg.ns.pop_back();
    }
  }
  return cfg;
}

}  // namespace meshlet

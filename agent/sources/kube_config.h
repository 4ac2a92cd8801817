#pragma once
// How the Kubernetes source reaches the API server: in-cluster (the pod's service account) or a
// kubeconfig file (its current context). Both end as one KubeConfig; certificates and keys are
// loaded into memory here, the token file is only named (it is re-read when it rotates).
#include <cstdlib>
#include <functional>
#include <string>

#include "agent/common/status.h"

namespace meshlet {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  std::string origin;  // "in-cluster" or "kubeconfig PATH (context NAME)", for messages
  std::string host;    // DNS name or IP literal (an IPv6 one without brackets)
  int port = 443;
  std::string ca_pem;  // empty: the system's CAs
  bool insecure_skip_verify = false;
  std::string token;       // a fixed bearer token
  std::string token_file;  // or a file holding it (read at use, re-read when it changes)
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string ns;  // the context's or service account's namespace (informational)

  // "https://host:port" (brackets around an IPv6 literal).
  std::string server() const;
};

// "https://host[:port][/]" -> host and port (443 by default). Only https is accepted.
Status parseServerUrl(const std::string& url, std::string& host, int& port);

// A kubeconfig file; relative paths in it are relative to its directory (as kubectl does).
Result<KubeConfig> loadKubeconfig(const std::string& path);
// The same from text; `path` names the file in messages and anchors relative paths.
Result<KubeConfig> parseKubeconfig(const std::string& text, const std::string& path);

// In a pod: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the service account's token,
// ca.crt and namespace under `sa_dir`. `env` is getenv (injectable for tests).
using EnvFn = std::function<const char*(const char*)>;
Result<KubeConfig> inClusterConfig(
    const std::string& sa_dir = kServiceAccountDir,
    const EnvFn& env = [](const char* n) { return std::getenv(n); });

// Standard base64 (padding optional, whitespace ignored); nullopt-like error on bad input.
Result<std::string> decodeBase64(const std::string& text);

}  // namespace meshlet

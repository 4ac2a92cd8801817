#include "cni/config.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <charconv>

#include "cni/conflist_edit.h"
#include "cni/json_scan.h"

namespace meshlet::cni {
namespace {

using Json = nlohmann::json;

std::string JoinVersions() {
  std::string out;
  for (const std::string& v : SupportedVersions()) out += (out.empty() ? "" : ", ") + v;
  return out;
}

// prevResult's bytes as they came; falls back to re-serializing if the scanner disagrees with
// the parser (it should not: the parser accepted the text).
std::string PrevResultText(std::string_view stdin_data, const Json& prev_result) {
  try {
    FoundMember found = FindMember(stdin_data, DocumentValue(stdin_data), "prevResult");
    if (found.found) return std::string(stdin_data.substr(found.value.begin, found.value.size()));
  } catch (const ScanError&) {
  }
  return prev_result.dump();
}

}  // namespace

const std::vector<std::string>& SupportedVersions() {
  static const std::vector<std::string> versions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
  return versions;
}

bool IsSupportedVersion(std::string_view version) {
  for (const std::string& v : SupportedVersions()) {
    if (v == version) return true;
  }
  return false;
}

std::string VersionJson() {
  Json out = {{"cniVersion", kLatestVersion}, {"supportedVersions", SupportedVersions()}};
  return out.dump();
}

std::string ErrorJson(std::string_view cni_version, const CniError& error) {
  nlohmann::ordered_json out = {{"cniVersion", cni_version},
                                {"code", error.code()},
                                {"msg", error.what()},
                                {"details", error.details()}};
  return out.dump(/*indent=*/-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

NetConf ParseNetConf(std::string_view stdin_data) {
  Json conf;
  try {
    conf = Json::parse(stdin_data);
  } catch (const Json::exception& e) {
    throw CniError(kErrDecodeStdin, "failed to decode the network configuration on stdin",
                   e.what());
  }
  if (!conf.is_object()) {
    throw CniError(kErrDecodeStdin, "the network configuration on stdin is not a JSON object");
  }
  NetConf out;
  auto version = conf.find("cniVersion");
  if (version == conf.end()) {
    throw CniError(kErrInvalidConfig, "the network configuration has no cniVersion");
  }
  if (!version->is_string()) {
    throw CniError(kErrInvalidConfig, "cniVersion must be a string", version->dump());
  }
  out.cni_version = version->get<std::string>();
  if (!IsSupportedVersion(out.cni_version)) {
    throw CniError(kErrIncompatibleVersion, "incompatible CNI versions",
                   "config is \"" + out.cni_version + "\", meshlet-cni supports " + JoinVersions());
  }
  if (auto it = conf.find("name"); it != conf.end() && it->is_string()) out.name = *it;

  out.socket_path = kDefaultSocketPath;
  if (auto it = conf.find("socketPath"); it != conf.end()) {
    if (!it->is_string() || it->get<std::string>().empty()) {
      throw CniError(kErrInvalidConfig, "socketPath must be a non-empty string", it->dump());
    }
    out.socket_path = it->get<std::string>();
    if (out.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
      throw CniError(kErrInvalidConfig, "socketPath is too long for a unix socket",
                     out.socket_path);
    }
  }
  if (auto it = conf.find("failOpen"); it != conf.end()) {
    if (!it->is_boolean()) {
      throw CniError(kErrInvalidConfig, "failOpen must be true or false", it->dump());
    }
    out.fail_open = it->get<bool>();
  }
  if (auto it = conf.find("timeoutMs"); it != conf.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 600000) {
      throw CniError(kErrInvalidConfig, "timeoutMs must be an integer from 1 to 600000",
                     it->dump());
    }
    out.timeout_ms = static_cast<int>(it->get<int64_t>());
  }
  if (auto it = conf.find("prevResult"); it != conf.end() && !it->is_null()) {
    if (!it->is_object()) {
      throw CniError(kErrInvalidConfig, "prevResult must be a JSON object", it->dump());
    }
    out.has_prev_result = true;
    out.prev_result = *it;
    out.prev_result_text = PrevResultText(stdin_data, *it);
  }
  return out;
}

std::string VersionForErrors(std::string_view stdin_data) {
  Json conf = Json::parse(stdin_data, nullptr, /*allow_exceptions=*/false);
  if (conf.is_object()) {
    auto it = conf.find("cniVersion");
    if (it != conf.end() && it->is_string() && IsSupportedVersion(it->get<std::string>())) {
      return it->get<std::string>();
    }
  }
  return std::string(kLatestVersion);
}

bool VersionLess(std::string_view a, std::string_view b) {
  auto parts = [](std::string_view v) {
    std::vector<int> out;
    while (!v.empty()) {
      int n = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      out.push_back(ec == std::errc() ? n : 0);
      size_t dot = v.find('.');
      v = dot == std::string_view::npos ? std::string_view() : v.substr(dot + 1);
    }
    return out;
  };
  return parts(a) < parts(b);
}

std::map<std::string, std::string> ParseCniArgs(std::string_view args, bool lenient) {
  std::map<std::string, std::string> out;
  while (!args.empty()) {
    size_t semi = args.find(';');
    std::string_view pair = args.substr(0, semi);
    args = semi == std::string_view::npos ? std::string_view() : args.substr(semi + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      if (lenient) continue;
      throw CniError(kErrInvalidEnv,
                     "invalid CNI_ARGS: \"" + std::string(pair) + "\" is not a KEY=VALUE pair");
    }
    out[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
  }
  return out;
}

K8sPod K8sPodFromArgs(const std::map<std::string, std::string>& args) {
  K8sPod pod;
  auto get = [&](const char* key) {
    auto it = args.find(key);
    return it == args.end() ? std::string() : it->second;
  };
  pod.name = get("K8S_POD_NAME");
  pod.ns = get("K8S_POD_NAMESPACE");
  pod.uid = get("K8S_POD_UID");
  return pod;
}

std::vector<std::string> PrevResultIps(const nlohmann::json& prev_result) {
  auto ips = prev_result.find("ips");
  if (ips == prev_result.end() || !ips->is_array() || ips->empty()) {
    throw CniError(kErrInvalidConfig,
                   "prevResult has no IPs: the primary plugin assigned the pod no address",
                   "meshlet-cni needs prevResult.ips[] to enroll the pod");
  }
  std::vector<std::string> out;
  for (const Json& ip : *ips) {
    auto address = ip.is_object() ? ip.find("address") : ip.end();
    if (!ip.is_object() || address == ip.end() || !address->is_string()) {
      throw CniError(kErrInvalidConfig, "prevResult.ips[] entry has no \"address\"", ip.dump());
    }
    std::string cidr = address->get<std::string>();
    std::string addr = cidr.substr(0, cidr.find('/'));
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET, addr.c_str(), buf) != 1 && inet_pton(AF_INET6, addr.c_str(), buf) != 1) {
      throw CniError(kErrInvalidConfig, "prevResult.ips[] has an invalid address", cidr);
    }
    out.push_back(addr);
  }
  return out;
}

}  // namespace meshlet::cni

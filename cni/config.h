// Parsing of what a container runtime hands a CNI plugin: the network configuration on stdin,
// CNI_ARGS, and the IPs of prevResult. Errors are CniError carrying the spec's error code.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace meshlet::cni {

// Error codes from the CNI specification (1-99) and ours (>= 100).
enum ErrorCode : int {
  kErrIncompatibleVersion = 1,
  kErrInvalidEnv = 4,
  kErrDecodeStdin = 6,
  kErrInvalidConfig = 7,
  kErrTryAgainLater = 11,
  kErrAgentFailed = 100,  // the agent answered FAILED
  kErrInternal = 999,     // a bug (the same code the reference Go plugins use)
};

class CniError : public std::runtime_error {
 public:
  CniError(int code, std::string msg, std::string details = "")
      : std::runtime_error(msg), code_(code), details_(std::move(details)) {}
  int code() const { return code_; }
  const std::string& details() const { return details_; }

 private:
  int code_;
  std::string details_;
};

inline constexpr std::string_view kLatestVersion = "1.0.0";
inline constexpr int kDefaultTimeoutMs = 10000;
const std::vector<std::string>& SupportedVersions();
bool IsSupportedVersion(std::string_view version);

// The VERSION command's answer.
std::string VersionJson();

// {"cniVersion", "code", "msg", "details"} as the spec asks for errors on stdout.
std::string ErrorJson(std::string_view cni_version, const CniError& error);

struct NetConf {
  std::string cni_version;
  std::string name;
  std::string socket_path;
  bool fail_open = false;
  int timeout_ms = kDefaultTimeoutMs;
  bool has_prev_result = false;
  std::string prev_result_text;  // prevResult exactly as the bytes on stdin
  nlohmann::json prev_result;
};

// Parses and validates the configuration on stdin. Throws CniError (6 not JSON/not an object,
// 7 missing/invalid field, 1 unsupported cniVersion).
NetConf ParseNetConf(std::string_view stdin_data);

// The config's cniVersion if stdin has a supported one, else "1.0.0": the version to answer
// errors in. Never throws.
std::string VersionForErrors(std::string_view stdin_data);

// True when version a < version b ("0.3.1" < "0.4.0"); both must be dotted numbers.
bool VersionLess(std::string_view a, std::string_view b);

// CNI_ARGS: "K1=V1;K2=V2". Throws CniError(4) on a pair without '=' unless lenient.
std::map<std::string, std::string> ParseCniArgs(std::string_view args, bool lenient = false);

struct K8sPod {
  std::string name;
  std::string ns;
  std::string uid;
  bool IsPod() const { return !name.empty() && !ns.empty(); }
};
K8sPod K8sPodFromArgs(const std::map<std::string, std::string>& args);

// The addresses of prevResult.ips[] without their prefix length. Throws CniError(7) when there
// are none or one is malformed.
std::vector<std::string> PrevResultIps(const nlohmann::json& prev_result);

}  // namespace meshlet::cni

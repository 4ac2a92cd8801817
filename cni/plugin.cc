#include "cni/plugin.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "cni.pb.h"
#include "cni/agent_client.h"
#include "cni/config.h"
#include "cni/conflist_edit.h"

namespace meshlet::cni {
namespace {

constexpr std::chrono::milliseconds kDelTimeoutCap{2000};

struct Env {
  std::string command, container_id, netns, ifname, path, args;
};

Env ReadEnv(const EnvLookup& lookup) {
  return {lookup("CNI_COMMAND"), lookup("CNI_CONTAINERID"), lookup("CNI_NETNS"),
          lookup("CNI_IFNAME"),  lookup("CNI_PATH"),        lookup("CNI_ARGS")};
}

void Log(PluginOutcome& outcome, const std::string& line) {
  outcome.err += "meshlet-cni: " + line + "\n";
}

void RequireEnv(const Env& env, bool need_netns) {
  std::vector<std::string> missing;
  if (env.container_id.empty()) missing.push_back("CNI_CONTAINERID");
  if (need_netns && env.netns.empty()) missing.push_back("CNI_NETNS");
  if (env.ifname.empty()) missing.push_back("CNI_IFNAME");
  if (env.path.empty()) missing.push_back("CNI_PATH");
  if (missing.empty()) return;
  std::string names;
  for (const std::string& name : missing) names += (names.empty() ? "" : ", ") + name;
  throw CniError(kErrInvalidEnv, "required environment variables missing: " + names,
                 "CNI_COMMAND=" + env.command);
}

class NetnsFd {
 public:
  explicit NetnsFd(const std::string& path)
      : fd_(path.empty() ? -1 : open(path.c_str(), O_RDONLY | O_CLOEXEC)), errno_(errno) {}
  ~NetnsFd() {
    if (fd_ >= 0) close(fd_);
  }
  NetnsFd(const NetnsFd&) = delete;
  NetnsFd& operator=(const NetnsFd&) = delete;
  int get() const { return fd_; }
  std::string error() const { return std::strerror(errno_); }

 private:
  int fd_;
  int errno_;
};

Request BuildRequest(Command command, const Env& env, const K8sPod& pod,
                     const std::vector<std::string>& ips, const std::string& version, bool fd) {
  Request request;
  request.set_command(command);
  request.set_cni_version(version);
  request.set_netns_fd_attached(fd);
  PodIdentity* identity = request.mutable_pod();
  identity->set_container_id(env.container_id);
  identity->set_pod_name(pod.name);
  identity->set_pod_namespace(pod.ns);
  identity->set_pod_uid(pod.uid);
  identity->set_netns_path(env.netns);
  identity->set_ifname(env.ifname);
  for (const std::string& ip : ips) identity->add_ips(ip);
  return request;
}

std::string Describe(const K8sPod& pod, const Env& env) {
  return "pod " + pod.ns + "/" + pod.name + " (container " + env.container_id + ")";
}

// What ADD and CHECK share: asks the agent about the pod. Returns normally when the agent is fine
// with the pod, when it is not a Kubernetes pod (nothing to ask), or when the agent is unreachable
// and failOpen lets it through (with a warning); throws CniError otherwise.
void AskAgent(Command command, const Env& env, const NetConf& conf, PluginOutcome& outcome) {
  K8sPod pod = K8sPodFromArgs(ParseCniArgs(env.args));
  if (!pod.IsPod()) {
    Log(outcome, "container " + env.container_id +
                     " is not a Kubernetes pod (no K8S_POD_NAME/K8S_POD_NAMESPACE in CNI_ARGS): "
                     "not asking the meshlet agent");
    return;
  }
  std::vector<std::string> ips = PrevResultIps(conf.prev_result);
  NetnsFd netns(env.netns);
  if (netns.get() < 0) {
    throw CniError(kErrInvalidEnv, "cannot open CNI_NETNS \"" + env.netns + "\"", netns.error());
  }
  Request request = BuildRequest(command, env, pod, ips, conf.cni_version, true);
  ExchangeResult result =
      Exchange(conf.socket_path, request, netns.get(), std::chrono::milliseconds(conf.timeout_ms));
  if (!result.ok) {
    std::string what = "meshlet agent unreachable at " + conf.socket_path + ": " + result.error;
    if (!conf.fail_open) {
      throw CniError(kErrTryAgainLater,
                     what + " (failOpen is false, so the pod is not started unprotected)",
                     Describe(pod, env) + "; is meshletd running on this node?");
    }
    Log(outcome, "WARNING: " + what + "; failOpen is true, so " + Describe(pod, env) +
                     " goes on WITHOUT the mesh");
    return;
  }
  if (result.response.status() == Response::FAILED) {
    std::string msg = result.response.message();
    if (msg.empty()) msg = "the meshlet agent could not enroll the pod";
    throw CniError(kErrAgentFailed, msg, Describe(pod, env));
  }
  if (result.response.status() != Response::ENROLLED &&
      result.response.status() != Response::NOT_MESHED) {
    throw CniError(kErrAgentFailed,
                   "unexpected answer from the meshlet agent: status " +
                       Response::Status_Name(result.response.status()),
                   Describe(pod, env));
  }
}

NetConf ChainedNetConf(std::string_view stdin_data) {
  NetConf conf = ParseNetConf(stdin_data);
  if (!conf.has_prev_result) {
    throw CniError(kErrInvalidConfig,
                   "meshlet-cni must be chained after a primary plugin: no prevResult",
                   "put meshlet-cni last in the \"plugins\" list of the node's .conflist");
  }
  return conf;
}

void RunAdd(const Env& env, std::string_view stdin_data, PluginOutcome& outcome) {
  RequireEnv(env, /*need_netns=*/true);
  NetConf conf = ChainedNetConf(stdin_data);
  AskAgent(ADD, env, conf, outcome);
  outcome.out = conf.prev_result_text;
}

void RunCheck(const Env& env, std::string_view stdin_data, PluginOutcome& outcome) {
  RequireEnv(env, /*need_netns=*/true);
  NetConf conf = ChainedNetConf(stdin_data);
  if (VersionLess(conf.cni_version, "0.4.0")) {
    throw CniError(kErrIncompatibleVersion, "config version does not allow CHECK",
                   "cniVersion is " + conf.cni_version + "; CHECK needs 0.4.0 or later");
  }
  AskAgent(CHECK, env, conf, outcome);
}

// DEL never fails: a failed DEL would stop the runtime from tearing down the rest of the chain.
// What can be read is used; the agent reconciles whatever this call could not tell it.
void RunDel(const Env& env, std::string_view stdin_data, PluginOutcome& outcome) {
  NetConf conf;
  conf.socket_path = kDefaultSocketPath;
  nlohmann::json json = nlohmann::json::parse(stdin_data, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    Log(outcome, "DEL: the network configuration on stdin is not a JSON object; using defaults");
    json = nlohmann::json::object();
  }
  if (auto it = json.find("socketPath"); it != json.end() && it->is_string()) {
    conf.socket_path = it->get<std::string>();
  }
  if (auto it = json.find("timeoutMs"); it != json.end() && it->is_number_integer()) {
    conf.timeout_ms = static_cast<int>(std::clamp<int64_t>(it->get<int64_t>(), 1, 600000));
  }
  if (auto it = json.find("cniVersion"); it != json.end() && it->is_string()) {
    conf.cni_version = it->get<std::string>();
  }
  K8sPod pod = K8sPodFromArgs(ParseCniArgs(env.args, /*lenient=*/true));
  if (env.container_id.empty() && !pod.IsPod()) {
    Log(outcome, "DEL without CNI_CONTAINERID or a pod name: nothing to tell the agent");
    return;
  }
  std::vector<std::string> ips;
  if (auto it = json.find("prevResult"); it != json.end() && it->is_object()) {
    try {
      ips = PrevResultIps(*it);
    } catch (const CniError&) {
    }
  }
  NetnsFd netns(env.netns);  // the netns may be gone already: then no fd
  Request request = BuildRequest(DEL, env, pod, ips, conf.cni_version, netns.get() >= 0);
  ExchangeResult result =
      Exchange(conf.socket_path, request, netns.get(),
               std::min(std::chrono::milliseconds(conf.timeout_ms), kDelTimeoutCap));
  if (!result.ok) {
    Log(outcome, "DEL: meshlet agent unreachable at " + conf.socket_path + ": " + result.error +
                     "; it will reconcile container " + env.container_id + " later");
  } else if (result.response.status() == Response::FAILED) {
    Log(outcome, "DEL: the meshlet agent could not forget container " + env.container_id + ": " +
                     result.response.message());
  }
}

}  // namespace

PluginOutcome RunPlugin(const EnvLookup& lookup, std::string_view stdin_data) {
  PluginOutcome outcome;
  Env env = ReadEnv(lookup);
  try {
    if (env.command == "DEL") {
      try {
        RunDel(env, stdin_data, outcome);
      } catch (const std::exception& e) {
        Log(outcome, std::string("DEL: ignored: ") + e.what());
      }
      return outcome;
    }
    if (env.command.empty()) {
      throw CniError(kErrInvalidEnv, "required environment variable CNI_COMMAND is not set",
                     "meshlet-cni is a CNI plugin run by the container runtime; to put it on a "
                     "node run 'meshlet-cni install'");
    }
    if (env.command == "VERSION") {
      outcome.out = VersionJson();
    } else if (env.command == "ADD") {
      RunAdd(env, stdin_data, outcome);
    } else if (env.command == "CHECK") {
      RunCheck(env, stdin_data, outcome);
    } else {
      throw CniError(kErrInvalidEnv, "unknown CNI_COMMAND \"" + env.command + "\"",
                     "meshlet-cni answers ADD, DEL, CHECK and VERSION");
    }
  } catch (const CniError& e) {
    outcome.exit_code = 1;
    outcome.out = ErrorJson(VersionForErrors(stdin_data), e);
    Log(outcome, env.command + " failed: " + e.what() +
                     (e.details().empty() ? "" : " (" + e.details() + ")"));
  } catch (const std::exception& e) {
    CniError internal(kErrInternal, std::string("meshlet-cni internal error: ") + e.what());
    outcome.exit_code = 1;
    outcome.out = ErrorJson(VersionForErrors(stdin_data), internal);
    Log(outcome, internal.what());
  }
  return outcome;
}

}  // namespace meshlet::cni

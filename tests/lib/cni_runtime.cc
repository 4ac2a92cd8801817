#include "tests/lib/cni_runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace meshlet::testing {
namespace {

using Json = nlohmann::ordered_json;

std::string findPlugin(const std::vector<std::string>& dirs, const std::string& type) {
  for (const auto& d : dirs) {
    std::string p = d + "/" + type;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string joinPath(const std::vector<std::string>& dirs) {
  std::string s;
  for (const auto& d : dirs) s += (s.empty() ? "" : ":") + d;
  return s;
}

enum class Order { kForward, kReverse };

CniResult runList(const CniRuntime& rt, const std::string& command, Order order,
                  const std::string& container_id, const std::string& netns_path,
                  const std::string& cni_args, const std::string& ifname,
                  const std::string& cached) {
  CniResult res;
  Json list = Json::parse(rt.conflist, nullptr, false);
  if (list.is_discarded() || !list.contains("plugins")) {
    res.stderr_text = "test runtime: bad conflist";
    return res;
  }
  std::vector<Json> plugins(list["plugins"].begin(), list["plugins"].end());
  if (order == Order::kReverse) std::reverse(plugins.begin(), plugins.end());
  Json prev = cached.empty() ? Json() : Json::parse(cached, nullptr, false);
  for (auto conf : plugins) {
    std::string type = conf.value("type", "");
    std::string bin = findPlugin(rt.plugin_dirs, type);
    if (bin.empty()) {
      res.exit_code = 1;
      res.failed_plugin = type;
      res.stderr_text = "test runtime: plugin " + type + " not found in " + joinPath(rt.plugin_dirs);
      return res;
    }
    conf["name"] = list.value("name", "");
    conf["cniVersion"] = list.value("cniVersion", "1.0.0");
    if (!prev.is_null() && !prev.is_discarded()) conf["prevResult"] = prev;
    std::vector<std::string> env = {
        "CNI_COMMAND=" + command,       "CNI_CONTAINERID=" + container_id,
        "CNI_NETNS=" + netns_path,      "CNI_IFNAME=" + ifname,
        "CNI_ARGS=" + cni_args,         "CNI_PATH=" + joinPath(rt.plugin_dirs),
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    CniResult r = execPlugin(bin, env, conf.dump(), rt.host_netns);
    if (r.exit_code != 0) {
      r.failed_plugin = type;
      return r;
    }
    res = r;
    // ADD chains each plugin's result into the next; DEL and CHECK pass the cached result.
    if (command == "ADD") prev = Json::parse(r.stdout_text, nullptr, false);
  }
  if (command == "ADD" && !prev.is_discarded() && !prev.is_null()) res.stdout_text = prev.dump();
  return res;
}

}  // namespace

CniResult execPlugin(const std::string& binary, const std::vector<std::string>& env,
                     const std::string& stdin_text, const std::string& netns_path) {
  CniResult r;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return r;
  pid_t pid = fork();
  if (pid == 0) {
    if (!netns_path.empty()) {
      int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(126);
    }
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    char* argv[] = {const_cast<char*>(binary.c_str()), nullptr};
    execve(binary.c_str(), argv, envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  size_t off = 0;
  while (off < stdin_text.size()) {
    ssize_t n = write(in[1], stdin_text.data() + off, stdin_text.size() - off);
    if (n <= 0) break;
    off += n;
  }
  close(in[1]);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 30000) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.stdout_text : r.stderr_text).append(buf, n);
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

CniResult CniRuntime::add(const std::string& container_id, const std::string& netns_path,
                          const std::string& cni_args, const std::string& ifname) const {
  return runList(*this, "ADD", Order::kForward, container_id, netns_path, cni_args, ifname, "");
}

CniResult CniRuntime::del(const std::string& container_id, const std::string& netns_path,
                          const std::string& cni_args, const std::string& cached,
                          const std::string& ifname) const {
  return runList(*this, "DEL", Order::kReverse, container_id, netns_path, cni_args, ifname,
                 cached);
}

CniResult CniRuntime::check(const std::string& container_id, const std::string& netns_path,
                            const std::string& cni_args, const std::string& cached,
                            const std::string& ifname) const {
  return runList(*this, "CHECK", Order::kForward, container_id, netns_path, cni_args, ifname,
                 cached);
}

std::string k8sCniArgs(const std::string& ns, const std::string& name, const std::string& uid,
                       const std::string& container_id) {
  return "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + ns + ";K8S_POD_NAME=" + name +
         ";K8S_POD_INFRA_CONTAINER_ID=" + container_id + ";K8S_POD_UID=" + uid;
}

}  // namespace meshlet::testing

#include "tests/lib/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/datapath/datapath.h"
#include "tests/lib/e2e_util.h"

namespace fs = std::filesystem;

namespace meshlet::testing {
namespace {

std::atomic<int> g_counter{0};

// Moves the calling process into the pod's cgroup, then its netns (in that order: entering a
// netns with `ip netns exec` would remount /sys, so we use setns directly).
bool enterPod(const TestPod& pod) {
  {
    std::ofstream procs(pod.cgroup + "/cgroup.procs");
    procs << getpid();
    procs.flush();
    if (!procs) return false;
  }
  int fd = open(pod.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  return ok;
}

std::string sockaddrToString(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
}

socklen_t makeAddr(const std::string& ip, int port, sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof(ss));
  if (ip.find(':') == std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    return sizeof(sockaddr_in);
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
  return sizeof(sockaddr_in6);
}

}  // namespace

std::string podYaml(const TestPod& p, const PodYaml& y) {
  std::string out = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + p.name +
                    "\n  namespace: " + y.ns + "\n  labels: " + y.labels +
                    "\n  annotations:\n    meshlet.io/netns: " + p.netns_path +
                    "\nspec:\n  nodeName: " + y.node + "\n";
  if (!y.service_account.empty()) out += "  serviceAccountName: " + y.service_account + "\n";
  out += "  containers:\n  - name: app\n    image: app\n";
  if (!y.container_port.empty()) {
    out += "    ports: [{name: " + y.container_port + ", containerPort: 8080}]\n";
  }
  out += "status:\n  phase: Running\n  podIP: " + p.ip4 + "\n  podIPs: [{ip: " + p.ip4 +
         "}]\n  conditions: [{type: Ready, status: \"" + (y.ready ? "True" : "False") + "\"}]\n";
  return out;
}

std::string kernelTestsUnavailable() {
  if (geteuid() != 0) return "needs root (BPF, network namespaces, cgroups)";
  auto cg = detectCgroup2Root();
  if (!cg) return cg.error().message();
  if (Sandbox::sh("[ \"$(stat -f -c %T /sys/fs/bpf 2>/dev/null)\" = bpf_fs ]") != 0) {
    return "bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)";
  }
  if (Sandbox::sh("command -v ip >/dev/null") != 0) return "iproute2 (ip) is not installed";
  return "";
}

int Sandbox::sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string Sandbox::shOut(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

Sandbox::Sandbox(int node) : node_(node) {
  id_ = std::to_string(getpid()) + (g_counter ? "x" + std::to_string(g_counter.load()) : "");
  ++g_counter;
  auto root = detectCgroup2Root();
  cgroup_ = (root ? *root : std::string("/sys/fs/cgroup")) + "/meshlet-test-" + id_;
  fs::create_directories(cgroup_);
  bpffs_ = "/sys/fs/bpf/meshlet-test-" + id_;
  node_ns_ = "mlt-" + id_ + "-node";
  sh("ip netns add " + node_ns_);
  sh("ip -n " + node_ns_ + " link set lo up");
  sh("ip -n " + node_ns_ + " link add br0 type bridge");
  sh("ip -n " + node_ns_ + " link set br0 up");
  if (node_ > 0) {
    sh("ip -n " + node_ns_ + " addr add 198.18." + std::to_string(node_) + ".254/24 dev br0");
    sh("ip netns exec " + node_ns_ + " sysctl -qw net.ipv4.ip_forward=1");
  }
}

std::string joinNodes(Sandbox& a, Sandbox& b) {
  std::string ifa = ("mln" + a.id()).substr(0, 15);
  std::string ifb = ("mln" + b.id()).substr(0, 15);
  if (ifa == ifb) ifb = ifb.substr(0, 14) + "b";
  Sandbox::sh("ip -n " + a.nodeNetns() + " link add " + ifa + " type veth peer name " + ifb +
              " netns " + b.nodeNetns());
  Sandbox::sh("ip -n " + a.nodeNetns() + " addr add 198.18.250.1/30 dev " + ifa);
  Sandbox::sh("ip -n " + b.nodeNetns() + " addr add 198.18.250.2/30 dev " + ifb);
  Sandbox::sh("ip -n " + a.nodeNetns() + " link set " + ifa + " up");
  Sandbox::sh("ip -n " + b.nodeNetns() + " link set " + ifb + " up");
  Sandbox::sh("ip -n " + a.nodeNetns() + " route add 198.18." + std::to_string(b.node()) +
              ".0/24 via 198.18.250.2");
  Sandbox::sh("ip -n " + b.nodeNetns() + " route add 198.18." + std::to_string(a.node()) +
              ".0/24 via 198.18.250.1");
  return ifa;
}

Sandbox::~Sandbox() {
  for (pid_t p : children_) ::kill(p, SIGKILL);
  for (pid_t p : children_) waitpid(p, nullptr, 0);
  for (const auto& [name, pod] : pods_) {
    sh("ip netns del " + pod.netns + " 2>/dev/null");
    rmdir(pod.cgroup.c_str());
  }
  sh("ip netns del " + node_ns_ + " 2>/dev/null");
  // An agent a test left running in the sandbox's agent cgroup (spawnAgent put it there).
  std::string agents = cgroup_ + "/" + kAgentCgroup;
  for (int attempt = 0; attempt < 50 && fs::exists(agents); ++attempt) {
    std::ifstream procs(agents + "/cgroup.procs");
    pid_t p;
    while (procs >> p) ::kill(p, SIGKILL);
    if (rmdir(agents.c_str()) == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  rmdir(cgroup_.c_str());
  DatapathOptions opts;
  opts.bpffs_dir = bpffs_;
  Datapath::uninstall(opts);
}

const TestPod& Sandbox::addPod(const std::string& name) {
  int idx = next_index_++;
  addBarePod(name);
  TestPod& p = pods_.at(name);
  p.ip4 = "198.18." + std::to_string(node_) + "." + std::to_string(idx + 1);
  std::ostringstream v6;
  v6 << "2001:2:" << std::hex;
  if (node_ > 0) v6 << node_ << ":";
  v6 << ":" << (idx + 1);
  p.ip6 = v6.str();
  std::string host_if = "mh" + id_.substr(0, 8) + "p" + std::to_string(idx);
  host_if = host_if.substr(0, 15);
  sh("ip -n " + node_ns_ + " link add " + host_if + " type veth peer name eth0 netns " + p.netns);
  sh("ip -n " + node_ns_ + " link set " + host_if + " master br0 up");
  sh("ip -n " + p.netns + " addr add " + p.ip4 + "/24 dev eth0");
  sh("ip -n " + p.netns + " addr add " + p.ip6 + "/64 dev eth0 nodad");
  sh("ip -n " + p.netns + " link set eth0 up");
  sh("ip -n " + p.netns + " route add default " +
     (node_ > 0 ? "via 198.18." + std::to_string(node_) + ".254" : std::string("dev eth0")));
  sh("ip -n " + p.netns + " -6 route add default dev eth0");
  return p;
}

const TestPod& Sandbox::addBarePod(const std::string& name) {
  TestPod p;
  p.name = name;
  p.netns = "mlt-" + id_ + "-" + name;
  p.netns_path = "/var/run/netns/" + p.netns;
  p.cgroup = cgroup_ + "/" + name;
  fs::create_directories(p.cgroup);
  sh("ip netns add " + p.netns);
  sh("ip -n " + p.netns + " link set lo up");
  auto [it, _] = pods_.emplace(name, p);
  return it->second;
}

void Sandbox::removePod(const std::string& name) {
  auto it = pods_.find(name);
  if (it == pods_.end()) return;
  sh("ip netns del " + it->second.netns + " 2>/dev/null");
  rmdir(it->second.cgroup.c_str());
  pods_.erase(it);
}

std::string Sandbox::runInPod(const TestPod& pod, const std::function<std::string()>& fn) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return "";
  }
  pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return "";
  }
  if (pid == 0) {
    close(fds[0]);
    std::string out = enterPod(pod) ? fn() : std::string("ERROR: cannot enter pod");
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = write(fds[1], out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += n;
    }
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  // Leave the (now empty) child cgroup membership behind: the process is gone.
  return out;
}

pid_t Sandbox::spawnInPod(const TestPod& pod, const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!enterPod(pod)) _exit(120);
    _exit(fn());
  }
  if (pid > 0) children_.push_back(pid);
  return pid;
}

pid_t Sandbox::execInPod(const TestPod& pod, const std::vector<std::string>& argv,
                         const std::string& log_file) {
  return spawnInPod(pod, [argv, log_file]() {
    if (!log_file.empty()) {
      int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    return 127;
  });
}

void Sandbox::kill(pid_t pid) {
  ::kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  children_.erase(std::remove(children_.begin(), children_.end(), pid), children_.end());
}

int serveTcp(int family, int port, const std::string& greeting) {
  int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len = makeAddr(family == AF_INET ? "0.0.0.0" : "::", port, ss);
  if (bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(s, 128) != 0) return 1;
  for (;;) {
    int c = accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::thread([c, greeting]() {
      if (write(c, greeting.data(), greeting.size()) < 0) {
        close(c);
        return;
      }
      char buf[65536];
      ssize_t n;
      while ((n = read(c, buf, sizeof(buf))) > 0) {
        ssize_t off = 0;
        while (off < n) {
          ssize_t w = write(c, buf + off, n - off);
          if (w <= 0) break;
          off += w;
        }
      }
      close(c);
    }).detach();
  }
}

int serveUdp(int family, int port, const std::string& greeting) {
  int s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss{};
  socklen_t len = makeAddr(family == AF_INET ? "0.0.0.0" : "::", port, ss);
  if (bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) return 1;
  for (;;) {
    char buf[2048];
    sockaddr_storage from{};
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(s, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) continue;
    std::string reply = greeting + std::string(buf, n);
    sendto(s, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
  }
}

ConnectResult tcpConnect(const std::string& ip, int port, const DialOptions& o) {
  ConnectResult r;
  const int timeout_ms = o.timeout_ms;
  sockaddr_storage ss{};
  bool mapped = o.family == AF_INET6 && ip.find(':') == std::string::npos;
  socklen_t len = makeAddr(mapped ? "::ffff:" + ip : ip, port, ss);
  int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0 || (o.mark != 0 && setsockopt(s, SOL_SOCKET, SO_MARK, &o.mark, sizeof(o.mark)) != 0)) {
    r.err = errno;
    if (s >= 0) close(s);
    return r;
  }
  auto t0 = std::chrono::steady_clock::now();
  int rc = connect(s, reinterpret_cast<sockaddr*>(&ss), len);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{s, POLLOUT, 0};
    if (poll(&p, 1, timeout_ms) == 1) {
      int err = 0;
      socklen_t el = sizeof(err);
      getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
      r.err = err;
    } else {
      r.err = ETIMEDOUT;
    }
  } else if (rc != 0) {
    r.err = errno;
  }
  r.connect_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  sockaddr_storage local{};
  socklen_t ll = sizeof(local);
  if (getsockname(s, reinterpret_cast<sockaddr*>(&local), &ll) == 0) {
    r.local_port = ntohs(local.ss_family == AF_INET
                             ? reinterpret_cast<const sockaddr_in*>(&local)->sin_port
                             : reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
  }
  if (r.err == 0) {
    sockaddr_storage peer{};
    socklen_t pl = sizeof(peer);
    if (getpeername(s, reinterpret_cast<sockaddr*>(&peer), &pl) == 0) {
      r.peer = sockaddrToString(peer);
    }
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) == 1) {
      char buf[256];
      ssize_t n = read(s, buf, sizeof(buf));
      if (n > 0) r.greeting.assign(buf, n);
    }
  }
  close(s);
  return r;
}

std::string encode(const ConnectResult& r) {
  std::ostringstream o;
  o << r.err << "\n" << r.peer << "\n" << r.connect_ms << "\n" << r.local_port << "\n"
    << r.greeting;
  return o.str();
}

ConnectResult decode(const std::string& s) {
  ConnectResult r;
  std::istringstream in(s);
  std::string line;
  std::getline(in, line);
  r.err = line.empty() ? -1 : std::atoi(line.c_str());
  std::getline(in, r.peer);
  std::getline(in, line);
  r.connect_ms = std::atof(line.c_str());
  std::getline(in, line);
  r.local_port = std::atoi(line.c_str());
  std::ostringstream rest;
  rest << in.rdbuf();
  r.greeting = rest.str();
  return r;
}

}  // namespace meshlet::testing

#pragma once
// A node on one machine for kernel and end-to-end tests: a "node" network namespace holding a
// bridge, "pods" that are network namespaces with a veth on that bridge plus a cgroup v2
// directory under a scratch cgroup (<cgroup2>/meshlet-test-<pid>) that the datapath attaches
// to, and a scratch bpffs directory. Everything is named meshlet-test-<pid> / mlt<pid> and
// removed in the destructor, processes first (by PID).
#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace meshlet::testing {

struct TestPod {
  std::string name;
  std::string netns;       // name under /var/run/netns
  std::string netns_path;  // /var/run/netns/<netns>
  std::string cgroup;      // cgroup directory of its processes
  std::string ip4;
  std::string ip6;
};

// A `v1 Pod` document for a test pod, as the agent's file source reads it: its netns in the
// meshlet.io/netns annotation, its IPv4 address in status, Running.
struct PodYaml {
  std::string ns;
  std::string labels = "{}";      // a YAML flow map, e.g. "{app: web, version: v1}"
  std::string node = "e2e-node";  // spec.nodeName
  std::string service_account;    // "" for none
  std::string container_port;     // e.g. "tcp": a container port of that name, 8080
  bool ready = true;              // the Ready condition
};
std::string podYaml(const TestPod& p, const PodYaml& y);

// Why the kernel tests cannot run here, or "" when they can (root, cgroup v2, bpffs, ip).
std::string kernelTestsUnavailable();

class Sandbox {
 public:
  // node 0: the single-node layout (pods 198.18.0.x on one bridge, routes on-link). node N >= 1:
  // one node of a multi-node topology — pods 198.18.N.x/24 routed through the bridge's
  // 198.18.N.254, forwarding on; joinNodes() connects two such nodes.
  explicit Sandbox(int node = 0);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  const std::string& id() const { return id_; }
  const std::string& cgroup() const { return cgroup_; }  // the attach point
  const std::string& bpffs() const { return bpffs_; }
  const std::string& nodeNetns() const { return node_ns_; }
  int node() const { return node_; }

  // A pod with 198.18.<subnet>.<host>/16-style addressing chosen by index (1-based):
  // ip4 198.18.0.<index+1>/24... see addPod in sandbox.cc for the exact plan.
  const TestPod& addPod(const std::string& name);
  // A pod with only a network namespace and a cgroup, for a CNI plugin to wire up.
  const TestPod& addBarePod(const std::string& name);
  void setPodIp(const std::string& name, const std::string& ip4) { pods_.at(name).ip4 = ip4; }
  const TestPod& pod(const std::string& name) const { return pods_.at(name); }
  void removePod(const std::string& name);

  // Runs fn in a child process placed in the pod's cgroup and netns; returns what fn returned
  // (sent back over a pipe). Aborts the test on fork failure.
  std::string runInPod(const TestPod& pod, const std::function<std::string()>& fn);
  // Starts fn (or argv) in the pod in the background; the sandbox kills it at teardown.
  pid_t spawnInPod(const TestPod& pod, const std::function<int()>& fn);
  pid_t execInPod(const TestPod& pod, const std::vector<std::string>& argv,
                  const std::string& log_file = "");
  void kill(pid_t pid);

  // Runs a shell command, returns its exit status; output goes to the test log.
  static int sh(const std::string& cmd);
  static std::string shOut(const std::string& cmd);

 private:
  std::string id_;
  std::string cgroup_;
  std::string bpffs_;
  std::string node_ns_;
  int node_ = 0;
  std::map<std::string, TestPod> pods_;
  std::vector<pid_t> children_;
  int next_index_ = 1;
};

// Joins two nodes (node >= 1) with a veth pair between their node namespaces, 198.18.250.1/30
// on a's side and .2 on b's, and routes each node's pod subnet through it. Returns the name of
// the interface on a's side (to capture what crosses between the nodes). The pair goes away
// with the node namespaces.
std::string joinNodes(Sandbox& a, Sandbox& b);

// Small socket helpers used by the tests (all in the calling process's netns).
// A TCP server that, per connection, writes `greeting` then echoes until EOF.
int serveTcp(int family, int port, const std::string& greeting);
// A UDP server that answers every datagram with `greeting` + the datagram.
int serveUdp(int family, int port, const std::string& greeting);
struct ConnectResult {
  int err = 0;               // errno of connect(), 0 on success
  std::string peer;          // getpeername() "ip:port"
  std::string greeting;      // first bytes read
  double connect_ms = 0;
  int local_port = 0;        // getsockname() port
};
struct DialOptions {
  int family = 0;  // 0: the address's; AF_INET6 with an IPv4 address dials ::ffff:a.b.c.d
  int mark = 0;    // SO_MARK on the socket, 0 for none
  int timeout_ms = 2000;
};
ConnectResult tcpConnect(const std::string& ip, int port, const DialOptions& o);
inline ConnectResult tcpConnect(const std::string& ip, int port, int timeout_ms = 2000) {
  return tcpConnect(ip, port, DialOptions{0, 0, timeout_ms});
}
// Serializes a ConnectResult through runInPod's string channel.
std::string encode(const ConnectResult& r);
ConnectResult decode(const std::string& s);

}  // namespace meshlet::testing

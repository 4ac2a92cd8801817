// The Helm chart (helm/meshlet), rendered by the real helm binary and checked against the real
// agent: every object parses, the DaemonSet mounts what the agent's flags point to, its flags
// are the ones the built binaries accept, RBAC is exactly what the Kubernetes source watches,
// readiness and metrics ports agree with the flags. Also keeps the Dockerfile's build steps in
// step with the README's (tools/test.sh) and its runtime packages with what the binary links.
//
// helm is found as $MESHLET_HELM, /opt/meshlet-tools/bin/helm (tools/install-deps.sh) or on
// PATH; without it the helm tests skip, saying why, except under CI (CI set), where they fail.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "agent/config/flags.h"
#include "agent/sources/kube_store.h"

namespace meshlet {
namespace {

const std::string kSource = MESHLET_SOURCE_DIR;
const std::string kChart = kSource + "/helm/meshlet";
const std::string kCustomValues = kSource + "/tests/helm/values-custom.yaml";

struct Cmd {
  int code = -1;
  std::string out;
  std::string err;
};

std::string readFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs a shell command: stdout and stderr apart (helm warns on stderr; stdout is YAML).
Cmd run(const std::string& cmd) {
  Cmd c;
  char err_path[] = "/tmp/meshlet-test-helm-XXXXXX";
  int fd = mkstemp(err_path);
  if (fd < 0) return c;
  close(fd);
  FILE* p = popen(("{ " + cmd + "; } 2>" + err_path).c_str(), "r");
  if (p != nullptr) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) c.out.append(buf, n);
    int rc = pclose(p);
    c.code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  }
  c.err = readFile(err_path);
  unlink(err_path);
  return c;
}

std::string findHelm() {
  if (const char* e = getenv("MESHLET_HELM"); e != nullptr && *e) {
    return access(e, X_OK) == 0 ? e : "";  // set but not there: missing, not another helm
  }
  if (access("/opt/meshlet-tools/bin/helm", X_OK) == 0) return "/opt/meshlet-tools/bin/helm";
  Cmd c = run("command -v helm");
  if (c.code == 0 && !c.out.empty()) return c.out.substr(0, c.out.find('\n'));
  return "";
}

// ---- rendered objects ----

// "Not found": an undefined node (false in a condition; a default YAML::Node() is a defined null).
YAML::Node kMissing() { return YAML::Node(YAML::NodeType::Undefined); }

bool isHook(const YAML::Node& o) {
  return o["metadata"]["annotations"] && o["metadata"]["annotations"]["helm.sh/hook"];
}

struct Rendered {
  std::vector<YAML::Node> objects;

  std::vector<YAML::Node> all(const std::string& kind, bool hooks) const {
    std::vector<YAML::Node> out;
    for (const auto& o : objects) {
      if (o["kind"].as<std::string>() == kind && isHook(o) == hooks) out.push_back(o);
    }
    return out;
  }
  YAML::Node one(const std::string& kind, bool hooks = false) const {
    auto v = all(kind, hooks);
    EXPECT_EQ(v.size(), 1u) << "expected one " << kind << (hooks ? " hook" : "");
    return v.empty() ? kMissing() : v[0];
  }
};

std::vector<std::string> strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  if (!seq || !seq.IsSequence()) return out;
  for (const auto& s : seq) out.push_back(s.as<std::string>());
  return out;
}

// The container's command line (command + args).
std::vector<std::string> commandOf(const YAML::Node& c) {
  auto cmd = strings(c["command"]);
  auto args = strings(c["args"]);
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

// "--flag=value" / "--flag" → flag name → value ("" for switches); repeats keep the last.
std::map<std::string, std::string> flagsOf(const std::vector<std::string>& cmd) {
  std::map<std::string, std::string> out;
  for (size_t i = 1; i < cmd.size(); ++i) {
    if (cmd[i].rfind("--", 0) != 0) continue;
    auto eq = cmd[i].find('=');
    out[cmd[i].substr(0, eq)] = eq == std::string::npos ? "" : cmd[i].substr(eq + 1);
  }
  return out;
}

YAML::Node container(const YAML::Node& pod_spec, const std::string& list, const std::string& name) {
  for (const auto& c : pod_spec[list]) {
    if (c["name"].as<std::string>() == name) return c;
  }
  ADD_FAILURE() << "no " << list << " named " << name;
  return kMissing();
}

// Every container of a pod spec, init containers first.
std::vector<YAML::Node> containersOf(const YAML::Node& pod_spec) {
  std::vector<YAML::Node> out;
  for (const char* list : {"initContainers", "containers"}) {
    if (!pod_spec[list]) continue;
    for (const auto& c : pod_spec[list]) out.push_back(c);
  }
  return out;
}

bool under(const std::string& path, const std::string& dir) {
  return path == dir || (path.rfind(dir + "/", 0) == 0) || dir == "/";
}

// The volumeMount of `c` whose mountPath holds `path`, deepest first; null when none.
// (Indices, not Node assignment: assigning to a YAML::Node rewrites the node it refers to.)
YAML::Node mountFor(const YAML::Node& c, const std::string& path) {
  const YAML::Node mounts = c["volumeMounts"];
  int best = -1;
  size_t best_len = 0;
  for (size_t i = 0; mounts && i < mounts.size(); ++i) {
    std::string mp = mounts[i]["mountPath"].as<std::string>();
    if (under(path, mp) && mp.size() >= best_len) {
      best = static_cast<int>(i);
      best_len = mp.size();
    }
  }
  return best < 0 ? kMissing() : mounts[best];
}

YAML::Node volume(const YAML::Node& pod_spec, const std::string& name) {
  for (const auto& v : pod_spec["volumes"]) {
    if (v["name"].as<std::string>() == name) return v;
  }
  return kMissing();
}

// Flag names (--x-y) that a --help text lists.
std::set<std::string> helpFlags(const std::string& help) {
  std::set<std::string> out;
  std::regex re("--[a-z][a-z0-9-]*");
  for (auto it = std::sregex_iterator(help.begin(), help.end(), re); it != std::sregex_iterator();
       ++it) {
    out.insert(it->str());
  }
  return out;
}

int portOf(const std::string& host_port) {
  return std::stoi(host_port.substr(host_port.rfind(':') + 1));
}

class ChartTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { helm_ = findHelm(); }
  void SetUp() override {
    if (helm_.empty()) {
      if (getenv("CI") != nullptr) {
        FAIL() << "helm not found (tools/install-deps.sh installs it in /opt/meshlet-tools/bin)";
      }
      GTEST_SKIP() << "helm not found: run tools/install-deps.sh (it puts helm in "
                      "/opt/meshlet-tools/bin) or set MESHLET_HELM";
    }
  }
  std::string valuesArg() const { return GetParam().empty() ? "" : " -f " + GetParam(); }

  Rendered render() {
    Cmd c =
        run(helm_ + " template meshlet " + kChart + " --namespace meshlet-system" + valuesArg());
    EXPECT_EQ(c.code, 0) << c.err;
    Rendered r;
    try {
      for (const auto& doc : YAML::LoadAll(c.out)) {
        if (doc.IsNull()) continue;
        r.objects.push_back(doc);
      }
    } catch (const YAML::Exception& e) {
      ADD_FAILURE() << "helm template output is not YAML: " << e.what();
    }
    return r;
  }
  bool custom() const { return !GetParam().empty(); }

  static inline std::string helm_;
};

TEST_P(ChartTest, LintPassesStrict) {
  Cmd c = run(helm_ + " lint --strict " + kChart + valuesArg());
  EXPECT_EQ(c.code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("0 chart(s) failed"), std::string::npos) << c.out;
}

TEST_P(ChartTest, SchemaRejectsBadValues) {
  for (const char* bad : {"logLevel=loud", "readinessPort=0", "cgroupRoot=sys/fs/cgroup",
                          "privileged=maybe", "readinesPort=15021"}) {
    Cmd c = run(helm_ + " template meshlet " + kChart + valuesArg() + " --set " + bad);
    EXPECT_NE(c.code, 0) << "helm accepted --set " << bad;
    EXPECT_NE(c.err.find("schema"), std::string::npos) << c.err;
  }
}

TEST_P(ChartTest, EveryObjectParsesAndIsNamed) {
  Rendered r = render();
  ASSERT_FALSE(r.objects.empty());
  const std::set<std::string> known = {
      "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "Role",
      "RoleBinding",    "Job"};
  std::set<std::string> seen;
  for (const auto& o : r.objects) {
    ASSERT_TRUE(o.IsMap());
    ASSERT_TRUE(o["apiVersion"] && o["kind"] && o["metadata"]["name"]) << YAML::Dump(o);
    std::string kind = o["kind"].as<std::string>();
    std::string name = o["metadata"]["name"].as<std::string>();
    EXPECT_TRUE(known.count(kind)) << "unexpected kind " << kind;
    EXPECT_FALSE(name.empty());
    EXPECT_LE(name.size(), 63u) << name;
    EXPECT_TRUE(std::regex_match(name, std::regex("[a-z0-9]([-a-z0-9]*[a-z0-9])?"))) << name;
    std::string key = kind + "/" + name + (isHook(o) ? "/hook" : "");
    EXPECT_TRUE(seen.insert(key).second) << "rendered twice: " << key;
    bool namespaced = kind != "ClusterRole" && kind != "ClusterRoleBinding";
    if (namespaced) {
      EXPECT_EQ(o["metadata"]["namespace"].as<std::string>(""), "meshlet-system") << key;
    }
  }
  const std::map<std::string, std::string> api = {
      {"ServiceAccount", "v1"},
      {"ClusterRole", "rbac.authorization.k8s.io/v1"},
      {"ClusterRoleBinding", "rbac.authorization.k8s.io/v1"},
      {"Role", "rbac.authorization.k8s.io/v1"},
      {"RoleBinding", "rbac.authorization.k8s.io/v1"},
      {"DaemonSet", "apps/v1"},
      {"Job", "batch/v1"}};
  for (const auto& o : r.objects) {
    EXPECT_EQ(o["apiVersion"].as<std::string>(), api.at(o["kind"].as<std::string>()));
  }
  for (const char* kind : {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}) {
    EXPECT_EQ(r.all(kind, false).size(), 1u) << kind;
  }
}

TEST_P(ChartTest, DaemonSetRunsOnEveryNodeWithTheHostNetwork) {
  Rendered r = render();
  YAML::Node ds = r.one("DaemonSet");
  YAML::Node spec = ds["spec"]["template"]["spec"];
  EXPECT_TRUE(spec["hostNetwork"].as<bool>());
  EXPECT_EQ(spec["dnsPolicy"].as<std::string>(), "ClusterFirstWithHostNet");
  EXPECT_EQ(spec["hostPID"].as<bool>(), !custom());
  // Tolerates every taint.
  bool all_taints = false;
  for (const auto& t : spec["tolerations"]) {
    all_taints |= t["operator"].as<std::string>() == "Exists" && !t["key"] && !t["effect"];
  }
  EXPECT_TRUE(all_taints);
  EXPECT_EQ(ds["spec"]["updateStrategy"]["type"].as<std::string>(), "RollingUpdate");
  EXPECT_EQ(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"].as<int>(),
            custom() ? 2 : 1);
  EXPECT_EQ(spec["priorityClassName"].as<std::string>(),
            custom() ? "meshlet-critical" : "system-node-critical");
  // The selector selects the pod template.
  for (const auto& kv : ds["spec"]["selector"]["matchLabels"]) {
    EXPECT_EQ(
        ds["spec"]["template"]["metadata"]["labels"][kv.first.as<std::string>()].as<std::string>(),
        kv.second.as<std::string>());
  }
  // The node name comes from the downward API.
  YAML::Node agent = container(spec, "containers", "meshletd");
  auto flags = flagsOf(commandOf(agent));
  EXPECT_EQ(flags["--node-name"], "$(NODE_NAME)");
  bool node_env = false;
  for (const auto& e : agent["env"]) {
    node_env |= e["name"].as<std::string>() == "NODE_NAME" &&
                e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>() == "spec.nodeName";
  }
  EXPECT_TRUE(node_env);
  EXPECT_EQ(agent["image"].as<std::string>(),
            custom() ? "registry.example.test/mesh/meshlet:9.9.9-test" : "meshlet:0.1.0");
  EXPECT_EQ(flags["--log-level"], custom() ? "debug" : "info");
  EXPECT_EQ(flags["--trust-domain"], custom() ? "example.test" : "cluster.local");
  // Every container's image is the chart's (the cleanup Job's kubectl aside).
  for (const auto& c : containersOf(spec)) {
    EXPECT_EQ(c["image"].as<std::string>(), agent["image"].as<std::string>());
  }
}

TEST_P(ChartTest, EveryPathFlagLiesUnderAMountOfItsContainer) {
  Rendered r = render();
  int checked = 0;
  std::vector<YAML::Node> daemonsets = r.all("DaemonSet", false);
  for (const auto& d : r.all("DaemonSet", true)) daemonsets.push_back(d);
  for (const auto& ds : daemonsets) {
    YAML::Node spec = ds["spec"]["template"]["spec"];
    for (const auto& c : containersOf(spec)) {
      std::string cname = c["name"].as<std::string>();
      // Every mount names a volume of the pod.
      for (const auto& m : c["volumeMounts"]) {
        EXPECT_TRUE(volume(spec, m["name"].as<std::string>()))
            << cname << " mounts unknown volume " << m["name"];
      }
      auto cmd = commandOf(c);
      bool cni_install = cmd.size() > 1 && cmd[0] == "meshlet-cni" && cmd[1] == "install";
      for (const auto& [flag, value] : flagsOf(cmd)) {
        if (value.empty() || value[0] != '/') continue;
        // A host path the installer only writes into the conflist, for the plugin that runs on
        // the host: checked below against the agent's --cni-socket and its host mount.
        if (cni_install && flag == "--socket") continue;
        ++checked;
        YAML::Node m = mountFor(c, value);
        EXPECT_TRUE(m) << ds["metadata"]["name"] << "/" << cname << ": " << flag << "=" << value
                       << " is not under any volumeMount";
      }
    }
  }
  EXPECT_GE(checked, 8);

  // The mounts behind the agent's paths are the right host paths.
  YAML::Node spec = r.one("DaemonSet")["spec"]["template"]["spec"];
  YAML::Node agent = container(spec, "containers", "meshletd");
  auto flags = flagsOf(commandOf(agent));
  auto hostPathOf = [&](const YAML::Node& c, const std::string& path) {
    YAML::Node m = mountFor(c, path);
    if (!m) return std::string("<no mount>");
    YAML::Node v = volume(spec, m["name"].as<std::string>());
    return v["hostPath"] ? v["hostPath"]["path"].as<std::string>() : std::string("<not hostPath>");
  };
  EXPECT_EQ(hostPathOf(agent, flags["--cgroup"]),
            custom() ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup");
  EXPECT_EQ(hostPathOf(agent, flags["--bpffs"]), custom() ? "/run/bpffs" : "/sys/fs/bpf");
  // Sockets and state are shared with the host at the same path: the CNI plugin runs on the
  // host and dials the socket path written into the conflist.
  for (const char* f : {"--admin-socket", "--cni-socket", "--state-dir"}) {
    YAML::Node m = mountFor(agent, flags[f]);
    ASSERT_TRUE(m) << f;
    EXPECT_EQ(hostPathOf(agent, flags[f]), m["mountPath"].as<std::string>()) << f;
  }
  // Network namespaces: the host's /var/run/netns at the same path, new ones propagated in.
  YAML::Node netns = mountFor(agent, "/var/run/netns/x");
  ASSERT_TRUE(netns);
  EXPECT_EQ(netns["mountPath"].as<std::string>(), "/var/run/netns");
  EXPECT_EQ(netns["mountPropagation"].as<std::string>(), "HostToContainer");
  EXPECT_EQ(hostPathOf(agent, "/var/run/netns"), "/var/run/netns");

  // The CNI installer writes into the host's CNI dirs and points the plugin at the agent.
  YAML::Node install = container(spec, "initContainers", "install-cni");
  auto iflags = flagsOf(commandOf(install));
  EXPECT_EQ(hostPathOf(install, iflags["--bin-dir"]),
            custom() ? "/var/lib/rancher/k3s/data/current/bin" : "/opt/cni/bin");
  EXPECT_EQ(hostPathOf(install, iflags["--conf-dir"]),
            custom() ? "/var/lib/rancher/k3s/agent/etc/cni/net.d" : "/etc/cni/net.d");
  EXPECT_EQ(iflags["--socket"], flags["--cni-socket"]);
}

TEST_P(ChartTest, InitContainerInstallsTheCniPlugin) {
  Rendered r = render();
  YAML::Node spec = r.one("DaemonSet")["spec"]["template"]["spec"];
  ASSERT_TRUE(spec["initContainers"]);
  int installs = 0;
  for (const auto& c : spec["initContainers"]) {
    auto cmd = commandOf(c);
    if (cmd.size() >= 2 && cmd[0] == "meshlet-cni" && cmd[1] == "install") ++installs;
  }
  EXPECT_EQ(installs, 1);
  auto flags = flagsOf(commandOf(container(spec, "initContainers", "install-cni")));
  EXPECT_EQ(flags.count("--fail-open"), custom() ? 1u : 0u);
}

TEST_P(ChartTest, ReadinessProbeAndMetricsMatchTheAgentsFlags) {
  Rendered r = render();
  YAML::Node ds = r.one("DaemonSet");
  YAML::Node agent = container(ds["spec"]["template"]["spec"], "containers", "meshletd");
  auto flags = flagsOf(commandOf(agent));
  ASSERT_TRUE(flags.count("--readiness-addr"));
  ASSERT_TRUE(flags.count("--metrics-addr"));
  int ready_port = portOf(flags["--readiness-addr"]);
  int metrics_port = portOf(flags["--metrics-addr"]);
  EXPECT_EQ(ready_port, custom() ? 15121 : 15021);
  EXPECT_EQ(metrics_port, custom() ? 15120 : 15020);
  YAML::Node probe = agent["readinessProbe"]["httpGet"];
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe["path"].as<std::string>(), "/healthz/ready");
  EXPECT_EQ(probe["port"].as<int>(), ready_port);
  YAML::Node ann = ds["spec"]["template"]["metadata"]["annotations"];
  EXPECT_EQ(ann["prometheus.io/scrape"].as<std::string>(), "true");
  EXPECT_EQ(ann["prometheus.io/port"].as<std::string>(), std::to_string(metrics_port));
  EXPECT_EQ(ann["prometheus.io/path"].as<std::string>(), "/metrics");
  std::map<std::string, int> ports;
  for (const auto& p : agent["ports"]) {
    ports[p["name"].as<std::string>()] = p["containerPort"].as<int>();
  }
  EXPECT_EQ(ports["metrics"], metrics_port);
  EXPECT_EQ(ports["readiness"], ready_port);
}

TEST_P(ChartTest, RbacIsExactlyWhatTheKubernetesSourceWatches) {
  Rendered r = render();
  std::set<std::pair<std::string, std::string>> watched;  // (group, plural)
  for (const auto& res : kubeResources()) watched.insert({res.group, res.plural});
  ASSERT_FALSE(watched.empty());

  YAML::Node role = r.one("ClusterRole");
  std::set<std::pair<std::string, std::string>> granted;
  for (const auto& rule : role["rules"]) {
    EXPECT_FALSE(rule["resourceNames"]) << "rules are not per object";
    EXPECT_FALSE(rule["nonResourceURLs"]);
    auto verbs = strings(rule["verbs"]);
    std::sort(verbs.begin(), verbs.end());
    EXPECT_EQ(verbs, (std::vector<std::string>{"get", "list", "watch"})) << YAML::Dump(rule);
    for (const auto& g : strings(rule["apiGroups"])) {
      for (const auto& res : strings(rule["resources"])) {
        EXPECT_NE(g, "*");
        EXPECT_NE(res, "*");
        EXPECT_TRUE(granted.insert({g, res}).second) << "granted twice: " << g << "/" << res;
      }
    }
  }
  for (const auto& w : watched) {
    EXPECT_TRUE(granted.count(w)) << "the source watches " << w.second << "." << w.first
                                  << " but the ClusterRole does not grant it";
  }
  for (const auto& g : granted) {
    EXPECT_TRUE(watched.count(g)) << "the ClusterRole grants " << g.second << "." << g.first
                                  << " which the source does not watch";
  }
  // Bound to the agent's ServiceAccount, and that is the one the DaemonSet uses.
  YAML::Node binding = r.one("ClusterRoleBinding");
  YAML::Node sa = r.one("ServiceAccount");
  std::string sa_name = sa["metadata"]["name"].as<std::string>();
  EXPECT_EQ(sa_name, custom() ? "meshlet-agent" : "meshlet");
  EXPECT_EQ(binding["roleRef"]["kind"].as<std::string>(), "ClusterRole");
  EXPECT_EQ(binding["roleRef"]["name"].as<std::string>(),
            role["metadata"]["name"].as<std::string>());
  ASSERT_EQ(binding["subjects"].size(), 1u);
  EXPECT_EQ(binding["subjects"][0]["kind"].as<std::string>(), "ServiceAccount");
  EXPECT_EQ(binding["subjects"][0]["name"].as<std::string>(), sa_name);
  EXPECT_EQ(binding["subjects"][0]["namespace"].as<std::string>(), "meshlet-system");
  EXPECT_EQ(r.one("DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"].as<std::string>(),
            sa_name);
  // No other role outside the uninstall hook; the hook's may only read its own DaemonSet.
  EXPECT_TRUE(r.all("Role", false).empty());
  EXPECT_TRUE(r.all("RoleBinding", false).empty());
  for (const auto& hook_role : r.all("Role", true)) {
    for (const auto& rule : hook_role["rules"]) {
      EXPECT_EQ(strings(rule["apiGroups"]), std::vector<std::string>{"apps"});
      EXPECT_EQ(strings(rule["resources"]), std::vector<std::string>{"daemonsets"});
      EXPECT_EQ(strings(rule["verbs"]), (std::vector<std::string>{"get", "list", "watch"}));
    }
  }
}

TEST_P(ChartTest, CapabilitiesOrPrivilegedAndMountPropagation) {
  Rendered r = render();
  YAML::Node spec = r.one("DaemonSet")["spec"]["template"]["spec"];
  YAML::Node sc = container(spec, "containers", "meshletd")["securityContext"];
  if (custom()) {
    EXPECT_TRUE(sc["privileged"].as<bool>());
  } else {
    EXPECT_FALSE(sc["privileged"].as<bool>());
    EXPECT_EQ(strings(sc["capabilities"]["drop"]), std::vector<std::string>{"ALL"});
    EXPECT_EQ(strings(sc["capabilities"]["add"]),
              (std::vector<std::string>{"BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE",
                                        "SYS_PTRACE"}));
  }
  // The API server accepts Bidirectional propagation for privileged containers only.
  std::vector<YAML::Node> daemonsets = r.all("DaemonSet", false);
  for (const auto& d : r.all("DaemonSet", true)) daemonsets.push_back(d);
  for (const auto& ds : daemonsets) {
    for (const auto& c : containersOf(ds["spec"]["template"]["spec"])) {
      bool privileged = c["securityContext"]["privileged"].as<bool>(false);
      for (const auto& m : c["volumeMounts"]) {
        if (m["mountPropagation"].as<std::string>("") == "Bidirectional") {
          EXPECT_TRUE(privileged) << c["name"] << " mounts " << m["name"]
                                  << " Bidirectional without being privileged";
        }
      }
    }
  }
  YAML::Node bpffs = mountFor(container(spec, "containers", "meshletd"),
                              custom() ? "/run/bpffs/meshlet" : "/sys/fs/bpf/meshlet");
  ASSERT_TRUE(bpffs);
  EXPECT_EQ(bpffs["mountPropagation"].as<std::string>(),
            custom() ? "Bidirectional" : "HostToContainer");
}

TEST_P(ChartTest, CaSecretIsMountedOnlyWhenNamed) {
  Rendered r = render();
  YAML::Node spec = r.one("DaemonSet")["spec"]["template"]["spec"];
  YAML::Node agent = container(spec, "containers", "meshletd");
  auto flags = flagsOf(commandOf(agent));
  YAML::Node ca = volume(spec, "ca");
  if (!custom()) {
    EXPECT_FALSE(flags.count("--ca-dir"));
    EXPECT_FALSE(ca);
    return;
  }
  EXPECT_EQ(flags["--ca-dir"], "/etc/meshlet/ca");
  ASSERT_TRUE(ca);
  EXPECT_EQ(ca["secret"]["secretName"].as<std::string>(), "meshlet-ca");
  YAML::Node m = mountFor(agent, "/etc/meshlet/ca/ca-cert.pem");
  ASSERT_TRUE(m);
  EXPECT_EQ(m["name"].as<std::string>(), "ca");
  EXPECT_TRUE(m["readOnly"].as<bool>());
}

TEST_P(ChartTest, UninstallHookCleansEveryNode) {
  Rendered r = render();
  YAML::Node agent_spec = r.one("DaemonSet")["spec"]["template"]["spec"];
  auto agent_flags = flagsOf(commandOf(container(agent_spec, "containers", "meshletd")));
  YAML::Node ds = r.one("DaemonSet", true);
  YAML::Node job = r.one("Job", true);
  ASSERT_TRUE(ds && job);
  for (const auto& o : {ds, job}) {
    EXPECT_EQ(o["metadata"]["annotations"]["helm.sh/hook"].as<std::string>(), "pre-delete");
  }
  EXPECT_LT(std::stoi(ds["metadata"]["annotations"]["helm.sh/hook-weight"].as<std::string>()),
            std::stoi(job["metadata"]["annotations"]["helm.sh/hook-weight"].as<std::string>()));
  YAML::Node spec = ds["spec"]["template"]["spec"];
  // Same nodes as the agent.
  EXPECT_EQ(YAML::Dump(spec["tolerations"]), YAML::Dump(agent_spec["tolerations"]));
  EXPECT_EQ(YAML::Dump(spec["nodeSelector"]), YAML::Dump(agent_spec["nodeSelector"]));
  auto cni = commandOf(container(spec, "initContainers", "uninstall-cni"));
  ASSERT_GE(cni.size(), 2u);
  EXPECT_EQ(cni[0], "meshlet-cni");
  EXPECT_EQ(cni[1], "uninstall");
  auto dp = flagsOf(commandOf(container(spec, "initContainers", "uninstall-datapath")));
  EXPECT_TRUE(dp.count("--uninstall"));
  EXPECT_EQ(dp["--bpffs"], agent_flags["--bpffs"]);
  auto wait = commandOf(job["spec"]["template"]["spec"]["containers"][0]);
  std::string joined;
  for (const auto& a : wait) joined += a + " ";
  EXPECT_NE(joined.find("rollout status daemonset/" + ds["metadata"]["name"].as<std::string>()),
            std::string::npos)
      << joined;
}

TEST_P(ChartTest, FlagsAreAcceptedByTheBuiltBinaries) {
  Rendered r = render();
  std::map<std::string, std::set<std::string>> accepted;
  accepted["meshletd"] = helpFlags(run(std::string(MESHLETD_BIN) + " --help").out);
  accepted["meshlet-cni install"] =
      helpFlags(run(std::string(MESHLET_CNI_BIN) + " install --help").out);
  accepted["meshlet-cni uninstall"] =
      helpFlags(run(std::string(MESHLET_CNI_BIN) + " uninstall --help").out);
  for (const auto& [bin, set] : accepted) ASSERT_GT(set.size(), 1u) << bin << " --help";

  std::vector<YAML::Node> daemonsets = r.all("DaemonSet", false);
  for (const auto& d : r.all("DaemonSet", true)) daemonsets.push_back(d);
  std::set<std::string> missing;
  int checked = 0;
  for (const auto& ds : daemonsets) {
    for (const auto& c : containersOf(ds["spec"]["template"]["spec"])) {
      auto cmd = commandOf(c);
      ASSERT_FALSE(cmd.empty());
      std::string bin = cmd[0];
      if (bin == "meshlet-cni" && cmd.size() > 1) bin += " " + cmd[1];
      if (!accepted.count(bin)) {
        EXPECT_EQ(bin, "sleep") << "unexpected command in " << c["name"];
        continue;
      }
      for (const auto& [flag, value] : flagsOf(cmd)) {
        ++checked;
        if (!accepted[bin].count(flag)) missing.insert(bin + " " + flag);
      }
    }
  }
  EXPECT_GE(checked, 10);
  std::string list;
  for (const auto& m : missing) list += "\n  " + m;
  EXPECT_TRUE(missing.empty()) << "flags the chart passes that the built binaries do not list in "
                                  "--help:"
                               << list;
}

TEST_P(ChartTest, AgentCommandLineParses) {
  // The agent's own parser, as in a pod: in-cluster, NODE_NAME from the downward API.
  Rendered r = render();
  auto cmd = commandOf(
      container(r.one("DaemonSet")["spec"]["template"]["spec"], "containers", "meshletd"));
  std::vector<std::string> args;
  for (auto a : cmd) {
    auto p = a.find("$(NODE_NAME)");
    if (p != std::string::npos) a.replace(p, 12, "node-a");
    args.push_back(a);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  setenv("KUBERNETES_SERVICE_HOST", "198.18.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto parsed = parseAgentFlags(static_cast<int>(argv.size()), argv.data());
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->node_name, "node-a");
  EXPECT_EQ(parsed->readiness_addr, custom() ? "0.0.0.0:15121" : "0.0.0.0:15021");
}

INSTANTIATE_TEST_SUITE_P(Values, ChartTest, ::testing::Values("", kCustomValues),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param.empty() ? std::string("Default") : std::string("Custom");
                         });

// ---- the image ----

// The words of `text` between `from` and the first "&&" after it.
std::vector<std::string> wordsBetween(const std::string& text, const std::string& from) {
  std::vector<std::string> out;
  auto p = text.find(from);
  if (p == std::string::npos) return out;
  p += from.size();
  auto end = text.find("&&", p);
  std::istringstream in(text.substr(p, end - p));
  std::string w;
  while (in >> w) {
    if (w != "\\") out.push_back(w);
  }
  return out;
}

// The package names in install-deps.sh's PKGS=( ... ) (comments dropped).
std::set<std::string> installDepsPackages() {
  std::string s = readFile(kSource + "/tools/install-deps.sh");
  std::set<std::string> out;
  auto p = s.find("PKGS=(");
  auto end = s.find("\n)", p);
  if (p == std::string::npos || end == std::string::npos) return out;
  std::istringstream in(s.substr(p + 6, end - p - 6));
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string w;
    while (words >> w) out.insert(w);
  }
  return out;
}

TEST(DockerfileTest, BuildStepsAreTheReadmes) {
  std::string docker = readFile(kSource + "/Dockerfile");
  std::string test_sh = readFile(kSource + "/tools/test.sh");
  std::string readme = readFile(kSource + "/README.md");
  ASSERT_FALSE(docker.empty());
  // The README builds with tools/test.sh; its configure and build lines are the image's.
  EXPECT_NE(readme.find("tools/test.sh"), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(test_sh, m, std::regex("cmake -S \\. -B build[^>\\n]*")));
  std::string configure = m.str();
  while (!configure.empty() && configure.back() == ' ') configure.pop_back();
  EXPECT_NE(docker.find("RUN " + configure + " &&"), std::string::npos)
      << "the Dockerfile does not configure like tools/test.sh: " << configure;
  const std::string build = "cmake --build build -j\"$(nproc)\"";
  EXPECT_NE(test_sh.find(build), std::string::npos) << "tools/test.sh changed its build line";
  EXPECT_NE(docker.find(build), std::string::npos)
      << "the Dockerfile does not build like tools/test.sh: " << build;
  EXPECT_NE(docker.find("FROM debian:bookworm AS build"), std::string::npos);
  EXPECT_NE(docker.find("FROM debian:bookworm-slim"), std::string::npos);
  // The build stage installs install-deps.sh's packages (a subset: no test tools).
  auto pkgs = installDepsPackages();
  ASSERT_FALSE(pkgs.empty());
  auto build_pkgs = wordsBetween(docker, "--no-install-recommends");
  ASSERT_GT(build_pkgs.size(), 10u);
  for (const auto& p : build_pkgs) {
    EXPECT_TRUE(pkgs.count(p)) << p << " is in the Dockerfile but not in install-deps.sh";
  }
  // The three binaries land in /usr/local/bin, where the chart's commands find them.
  for (const char* bin : {"build/agent/meshletd", "build/tools/meshlet/meshlet",
                          "build/cni/meshlet-cni", "/usr/local/bin/meshlet-cni"}) {
    EXPECT_NE(docker.find(bin), std::string::npos) << bin;
  }
}

TEST(DockerfileTest, RuntimeStageHasTheLibrariesTheAgentLinks) {
  if (run("command -v dpkg-query && command -v ldd").code != 0) {
    GTEST_SKIP() << "dpkg or ldd missing: not a Debian host";
  }
  std::string docker = readFile(kSource + "/Dockerfile");
  auto runtime_stage = docker.substr(docker.find("FROM debian:bookworm-slim"));
  auto words = wordsBetween(runtime_stage, "--no-install-recommends");
  std::set<std::string> runtime(words.begin(), words.end());
  // In debian:bookworm-slim already.
  for (const char* base : {"libc6", "libstdc++6", "libgcc-s1", "zlib1g"}) runtime.insert(base);
  for (const char* bin : {MESHLETD_BIN, MESHLET_CNI_BIN}) {
    Cmd libs = run(std::string("ldd ") + bin +
                   " | awk '$3 ~ /^\\// {print $3}' | xargs -r -n1 readlink -f");
    std::istringstream in(libs.out);
    std::string lib;
    while (std::getline(in, lib)) {
      Cmd owner = run("p=" + lib + "; dpkg -S \"$p\" || dpkg -S \"${p#/usr}\"");
      std::string pkg = owner.out.substr(0, owner.out.find_first_of(":\n"));
      EXPECT_TRUE(runtime.count(pkg)) << bin << " needs " << lib << " from " << pkg
                                      << ", which the runtime stage does not install";
    }
  }
}

}  // namespace
}  // namespace meshlet

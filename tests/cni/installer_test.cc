// `meshlet-cni install` / `uninstall`, run as the built binary on temp CNI dirs.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/cni/cni_test_util.h"

namespace meshlet::cni {
namespace {

using testing::ReadFileOrEmpty;
using testing::RunBinary;
using testing::RunResult;
using testing::TempDir;
using testing::WriteFile;
using Json = nlohmann::json;

// Like the conflist a kubeadm node with the reference bridge plugin has.
constexpr const char* kBridgeConflist = R"({
  "cniVersion": "1.0.0",
  "name": "cbr0",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "198.18.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {
      "type": "portmap",
      "capabilities": {"portMappings": true}
    }
  ]
}
)";

constexpr const char* kBridgeInstalled = R"(
    },
    {
      "type": "meshlet-cni",
      "socketPath": "/var/run/meshlet/cni.sock",
      "failOpen": false
    }
  ]
}
)";

// CRLF, tabs, comma-first, one-line objects, a string full of brackets and escapes, no final
// newline.
constexpr const char* kOddConflist =
    "{\"cniVersion\":\"0.4.0\",\r\n\t\"name\" : \"k8s-pod-network\",\r\n\t\"plugins\" :\t[\r\n"
    "\t\t{ \"type\": \"bridge\", \"bridge\": \"cni0\", \"note\": \"tricky \\\"]}, [{\\\" \\\\ "
    "\\u00e9\", \"ipam\": {\"type\": \"host-local\", \"ranges\": [[{\"subnet\":\"198.18.1.0/24\""
    "}]]} }\r\n\t\t, { \"type\": \"portmap\", \"capabilities\": { \"portMappings\": true }, "
    "\"snat\": true }\r\n\t],\r\n\t\"x-trailer\": [\"plugins\", {\"type\": \"meshlet-cni\"}]\r\n}";

class InstallerTest : public ::testing::Test {
 protected:
  InstallerTest() : dir_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    bin_ = dir_ / "bin";
    conf_ = dir_ / "net.d";
    std::filesystem::create_directories(bin_);
    std::filesystem::create_directories(conf_);
  }

  RunResult Cli(const std::string& command, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {command, "--bin-dir", bin_, "--conf-dir", conf_};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = RunBinary(CNI_PLUGIN_BIN, args, {}, "");
    EXPECT_TRUE(r.exited) << r.err;
    return r;
  }

  std::string Conflist(const std::string& name = "10-bridge.conflist") {
    return ReadFileOrEmpty(conf_ + "/" + name);
  }

  TempDir dir_;
  std::string bin_;
  std::string conf_;
};

TEST_F(InstallerTest, InstallIsIdempotentAndUninstallRestoresTheOriginalBytes) {
  WriteFile(conf_ + "/10-bridge.conflist", kBridgeConflist);
  RunResult r = Cli("install");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string installed = Conflist();
  std::string original = kBridgeConflist;
  size_t cut = original.rfind("\n    }");  // end of the portmap object
  EXPECT_EQ(installed, original.substr(0, cut) + kBridgeInstalled);

  Json conf = Json::parse(installed);
  ASSERT_EQ(conf["plugins"].size(), 3u);
  EXPECT_EQ(conf["plugins"][0], Json::parse(kBridgeConflist)["plugins"][0]);
  EXPECT_EQ(conf["plugins"][2]["type"], "meshlet-cni");

  std::string binary = bin_ + "/meshlet-cni";
  struct stat st {};
  ASSERT_EQ(stat(binary.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(ReadFileOrEmpty(binary), ReadFileOrEmpty(CNI_PLUGIN_BIN));
  RunResult version = RunBinary(binary, {}, {{"CNI_COMMAND", "VERSION"}}, "");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("supportedVersions"), std::string::npos);

  r = Cli("install");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Conflist(), installed) << "a second install changed the file";

  r = Cli("uninstall");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Conflist(), kBridgeConflist);
  EXPECT_FALSE(std::filesystem::exists(binary));

  r = Cli("uninstall");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Conflist(), kBridgeConflist);
  EXPECT_EQ(std::filesystem::directory_iterator(conf_)->path().filename(), "10-bridge.conflist");
}

TEST_F(InstallerTest, UnusualFormattingIsKept) {
  WriteFile(conf_ + "/05-odd.conflist", kOddConflist);
  ASSERT_EQ(Cli("install").exit_code, 0);
  std::string installed = Conflist("05-odd.conflist");
  std::string original = kOddConflist;
  std::string portmap_end = "\"snat\": true }";
  size_t at = original.find(portmap_end) + portmap_end.size();
  std::string expected = original.substr(0, at) +
                         "\r\n\t\t, { \"type\": \"meshlet-cni\", \"socketPath\": "
                         "\"/var/run/meshlet/cni.sock\", \"failOpen\": false }" +
                         original.substr(at);
  EXPECT_EQ(installed, expected);
  Json conf = Json::parse(installed);
  EXPECT_EQ(conf["plugins"].back()["type"], "meshlet-cni");
  EXPECT_EQ(conf["plugins"][0]["note"], "tricky \"]}, [{\" \\ \u00e9");

  ASSERT_EQ(Cli("install").exit_code, 0);
  EXPECT_EQ(Conflist("05-odd.conflist"), installed);
  ASSERT_EQ(Cli("uninstall").exit_code, 0);
  EXPECT_EQ(Conflist("05-odd.conflist"), kOddConflist);
}

TEST_F(InstallerTest, ChangedFlagsRewriteOnlyTheMeshletEntry) {
  WriteFile(conf_ + "/10-bridge.conflist", kBridgeConflist);
  ASSERT_EQ(Cli("install").exit_code, 0);
  std::string first = Conflist();
  RunResult r = Cli("install", {"--socket", "/run/meshlet/other.sock", "--fail-open"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string second = Conflist();
  size_t entry = first.find("{\n      \"type\": \"meshlet-cni\"");
  ASSERT_NE(entry, std::string::npos);
  EXPECT_EQ(second.substr(0, entry), first.substr(0, entry));
  Json meshlet = Json::parse(second)["plugins"][2];
  EXPECT_EQ(meshlet["socketPath"], "/run/meshlet/other.sock");
  EXPECT_EQ(meshlet["failOpen"], true);
  ASSERT_EQ(Cli("install", {"--socket", "/run/meshlet/other.sock", "--fail-open"}).exit_code, 0);
  EXPECT_EQ(Conflist(), second);
  ASSERT_EQ(Cli("uninstall").exit_code, 0);
  EXPECT_EQ(Conflist(), kBridgeConflist);
}

TEST_F(InstallerTest, EditsTheFirstConflistOnlyAndKeepsItsMode) {
  WriteFile(conf_ + "/20-second.conflist", kBridgeConflist);
  WriteFile(conf_ + "/10-bridge.conflist", kBridgeConflist);
  WriteFile(conf_ + "/99-loopback.conf", R"({"cniVersion":"1.0.0","type":"loopback"})");
  chmod((conf_ + "/10-bridge.conflist").c_str(), 0600);
  ASSERT_EQ(Cli("install").exit_code, 0);
  EXPECT_NE(Conflist(), kBridgeConflist);
  EXPECT_EQ(Conflist("20-second.conflist"), kBridgeConflist);
  struct stat st {};
  ASSERT_EQ(stat((conf_ + "/10-bridge.conflist").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(conf_)) files += e.exists();
  EXPECT_EQ(files, 3u) << "a temp file was left behind";
  ASSERT_EQ(Cli("uninstall").exit_code, 0);
  EXPECT_EQ(Conflist(), kBridgeConflist);
}

TEST_F(InstallerTest, NoConflistIsAClearError) {
  RunResult r = Cli("install");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no *.conflist"), std::string::npos) << r.err;
  WriteFile(conf_ + "/10-bridge.conf", R"({"cniVersion":"0.3.1","type":"bridge"})");
  r = Cli("install");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs a .conflist"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(bin_ + "/meshlet-cni"));
  EXPECT_EQ(ReadFileOrEmpty(conf_ + "/10-bridge.conf"),
            R"({"cniVersion":"0.3.1","type":"bridge"})");
  r = Cli("uninstall");  // nothing was installed: nothing to do, success
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(InstallerTest, BrokenConflistIsAnErrorAndNothingChanges) {
  const std::string broken = R"({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"},)";
  WriteFile(conf_ + "/10-bridge.conflist", broken);
  RunResult r = Cli("install");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(Conflist(), broken);
  EXPECT_FALSE(std::filesystem::exists(bin_ + "/meshlet-cni"));
  WriteFile(conf_ + "/10-bridge.conflist", R"({"cniVersion": "1.0.0", "type": "bridge"})");
  r = Cli("install");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("\"plugins\""), std::string::npos) << r.err;
}

TEST_F(InstallerTest, MissingBinDirIsAnError) {
  WriteFile(conf_ + "/10-bridge.conflist", kBridgeConflist);
  std::filesystem::remove(bin_);
  RunResult r = Cli("install");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bin dir"), std::string::npos) << r.err;
  EXPECT_EQ(Conflist(), kBridgeConflist);
}

}  // namespace
}  // namespace meshlet::cni

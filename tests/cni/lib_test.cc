// Unit tests of meshlet_cni_lib: the JSON span scanner, conflist text edits, parsing, framing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cni/agent_client.h"
#include "cni/config.h"
#include "cni/conflist_edit.h"
#include "cni/json_scan.h"

namespace meshlet::cni {
namespace {

std::string At(std::string_view text, Span span) {
  return std::string(text.substr(span.begin, span.size()));
}

TEST(JsonScanTest, FindsSpansAcrossEscapesAndNesting) {
  const std::string text =
      R"( { "a\"]}" : "x\\\"}]", "n": [1, {"b": "}"}, [ ]], "k": -1.5e3, "k": null } )";
  Span doc = DocumentValue(text);
  std::vector<Member> members = ObjectMembers(text, doc);
  ASSERT_EQ(members.size(), 4u);
  EXPECT_EQ(members[0].key, "a\"]}");
  EXPECT_EQ(At(text, members[0].value), R"("x\\\"}]")");
  EXPECT_EQ(At(text, members[1].value), R"([1, {"b": "}"}, [ ]])");
  std::vector<Span> elements = ArrayElements(text, members[1].value);
  ASSERT_EQ(elements.size(), 3u);
  EXPECT_EQ(At(text, elements[1]), R"({"b": "}"})");
  EXPECT_EQ(At(text, elements[2]), "[ ]");
  FoundMember k = FindMember(text, doc, "k");
  ASSERT_TRUE(k.found);
  EXPECT_EQ(At(text, k.value), "null");  // the last one, as parsers keep it
  EXPECT_FALSE(FindMember(text, doc, "missing").found);
  EXPECT_THROW(DocumentValue(R"({"a": "unterminated})"), ScanError);
  EXPECT_THROW(DocumentValue("[1, 2] 3"), ScanError);
}

TEST(ConflistEditTest, CompactSingleElementList) {
  const std::string text = R"({"cniVersion":"1.0.0","name":"p","plugins":[{"type":"ptp"}]})";
  std::string added = AddPluginEntry(text, {});
  EXPECT_EQ(
      added,
      R"({"cniVersion":"1.0.0","name":"p","plugins":[{"type":"ptp"}, )"
      R"({"type":"meshlet-cni","socketPath":"/var/run/meshlet/cni.sock","failOpen":false}]})");
  EXPECT_TRUE(HasPluginEntry(added));
  EXPECT_EQ(AddPluginEntry(added, {}), added);
  EXPECT_EQ(RemovePluginEntry(added), text);
  EXPECT_FALSE(HasPluginEntry(text));
}

TEST(ConflistEditTest, TabIndentedMultilineObjects) {
  const std::string text =
      "{\n\t\"plugins\": [\n\t\t{\n\t\t\t\"type\": \"bridge\"\n\t\t}\n\t]\n}\n";
  std::string added = AddPluginEntry(text, {"/run/m.sock", true});
  EXPECT_EQ(added,
            "{\n\t\"plugins\": [\n\t\t{\n\t\t\t\"type\": \"bridge\"\n\t\t},\n\t\t{\n"
            "\t\t\t\"type\": \"meshlet-cni\",\n\t\t\t\"socketPath\": \"/run/m.sock\",\n"
            "\t\t\t\"failOpen\": true\n\t\t}\n\t]\n}\n");
  EXPECT_EQ(RemovePluginEntry(added), text);
}

TEST(ConflistEditTest, RemovesAnEntryThatIsNotLastOrIsFirst) {
  EXPECT_EQ(RemovePluginEntry(R"({"plugins": [{"type": "a"}, {"type": "meshlet-cni"}, 1]})"),
            R"({"plugins": [{"type": "a"}, 1]})");
  EXPECT_EQ(RemovePluginEntry(R"({"plugins": [ {"type": "meshlet-cni"},  {"type": "a"} ]})"),
            R"({"plugins": [ {"type": "a"} ]})");
  EXPECT_EQ(RemovePluginEntry(R"({"plugins": [{"type": "meshlet-cni"}]})"), R"({"plugins": []})");
  EXPECT_EQ(RemovePluginEntry("not json"), "not json");
}

TEST(ConflistEditTest, UpdatingKeepsTheEntrysOtherKeys) {
  const std::string text =
      R"({"plugins": [{"type": "a"}, {"type": "meshlet-cni", "timeoutMs": 500}]})";
  EXPECT_EQ(AddPluginEntry(text, {}), text);  // defaults match an entry without the keys
  std::string updated = AddPluginEntry(text, {"/x.sock", false});
  EXPECT_EQ(updated, R"({"plugins": [{"type": "a"}, {"type": "meshlet-cni", "timeoutMs": 500, )"
                     R"("socketPath": "/x.sock", "failOpen": false}]})");
}

TEST(ConflistEditTest, RejectsWhatIsNotAConflist) {
  EXPECT_THROW(AddPluginEntry("{", {}), std::runtime_error);
  EXPECT_THROW(AddPluginEntry(R"({"type": "bridge"})", {}), std::runtime_error);
  EXPECT_THROW(AddPluginEntry(R"({"plugins": []})", {}), std::runtime_error);
  EXPECT_THROW(AddPluginEntry(R"({"plugins": {}})", {}), std::runtime_error);
}

TEST(ConfigTest, CniArgs) {
  auto args = ParseCniArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u=1;");
  K8sPod pod = K8sPodFromArgs(args);
  EXPECT_TRUE(pod.IsPod());
  EXPECT_EQ(pod.ns, "ns");
  EXPECT_EQ(pod.name, "p");
  EXPECT_EQ(pod.uid, "u=1");
  EXPECT_FALSE(K8sPodFromArgs(ParseCniArgs("K8S_POD_NAME=p")).IsPod());
  EXPECT_THROW(ParseCniArgs("a=1;junk"), CniError);
  EXPECT_EQ(ParseCniArgs("a=1;junk;=x", /*lenient=*/true).size(), 1u);
}

TEST(ConfigTest, VersionsAndErrors) {
  EXPECT_TRUE(VersionLess("0.3.1", "0.4.0"));
  EXPECT_TRUE(VersionLess("0.4.0", "1.0.0"));
  EXPECT_FALSE(VersionLess("1.0.0", "0.4.0"));
  EXPECT_FALSE(VersionLess("0.4.0", "0.4.0"));
  EXPECT_EQ(VersionForErrors(R"({"cniVersion":"0.3.1"})"), "0.3.1");
  EXPECT_EQ(VersionForErrors(R"({"cniVersion":"0.1.0"})"), "1.0.0");
  EXPECT_EQ(VersionForErrors("garbage"), "1.0.0");
  EXPECT_EQ(ErrorJson("0.4.0", CniError(7, "bad", "why")),
            R"({"cniVersion":"0.4.0","code":7,"msg":"bad","details":"why"})");
}

TEST(ConfigTest, PrevResultIpsDropThePrefixLength) {
  auto prev = nlohmann::json::parse(
      R"({"ips":[{"address":"198.18.0.9/24"},{"version":"6","address":"2001:db8::9/64"}]})");
  EXPECT_EQ(PrevResultIps(prev), (std::vector<std::string>{"198.18.0.9", "2001:db8::9"}));
  try {
    PrevResultIps(nlohmann::json::parse(R"({"interfaces":[]})"));
    FAIL() << "no throw";
  } catch (const CniError& e) {
    EXPECT_EQ(e.code(), 7);
  }
}

TEST(ConfigTest, PrevResultTextIsTheExactBytes) {
  const std::string prev = "{ \"ips\" : [ {\"address\":\"198.18.0.9/24\"} ],\"z\":1.50 }";
  NetConf conf = ParseNetConf(R"({"cniVersion":"0.4.0","prevResult":)" + prev + "}");
  EXPECT_TRUE(conf.has_prev_result);
  EXPECT_EQ(conf.prev_result_text, prev);
  EXPECT_EQ(conf.socket_path, "/var/run/meshlet/cni.sock");
  EXPECT_EQ(conf.timeout_ms, 10000);
  EXPECT_FALSE(conf.fail_open);
}

TEST(FramingTest, BigEndianLengthPrefix) {
  std::string frame = Frame(std::string(258, 'x'));
  ASSERT_EQ(frame.size(), 262u);
  EXPECT_EQ(frame.substr(0, 4), std::string("\0\0\x01\x02", 4));
  EXPECT_EQ(FrameLength(reinterpret_cast<const unsigned char*>(frame.data())), 258u);
}

}  // namespace
}  // namespace meshlet::cni

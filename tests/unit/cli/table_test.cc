#include "agent/common/table.h"

#include <gtest/gtest.h>

namespace meshlet {
namespace {

using Json = nlohmann::ordered_json;

TEST(Table, AlignsColumnsAndUppercasesHeaders) {
  Json rows = Json::parse(R"([{"name": "a", "bytes_sent": 1, "node": "n1"},
                              {"name": "longer", "bytes_sent": 12345, "node": "node-2"}])");
  EXPECT_EQ(renderTable(rows),
            "NAME     BYTES SENT   NODE\n"
            "a        1            n1\n"
            "longer   12345        node-2\n");
}

TEST(Table, KeepsKeyOrderOfFirstObject) {
  // ordered_json keeps insertion order; "z" must come before "a".
  Json rows = Json::parse(R"([{"z": 1, "a": 2}])");
  EXPECT_EQ(renderTable(rows), "Z   A\n1   2\n");
}

TEST(Table, BooleansAsYesNo) {
  Json rows = Json::parse(R"([{"ready": true, "local": false}])");
  EXPECT_EQ(renderTable(rows), "READY   LOCAL\nyes     no\n");
}

TEST(Table, EmptyArrayLikeKubectl) {
  EXPECT_EQ(renderTable(Json::array()), "No resources found.\n");
}

TEST(Table, MissingExtraNullAndEmptyCells) {
  Json rows = Json::parse(R"([{"a": "x", "b": ""}, {"a": null, "c": 7}])");
  EXPECT_EQ(renderTable(rows),
            "A   B   C\n"
            "x   -   -\n"
            "-   -   7\n");
}

TEST(Table, NoTrailingWhitespace) {
  Json rows = Json::parse(R"([{"long_column_name": "x", "last": ""}])");
  std::string out = renderTable(rows);
  EXPECT_EQ(out, "LONG COLUMN NAME   LAST\nx                  -\n");
  EXPECT_EQ(out.find(" \n"), std::string::npos);
}

TEST(Table, CellText) {
  EXPECT_EQ(cellText(Json(1.5)), "1.5");
  EXPECT_EQ(cellText(Json(2.0)), "2");
  EXPECT_EQ(cellText(Json(0.123456)), "0.12");
  EXPECT_EQ(cellText(Json(-3)), "-3");
  EXPECT_EQ(cellText(Json(18446744073709551615ull)), "18446744073709551615");
  EXPECT_EQ(cellText(Json::parse(R"(["a","b"])")), "a,b");
  EXPECT_EQ(cellText(Json::parse(R"({"k":1})")), R"({"k":1})");
  EXPECT_EQ(cellText(Json()), "-");
}

TEST(Table, HeaderAndLabel) {
  EXPECT_EQ(tableHeader("service_address"), "SERVICE ADDRESS");
  EXPECT_EQ(fieldLabel("last_sync_ms"), "Last sync ms");
}

TEST(Table, NonObjectElementsAsValueColumn) {
  EXPECT_EQ(renderTable(Json::parse("[1, true]")), "VALUE\n1\nyes\n");
}

TEST(TableObject, KeyValuesWithNestedSubTable) {
  Json status = Json::parse(R"({"node_name": "node-a", "config_ok": true, "last_error": "",
      "last_sync_ms": 1.25, "maps": [{"name": "services", "entries": 3, "capacity": 65536},
                                      {"name": "be", "entries": 10, "capacity": 1024}]})");
  EXPECT_EQ(renderObject(status),
            "Node name:      node-a\n"
            "Config ok:      yes\n"
            "Last error:     -\n"
            "Last sync ms:   1.25\n"
            "Maps:\n"
            "  NAME       ENTRIES   CAPACITY\n"
            "  services   3         65536\n"
            "  be         10        1024\n");
}

TEST(TableObject, EmptyNestedArrayIsInline) {
  Json status = Json::parse(R"({"maps": []})");
  EXPECT_EQ(renderObject(status), "Maps:   -\n");
}

}  // namespace
}  // namespace meshlet

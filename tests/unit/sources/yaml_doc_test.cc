// YamlDocument / YamlStream: the libyaml-built tree the sources read YAML and JSON with.
#include "agent/sources/yaml_doc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace meshlet {
namespace {

// Parses `text` into `doc`, failing the test on an error.
void parseOk(YamlDocument& doc, const std::string& text) {
  YamlParseError e;
  ASSERT_TRUE(doc.parse(text, e)) << e.format() << "\n" << text;
}

YamlParseError parseError(const std::string& text) {
  YamlDocument doc;
  YamlParseError e;
  EXPECT_FALSE(doc.parse(text, e)) << "accepted:\n" << text;
  EXPECT_FALSE(doc.root().exists());  // nothing is left of a failed parse
  return e;
}

TEST(YamlDoc, ScalarsAndTheirStyles) {
  YamlDocument doc;
  parseOk(doc,
          "plain: 80\n"
          "single: '80'\n"
          "double: \"80\"\n"
          "literal: |\n  two\n  lines\n"
          "folded: >\n  one\n  line\n"
          "str: !!str 80\n"
          "bang: ! 80\n"
          "int: !!int 80\n"
          "custom: !foo 80\n"
          "quoted_int: !!int \"80\"\n"
          "escapes: \"a\\tb\\u00e9\"\n");
  YamlNode r = doc.root();
  ASSERT_TRUE(r.isMap());
  EXPECT_EQ(r.size(), 11u);
  EXPECT_TRUE(r.get("plain").isScalar());
  EXPECT_EQ(r.get("plain").scalar(), "80");
  EXPECT_FALSE(r.get("plain").isQuoted());
  for (const char* key : {"single", "double", "str", "bang"}) {
    EXPECT_EQ(r.get(key).scalar(), "80") << key;
    EXPECT_TRUE(r.get(key).isQuoted()) << key;
  }
  EXPECT_EQ(r.get("literal").scalar(), "two\nlines\n");
  EXPECT_TRUE(r.get("literal").isQuoted());
  EXPECT_EQ(r.get("folded").scalar(), "one line\n");
  EXPECT_TRUE(r.get("folded").isQuoted());
  // An explicit tag other than !!str or ! makes no string of it (as yaml-cpp read it).
  for (const char* key : {"int", "custom", "quoted_int"}) {
    EXPECT_EQ(r.get(key).scalar(), "80") << key;
    EXPECT_FALSE(r.get(key).isQuoted()) << key;
  }
  EXPECT_EQ(r.get("escapes").scalar(), "a\tb\xc3\xa9");
}

TEST(YamlDoc, NullsAreAbsentButExist) {
  YamlDocument doc;
  parseOk(doc,
          "tilde: ~\nword: null\ncap: Null\nupper: NULL\nempty:\ntagged: !!null ''\n"
          "quoted: 'null'\nstr: !!str null\nquoted_tilde: \"~\"\nnot: nULL\n");
  YamlNode r = doc.root();
  for (const char* key : {"tilde", "word", "cap", "upper", "empty", "tagged"}) {
    YamlNode n = r.get(key);
    EXPECT_TRUE(n.exists()) << key;
    EXPECT_TRUE(n.isNull()) << key;
    EXPECT_FALSE(n.present()) << key;
    EXPECT_FALSE(n.isScalar()) << key;
    EXPECT_EQ(n.scalar(), "") << key;
  }
  EXPECT_EQ(r.get("quoted").scalar(), "null");
  EXPECT_TRUE(r.get("quoted").present());
  EXPECT_EQ(r.get("str").scalar(), "null");
  EXPECT_TRUE(r.get("str").isQuoted());
  EXPECT_EQ(r.get("quoted_tilde").scalar(), "~");
  EXPECT_EQ(r.get("not").scalar(), "nULL");
  // A missing key is absent too, and does not exist.
  EXPECT_FALSE(r.get("nope").exists());
  EXPECT_TRUE(r.get("nope").isNull());
  // Null map keys and values in flow style.
  YamlDocument flow;
  parseOk(flow, "{a: , ~: b}");
  EXPECT_TRUE(flow.root().get("a").isNull());
  EXPECT_FALSE(flow.root().keyAt(1).isScalar());
}

TEST(YamlDoc, EmptyTextsHaveNoRootAndEmptyDocumentsANullOne) {
  for (const char* text : {"", "\n", "# only a comment\n"}) {
    YamlDocument doc;
    parseOk(doc, text);
    EXPECT_FALSE(doc.root().exists()) << text;
    EXPECT_EQ(doc.nodeCount(), 0u);
  }
  for (const char* text : {"---\n", "---\n...\n", "~\n"}) {
    YamlDocument doc;
    parseOk(doc, text);
    EXPECT_TRUE(doc.root().exists()) << text;
    EXPECT_TRUE(doc.root().isNull()) << text;
  }
}

TEST(YamlDoc, NestedMapsAndSequences) {
  YamlDocument doc;
  parseOk(doc,
          "spec:\n"
          "  ports:\n"
          "  - {name: http, port: 80}\n"
          "  - name: grpc\n"
          "    port: 9090\n"
          "  selector: {app: web}\n"
          "  empty_list: []\n"
          "  empty_map: {}\n");
  YamlNode spec = doc.root().get("spec");
  ASSERT_TRUE(spec.isMap());
  YamlNode ports = spec.get("ports");
  ASSERT_TRUE(ports.isSeq());
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports.at(0).get("name").scalar(), "http");
  EXPECT_EQ(ports.at(1).get("port").scalar(), "9090");
  EXPECT_FALSE(ports.at(2).exists());
  EXPECT_TRUE(spec.get("empty_list").isSeq());
  EXPECT_EQ(spec.get("empty_list").size(), 0u);
  EXPECT_TRUE(spec.get("empty_map").isMap());
  EXPECT_EQ(spec.get("empty_map").size(), 0u);
  // Asking the wrong kind of node finds nothing rather than failing.
  EXPECT_FALSE(ports.get("name").exists());
  EXPECT_FALSE(spec.at(0).exists());
  EXPECT_FALSE(ports.at(0).get("port").at(0).exists());
  EXPECT_FALSE(YamlNode().get("x").at(3).get("y").exists());
  EXPECT_EQ(YamlNode().size(), 0u);

  std::vector<std::string> keys;
  for (auto [key, value] : spec.entries()) {
    keys.emplace_back(key.scalar());
    EXPECT_TRUE(value.exists());
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"ports", "selector", "empty_list", "empty_map"}));
  EXPECT_EQ(spec.keyAt(1).scalar(), "selector");
  EXPECT_EQ(spec.valueAt(1).get("app").scalar(), "web");
  EXPECT_FALSE(spec.keyAt(4).exists());
  EXPECT_EQ(ports.entries().begin(), ports.entries().end());  // not a map: nothing
}

TEST(YamlDoc, DuplicateKeysAreKeptInOrder) {
  YamlDocument doc;
  parseOk(doc, "a: 1\nb: 2\na: 3\n");
  YamlNode r = doc.root();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r.keyAt(0).scalar(), "a");
  EXPECT_EQ(r.keyAt(2).scalar(), "a");
  EXPECT_EQ(r.valueAt(2).scalar(), "3");
  EXPECT_EQ(r.get("a").scalar(), "1");  // lookups find the first
  // Quoted and plain keys with the same text are the same key.
  YamlDocument q;
  parseOk(q, "'a': 1\na: 2\n");
  EXPECT_EQ(q.root().keyAt(0).scalar(), q.root().keyAt(1).scalar());
}

TEST(YamlDoc, NonScalarKeysAreNodesToo) {
  YamlDocument doc;
  parseOk(doc, "? [a, b]\n: 1\n? {c: d}\n: 2\n");
  YamlNode r = doc.root();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r.keyAt(0).isSeq());
  EXPECT_TRUE(r.keyAt(1).isMap());
  EXPECT_FALSE(r.get("a").exists());
}

TEST(YamlDoc, AliasesShareTheAnchoredNode) {
  YamlDocument doc;
  parseOk(doc,
          "base: &b {port: 80, name: http}\n"
          "copies: [*b, *b]\n"
          "name: &n web\n"
          "again: *n\n"
          "redefined: &n other\n"
          "latest: *n\n");
  YamlNode r = doc.root();
  YamlNode copies = r.get("copies");
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_TRUE(copies.at(0) == r.get("base"));
  EXPECT_TRUE(copies.at(1) == r.get("base"));
  EXPECT_EQ(copies.at(1).get("port").scalar(), "80");
  EXPECT_EQ(r.get("again").scalar(), "web");
  EXPECT_EQ(r.get("latest").scalar(), "other");  // the most recent definition
  // Nothing was copied: the root, base's map and the sequence, 6 keys and 6 scalars.
  EXPECT_EQ(doc.nodeCount(), 15u);
}

TEST(YamlDoc, AliasProblemsAreErrors) {
  YamlParseError e = parseError("a: *nowhere\n");
  EXPECT_EQ(e.message, "unknown anchor \"nowhere\"");
  EXPECT_EQ(e.line, 0);
  EXPECT_EQ(e.column, 3);
  // An alias to a collection from inside it would make a cycle: refused, so every walk ends.
  e = parseError("key: &a [*a]");
  EXPECT_EQ(e.format(),
            "line 1, column 10: alias *a refers to a collection that contains it "
            "(a cycle)");
  e = parseError("&m {x: {y: *m}}");
  EXPECT_NE(e.message.find("cycle"), std::string::npos);
  // Anchors do not carry over from one document to the next.
  YamlStream stream("a: &x 1\n---\nb: *x\n");
  YamlDocument doc;
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kDocument);
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kError);
  EXPECT_EQ(e.format(), "line 3, column 4: unknown anchor \"x\"");
}

TEST(YamlDoc, BillionLaughsIsRefusedNotExpanded) {
  std::string text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    text += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) text += (j ? ", " : "") + prev;
    text += "]\n";
  }
  YamlParseError e = parseError(text);
  EXPECT_NE(e.message.find("aliases expand the document to more than 1000000 nodes"),
            std::string::npos)
      << e.message;
  EXPECT_EQ(e.line, 5);  // l5 is the first to pass a million (1 111 111)
  // A few levels of it are fine, and cost one node per alias, not per expansion.
  YamlDocument doc;
  parseOk(doc, text.substr(0, text.find("l4:")));
  EXPECT_LT(doc.nodeCount(), 60u);
}

TEST(YamlDoc, NestingIsLimited) {
  const int max = YamlDocument::kMaxDepth;
  YamlDocument doc;
  parseOk(doc, std::string(max, '[') + std::string(max, ']'));
  YamlNode n = doc.root();
  for (int i = 1; i < max; ++i) n = n.at(0);
  EXPECT_TRUE(n.isSeq());
  EXPECT_EQ(n.size(), 0u);

  YamlParseError e = parseError(std::string(max + 1, '[') + std::string(max + 1, ']'));
  EXPECT_EQ(e.format(), "line 1, column 65: nesting is deeper than 64 levels");
  // Far deeper, block style and flow style: refused early, without growing with the input.
  parseError(std::string(1 << 20, '['));
  parseError(std::string(1 << 20, '{'));
  std::string block;
  for (int i = 0; i < 200; ++i) block += std::string(i, ' ') + "k:\n";
  e = parseError(block);
  EXPECT_NE(e.message.find("nesting is deeper"), std::string::npos) << e.message;
}

TEST(YamlDoc, SyntaxErrorsHaveLineAndColumn) {
  YamlParseError e = parseError("a: 1\nb: [1, 2\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 0);
  EXPECT_EQ(e.format(),
            "line 3, column 1: did not find expected ',' or ']' while parsing a flow sequence");
  e = parseError("a: b: c\n");
  EXPECT_EQ(e.format(), "line 1, column 5: mapping values are not allowed in this context");
  e = parseError("a: 1\n\t- tab\n");
  EXPECT_EQ(e.line, 1);
  // Encoding errors come as a byte offset from libyaml; placed on their line all the same.
  e = parseError("a: 1\nbb: x\xff\n");
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.column, 5);
  EXPECT_NE(e.message.find("UTF-8"), std::string::npos) << e.message;
}

TEST(YamlDoc, OneDocumentOnly) {
  YamlParseError e = parseError("a: 1\n---\nb: 2\n");
  EXPECT_EQ(e.format(), "line 2, column 1: found a second document where one was expected");
  YamlDocument doc;
  parseOk(doc, "---\na: 1\n...\n# trailing comment\n");
  EXPECT_EQ(doc.root().get("a").scalar(), "1");
}

TEST(YamlDoc, JsonAsTheApiServerSendsIt) {
  YamlDocument doc;
  parseOk(doc, R"({"kind":"ServiceList","metadata":{"resourceVersion":"42","continue":""},)"
               R"("items":[{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"ports":)"
               R"([{"port":80,"targetPort":"http"}],"clusterIP":"10.0.0.1","x":null,"ok":true,)"
               R"("esc":"a\/b\"c\\d\u00e9\n"}}]})");
  YamlNode r = doc.root();
  EXPECT_EQ(r.get("kind").scalar(), "ServiceList");
  EXPECT_TRUE(r.get("kind").isQuoted());
  EXPECT_EQ(r.get("metadata").get("continue").scalar(), "");
  EXPECT_TRUE(r.get("metadata").get("continue").present());  // "" is a string, not null
  YamlNode spec = r.get("items").at(0).get("spec");
  EXPECT_EQ(spec.get("ports").at(0).get("port").scalar(), "80");
  EXPECT_FALSE(spec.get("ports").at(0).get("port").isQuoted());
  EXPECT_TRUE(spec.get("ports").at(0).get("targetPort").isQuoted());
  EXPECT_TRUE(spec.get("x").isNull());
  EXPECT_EQ(spec.get("ok").scalar(), "true");
  EXPECT_EQ(spec.get("esc").scalar(), "a/b\"c\\d\xc3\xa9\n");
}

TEST(YamlDoc, ReparsingReplacesTheTree) {
  YamlDocument doc;
  parseOk(doc, "a: [1, 2, 3]\n");
  parseOk(doc, "b: x\n");
  EXPECT_FALSE(doc.root().get("a").exists());
  EXPECT_EQ(doc.root().get("b").scalar(), "x");
  YamlParseError e;
  EXPECT_FALSE(doc.parse("[", e));
  EXPECT_FALSE(doc.root().exists());
  EXPECT_GT(doc.memoryBytes(), 0u);  // the buffers stay for the next parse
}

TEST(YamlStream, DocumentsOneAtATime) {
  YamlStream stream("# head\na: 1\n---\n---\nb: 2\n...\n---\n[c]\n");
  YamlDocument doc;
  YamlParseError e;
  ASSERT_EQ(stream.next(doc, e), YamlStream::Next::kDocument);
  EXPECT_EQ(stream.documents(), 1);
  EXPECT_EQ(doc.root().get("a").scalar(), "1");
  ASSERT_EQ(stream.next(doc, e), YamlStream::Next::kDocument);
  EXPECT_TRUE(doc.root().isNull());  // "---" with nothing: an empty document
  ASSERT_EQ(stream.next(doc, e), YamlStream::Next::kDocument);
  EXPECT_EQ(doc.root().get("b").scalar(), "2");
  ASSERT_EQ(stream.next(doc, e), YamlStream::Next::kDocument);
  EXPECT_EQ(doc.root().at(0).scalar(), "c");
  EXPECT_EQ(stream.documents(), 4);
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kEnd);
  EXPECT_FALSE(doc.root().exists());
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kEnd);
}

TEST(YamlStream, ErrorsCountLinesInTheWholeText) {
  YamlStream stream("a: 1\n---\nb: 2\n---\nc: [\n");
  YamlDocument doc;
  YamlParseError e;
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kDocument);
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kDocument);
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kError);
  EXPECT_EQ(e.line, 5);
  EXPECT_EQ(stream.documents(), 3);
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kEnd);  // over after an error
}

// A reader that hands the text over `piece` bytes at a time.
YamlStream::Reader piecesOf(const std::string& text, size_t piece, size_t* calls = nullptr) {
  return [&text, piece, calls, at = size_t{0}](char* buf, size_t size) mutable -> long {
    if (calls) ++*calls;
    size_t n = std::min({piece, size, text.size() - at});
    std::copy_n(text.data() + at, n, buf);
    at += n;
    return static_cast<long>(n);
  };
}

TEST(YamlStream, ReadsInPiecesLikeInMemory) {
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    text += "---\nname: item-" + std::to_string(i) + "\nlist: [a, 'b', {c: d}]\n";
  }
  size_t calls = 0;
  YamlStream stream(piecesOf(text, 7, &calls));
  YamlDocument doc;
  YamlParseError e;
  int n = 0;
  while (stream.next(doc, e) == YamlStream::Next::kDocument) {
    EXPECT_EQ(doc.root().get("name").scalar(), "item-" + std::to_string(n));
    EXPECT_EQ(doc.root().get("list").at(2).get("c").scalar(), "d");
    ++n;
  }
  EXPECT_EQ(e.message, "");
  EXPECT_EQ(n, 3000);
  EXPECT_GT(calls, text.size() / 7);
}

TEST(YamlStream, ReaderErrorsArePlacedFarIntoTheText) {
  // An encoding error past several windows of reader input: still on its line and column.
  std::string text;
  int lines = 0;
  while (text.size() < 700000) {
    text += "- item number " + std::to_string(lines++) + "\n";
  }
  text += "- bad \xc3\x28 byte\n";
  YamlStream stream(piecesOf(text, 4096));
  YamlDocument doc;
  YamlParseError e;
  EXPECT_EQ(stream.next(doc, e), YamlStream::Next::kError);
  EXPECT_EQ(e.line, lines);
  EXPECT_EQ(e.column, 7);  // the octet that cannot follow \xc3
  EXPECT_NE(e.message.find("UTF-8"), std::string::npos) << e.message;
  // A failing reader ends the stream with an error.
  YamlStream failing([](char*, size_t) -> long { return -1; });
  EXPECT_EQ(failing.next(doc, e), YamlStream::Next::kError);
  EXPECT_EQ(e.message, "input error");
}

}  // namespace
}  // namespace meshlet

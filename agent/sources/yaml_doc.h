#pragma once
// A compact, immutable YAML document tree built from libyaml's parser events; what the sources
// read Kubernetes YAML, kubeconfigs and the API server's JSON with (JSON is YAML flow style).
//
// Layout: every node is 12 bytes in one vector; scalar text lives in one string arena owned by
// the document; a collection's children are a run of node indices in a second vector
// (sequence: the elements; map: key, value, key, value, ...). An alias is resolved to the
// anchored node: both places hold the same index and nothing is copied, so the tree has one
// node per scalar or collection of the text, whatever the aliases expand to. An alias can only
// name a node that is complete (libyaml's own loader would let it name an enclosing one), so
// there are no cycles: any walk ends.
//
// Nothing throws (but a failed allocation). Refused, with an error and its position: nesting
// deeper than kMaxDepth, and a collection whose aliases expand it to more than
// max(kMaxExpandedNodes, 10 x the nodes read so far) nodes ("billion laughs"), so that even a
// walk over the expanded tree, as the parsers of agent/sources make, stays proportional to the
// text.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace meshlet {

class YamlDocument;
class YamlEntryRange;

// What YamlDocument::parse reports on bad input.
struct YamlParseError {
  std::string message;  // libyaml's problem and context, or meshlet's own limit
  int line = -1;        // 0-based, in the parsed text; -1 when no position is known
  int column = -1;      // 0-based

  // "line L, column C: message" (1-based), or just the message without a position.
  std::string format() const;
};

// A cheap handle to one node: document pointer + node index. A handle that refers to no node
// ("missing": default-constructed, or the result of looking up an absent key, an index out of
// range, or a child of something that is not a collection) answers every question with "no",
// empty or zero. Valid as long as its document lives and is not parsed into again.
class YamlNode {
 public:
  YamlNode() = default;

  // Refers to a node (possibly an explicit null).
  bool exists() const { return doc_ != nullptr; }
  // Missing, or an explicit null: `~`, `null`, `Null`, `NULL`, an empty plain scalar or a
  // `!!null`-tagged one. ("null" quoted or `!!str null` is the string "null".)
  bool isNull() const;
  // Exists and is not null: what the Kubernetes API calls a set field.
  bool present() const { return exists() && !isNull(); }
  bool isScalar() const;  // a non-null scalar
  bool isSeq() const;
  bool isMap() const;

  // The text of a (non-null) scalar; empty otherwise. Points into the document.
  std::string_view scalar() const;
  // A scalar that is a string whatever its text: quoted ('80', "80"), a block scalar (|, >),
  // or tagged `!!str` or `!`. (A plain scalar with another explicit tag is not.)
  bool isQuoted() const;

  // Number of sequence elements or map entries; 0 otherwise.
  size_t size() const;
  // Element `index` of a sequence; missing when out of range or not a sequence.
  YamlNode at(size_t index) const;
  // The value of the first entry of a map whose key is a scalar with text `key` (quoted or
  // not); missing when there is none or this is not a map. Linear in the map's size.
  YamlNode get(std::string_view key) const;
  // Entry `index` of a map, in document order. Duplicate keys are all kept (for the caller to
  // refuse them: YAML forbids them, libyaml does not check).
  YamlNode keyAt(size_t index) const;
  YamlNode valueAt(size_t index) const;

  // Iteration over a map's entries, in document order; empty for anything else:
  //   for (auto [key, value] : node.entries()) ...
  YamlEntryRange entries() const;

  // Same document and node (an alias and its anchor are the same node).
  bool operator==(const YamlNode& o) const { return doc_ == o.doc_ && index_ == o.index_; }

 private:
  friend class YamlDocument;
  friend class YamlEntryIterator;
  YamlNode(const YamlDocument* doc, uint32_t index) : doc_(doc), index_(index) {}

  const YamlDocument* doc_ = nullptr;
  uint32_t index_ = 0;
};

struct YamlEntry {
  YamlNode key;
  YamlNode value;
};

class YamlEntryIterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = YamlEntry;
  using difference_type = std::ptrdiff_t;
  using pointer = void;
  using reference = YamlEntry;

  YamlEntryIterator() = default;
  YamlEntry operator*() const { return {YamlNode(doc_, at_[0]), YamlNode(doc_, at_[1])}; }
  YamlEntryIterator& operator++() {
    at_ += 2;
    return *this;
  }
  YamlEntryIterator operator++(int) {
    YamlEntryIterator old = *this;
    at_ += 2;
    return old;
  }
  bool operator==(const YamlEntryIterator& o) const { return at_ == o.at_; }
  bool operator!=(const YamlEntryIterator& o) const { return at_ != o.at_; }

 private:
  friend class YamlNode;
  YamlEntryIterator(const YamlDocument* doc, const uint32_t* at) : doc_(doc), at_(at) {}

  const YamlDocument* doc_ = nullptr;
  const uint32_t* at_ = nullptr;  // the key's index; the value's follows
};

class YamlEntryRange {
 public:
  YamlEntryRange() = default;
  YamlEntryRange(YamlEntryIterator b, YamlEntryIterator e) : b_(b), e_(e) {}
  YamlEntryIterator begin() const { return b_; }
  YamlEntryIterator end() const { return e_; }

 private:
  YamlEntryIterator b_, e_;
};

// One parsed YAML document. Neither copyable nor movable (handles point at it); parse() may be
// called again to reuse it, which invalidates the handles taken before.
class YamlDocument {
 public:
  static constexpr int kMaxDepth = 64;
  static constexpr uint64_t kMaxExpandedNodes = 1000000;

  YamlDocument() = default;
  YamlDocument(const YamlDocument&) = delete;
  YamlDocument& operator=(const YamlDocument&) = delete;

  // Parses `text`, which holds at most one YAML document (JSON included). Text with no
  // document (empty, only comments) gives a missing root. On failure returns false, fills
  // `error` and leaves the document empty. (A stream of several documents: YamlStream.)
  bool parse(std::string_view text, YamlParseError& error);

  // The root node; missing when the text held no document.
  YamlNode root() const { return nodes_.empty() ? YamlNode() : YamlNode(this, root_); }
  size_t nodeCount() const { return nodes_.size(); }
  // Bytes held by the tree (nodes, child lists and scalar text), for tests and measurements.
  size_t memoryBytes() const;

 private:
  friend class YamlNode;
  friend class YamlStream;
  class Builder;  // turns libyaml events into the tree (yaml_doc.cc)

  enum class Kind : uint8_t { kNull, kScalar, kSeq, kMap };
  static constexpr uint8_t kQuoted = 1;

  struct Node {
    uint32_t begin = 0;  // scalar: offset in arena_; collection: first index in children_
    uint32_t size = 0;   // scalar: text length; sequence: elements; map: entries
    Kind kind = Kind::kNull;
    uint8_t flags = 0;
  };

  void clear();
  const Node& node(uint32_t index) const { return nodes_[index]; }

  std::string arena_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> children_;
  uint32_t root_ = 0;
  // Only while parsing (kept to reuse their capacity): the children of open collections, and
  // each node's size with aliases expanded.
  std::vector<uint32_t> scratch_;
  std::vector<uint64_t> weight_;
};

// The documents of a YAML stream ("---" separated), parsed one at a time with one libyaml
// parser: only the current document's tree is in memory, whatever the length of the text.
class YamlStream {
 public:
  enum class Next { kDocument, kEnd, kError };
  // Fills `buf` with up to `size` bytes of the text; returns how many, 0 at its end, -1 on a
  // failure (the stream then ends with the error "input error": the reader knows better).
  using Reader = std::function<long(char* buf, size_t size)>;

  // `text` must outlive the stream.
  explicit YamlStream(std::string_view text);
  // The text in pieces (a file read as it is parsed: the whole text is never in memory).
  explicit YamlStream(Reader read);
  ~YamlStream();
  YamlStream(const YamlStream&) = delete;
  YamlStream& operator=(const YamlStream&) = delete;

  // Parses the next document into `doc` (replacing what it held): kDocument, or kEnd when
  // there is none left, or kError with `error` filled (positions count in the whole text; the
  // stream is then over). The limits of YamlDocument apply to each document.
  Next next(YamlDocument& doc, YamlParseError& error);
  // kEnd when the stream has no further document, else kError ("a second document").
  Next expectEnd(YamlParseError& error);
  // How many documents have started (the 1-based number of the current one).
  int documents() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

inline bool YamlNode::isNull() const {
  return !doc_ || doc_->node(index_).kind == YamlDocument::Kind::kNull;
}
inline bool YamlNode::isScalar() const {
  return doc_ && doc_->node(index_).kind == YamlDocument::Kind::kScalar;
}
inline bool YamlNode::isSeq() const {
  return doc_ && doc_->node(index_).kind == YamlDocument::Kind::kSeq;
}
inline bool YamlNode::isMap() const {
  return doc_ && doc_->node(index_).kind == YamlDocument::Kind::kMap;
}
inline bool YamlNode::isQuoted() const {
  return isScalar() && (doc_->node(index_).flags & YamlDocument::kQuoted) != 0;
}
inline std::string_view YamlNode::scalar() const {
  if (!isScalar()) return {};
  const YamlDocument::Node& n = doc_->node(index_);
  return std::string_view(doc_->arena_.data() + n.begin, n.size);
}
inline size_t YamlNode::size() const { return isSeq() || isMap() ? doc_->node(index_).size : 0; }

}  // namespace meshlet

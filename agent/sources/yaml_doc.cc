#include "agent/sources/yaml_doc.h"

#include <yaml.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <unordered_map>

namespace meshlet {
namespace {

// Plain scalars that YAML (1.1 and the 1.2 core schema) reads as null.
bool isNullText(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

constexpr std::string_view kNullTag = "tag:yaml.org,2002:null";
constexpr std::string_view kStrTag = "tag:yaml.org,2002:str";

// Node indices and arena offsets are 32-bit; texts are far smaller in practice (the file source
// reads at most 16 MiB), this keeps every count (text, nodes, children) in range whatever the
// caller passes.
constexpr size_t kMaxTextBytes = std::numeric_limits<uint32_t>::max() / 2;

uint64_t addSaturated(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

size_t countNewlines(std::string_view s) {
  size_t n = 0;
  for (size_t at = s.find('\n'); at != std::string_view::npos; at = s.find('\n', at + 1)) ++n;
  return n;
}

std::string_view text(const yaml_char_t* s) {
  return s ? std::string_view(reinterpret_cast<const char*>(s)) : std::string_view();
}

void setError(YamlParseError& error, int line, int column, std::string message) {
  error.message = std::move(message);
  error.line = line;
  error.column = column;
}

void setError(YamlParseError& error, const yaml_mark_t& mark, std::string message) {
  setError(error, static_cast<int>(mark.line), static_cast<int>(mark.column), std::move(message));
}

// Where a byte offset of the text is, given `window`: the text from byte `window_offset` on,
// which starts on line `window_line` (0-based) whose first byte is at `line_start`. false when
// the offset is outside the window.
bool positionOf(size_t offset, std::string_view window, size_t window_offset, int window_line,
                size_t line_start, int& line, int& column) {
  if (offset < window_offset || offset - window_offset > window.size()) return false;
  std::string_view before = window.substr(0, offset - window_offset);
  line = window_line + static_cast<int>(countNewlines(before));
  size_t last = before.rfind('\n');
  column = static_cast<int>(last == std::string_view::npos ? offset - line_start
                                                           : before.size() - last - 1);
  return true;
}

}  // namespace

std::string YamlParseError::format() const {
  if (line < 0) return message;
  return "line " + std::to_string(line + 1) + ", column " + std::to_string(column + 1) + ": " +
         message;
}

YamlNode YamlNode::at(size_t index) const {
  if (!isSeq() || index >= size()) return {};
  return YamlNode(doc_, doc_->children_[doc_->node(index_).begin + index]);
}

YamlNode YamlNode::get(std::string_view key) const {
  if (!isMap()) return {};
  const YamlDocument::Node& n = doc_->node(index_);
  const uint32_t* c = doc_->children_.data() + n.begin;
  for (uint32_t i = 0; i < n.size; ++i) {
    YamlNode k(doc_, c[2 * i]);
    if (k.isScalar() && k.scalar() == key) return YamlNode(doc_, c[2 * i + 1]);
  }
  return {};
}

YamlNode YamlNode::keyAt(size_t index) const {
  if (!isMap() || index >= size()) return {};
  return YamlNode(doc_, doc_->children_[doc_->node(index_).begin + 2 * index]);
}

YamlNode YamlNode::valueAt(size_t index) const {
  if (!isMap() || index >= size()) return {};
  return YamlNode(doc_, doc_->children_[doc_->node(index_).begin + 2 * index + 1]);
}

YamlEntryRange YamlNode::entries() const {
  if (!isMap()) return {};
  const YamlDocument::Node& n = doc_->node(index_);
  const uint32_t* first = doc_->children_.data() + n.begin;
  return {YamlEntryIterator(doc_, first), YamlEntryIterator(doc_, first + 2 * size_t{n.size})};
}

size_t YamlDocument::memoryBytes() const {
  return arena_.capacity() + nodes_.capacity() * sizeof(Node) +
         children_.capacity() * sizeof(uint32_t);
}

void YamlDocument::clear() {
  arena_.clear();
  nodes_.clear();
  children_.clear();
  root_ = 0;
  scratch_.clear();
  weight_.clear();
}

// Builds one document's tree from the events between its document start and end.
// Collections get their node when they start (so nodes are in document order); their children
// collect on a scratch stack and move into children_ as one run when the collection ends.
class YamlDocument::Builder {
 public:
  Builder(YamlDocument& doc, YamlParseError& error) : doc_(doc), error_(error) {}

  // False (and `error` set) when the event breaks a limit or names an unknown anchor.
  bool onEvent(const yaml_event_t& e) {
    if (doc_.nodes_.size() >= kMaxTextBytes ||
        doc_.children_.size() + doc_.scratch_.size() >= kMaxTextBytes) {
      return fail(e.start_mark, "the document is too large");
    }
    switch (e.type) {
      case YAML_SCALAR_EVENT:
        return onScalar(e);
      case YAML_SEQUENCE_START_EVENT:
        return onStart(e, Kind::kSeq, e.data.sequence_start.anchor);
      case YAML_MAPPING_START_EVENT:
        return onStart(e, Kind::kMap, e.data.mapping_start.anchor);
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        return onEnd(e);
      case YAML_ALIAS_EVENT:
        return onAlias(e);
      default:  // no other event comes inside a document
        return true;
    }
  }

 private:
  struct Frame {
    uint32_t node;
    size_t scratch_begin;  // where its children start on scratch_
  };

  bool fail(const yaml_mark_t& mark, std::string message) {
    setError(error_, mark, std::move(message));
    return false;
  }

  uint32_t addNode(Kind kind) {
    doc_.nodes_.push_back(Node{0, 0, kind, 0});
    doc_.weight_.push_back(1);
    return static_cast<uint32_t>(doc_.nodes_.size() - 1);
  }

  void attach(uint32_t index) {
    if (stack_.empty()) {
      doc_.root_ = index;
    } else {
      doc_.scratch_.push_back(index);
    }
  }

  bool isOpen(uint32_t index) const {
    return std::any_of(stack_.begin(), stack_.end(),
                       [index](const Frame& f) { return f.node == index; });
  }

  void defineAnchor(const yaml_char_t* anchor, uint32_t index) {
    if (anchor) anchors_[std::string(text(anchor))] = index;
  }

  bool onScalar(const yaml_event_t& e) {
    const auto& s = e.data.scalar;
    std::string_view tag = text(s.tag);
    std::string_view value(reinterpret_cast<const char*>(s.value), s.length);
    bool plain = s.style == YAML_PLAIN_SCALAR_STYLE || s.style == YAML_ANY_SCALAR_STYLE;
    uint32_t index;
    if (tag == kNullTag || (tag.empty() && plain && isNullText(value))) {
      index = addNode(Kind::kNull);
    } else {
      if (doc_.arena_.size() + value.size() > kMaxTextBytes) {
        return fail(e.start_mark, "the text is too large");
      }
      index = addNode(Kind::kScalar);
      Node& n = doc_.nodes_[index];
      n.begin = static_cast<uint32_t>(doc_.arena_.size());
      n.size = static_cast<uint32_t>(value.size());
      // As yaml-cpp told strings apart: a non-plain scalar without a tag, or tagged ! or !!str.
      bool quoted = tag.empty() ? !plain : tag == "!" || tag == kStrTag;
      n.flags = quoted ? kQuoted : 0;
      doc_.arena_.append(value);
    }
    attach(index);
    defineAnchor(s.anchor, index);
    return true;
  }

  bool onStart(const yaml_event_t& e, Kind kind, const yaml_char_t* anchor) {
    if (stack_.size() >= static_cast<size_t>(kMaxDepth)) {
      return fail(e.start_mark, "nesting is deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    uint32_t index = addNode(kind);
    attach(index);
    defineAnchor(anchor, index);  // an alias to it before its end is refused (onAlias)
    stack_.push_back(Frame{index, doc_.scratch_.size()});
    return true;
  }

  bool onEnd(const yaml_event_t& e) {
    if (stack_.empty()) return true;  // libyaml pairs them; never trust that blindly
    Frame f = stack_.back();
    stack_.pop_back();
    std::vector<uint32_t>& scratch = doc_.scratch_;
    size_t count = scratch.size() - f.scratch_begin;
    uint64_t weight = 1;
    for (size_t i = f.scratch_begin; i < scratch.size(); ++i) {
      weight = addSaturated(weight, doc_.weight_[scratch[i]]);
    }
    doc_.weight_[f.node] = weight;
    Node& n = doc_.nodes_[f.node];
    n.begin = static_cast<uint32_t>(doc_.children_.size());
    n.size = static_cast<uint32_t>(n.kind == Kind::kMap ? count / 2 : count);
    doc_.children_.insert(doc_.children_.end(), scratch.begin() + f.scratch_begin, scratch.end());
    scratch.resize(f.scratch_begin);
    uint64_t limit = std::max<uint64_t>(kMaxExpandedNodes, 10 * uint64_t{doc_.nodes_.size()});
    if (weight > limit) {
      return fail(e.start_mark,
                  "aliases expand the document to more than " + std::to_string(limit) + " nodes");
    }
    return true;
  }

  bool onAlias(const yaml_event_t& e) {
    std::string name(text(e.data.alias.anchor));
    auto it = anchors_.find(name);
    if (it == anchors_.end()) return fail(e.start_mark, "unknown anchor \"" + name + "\"");
    if (isOpen(it->second)) {
      return fail(e.start_mark,
                  "alias *" + name + " refers to a collection that contains it (a cycle)");
    }
    attach(it->second);
    return true;
  }

  YamlDocument& doc_;
  YamlParseError& error_;
  std::vector<Frame> stack_;                           // at most kMaxDepth
  std::unordered_map<std::string, uint32_t> anchors_;  // anchors are per document
};

// Owns the libyaml parser and the event it last produced.
struct YamlStream::Impl {
  // A reader's input goes through `recent`, the last kWindow..2*kWindow bytes read (more than
  // libyaml's 16 KiB of raw lookahead), to place encoding errors, which libyaml reports as a
  // byte offset. A text in memory is its own window.
  static constexpr size_t kWindow = 64 << 10;

  yaml_parser_t parser;
  yaml_event_t event;
  std::string_view input;  // the whole text, unless reading
  Reader read;
  std::string recent;
  size_t recent_offset = 0;  // of recent[0] in the text
  int recent_line = 0;       // the line recent[0] is on
  size_t line_start = 0;     // where that line starts
  bool initialized = false;
  bool too_large = false;
  bool has_event = false;
  bool over = false;
  int documents = 0;

  ~Impl() {
    if (has_event) yaml_event_delete(&event);
    if (initialized) yaml_parser_delete(&parser);
  }

  void init() { initialized = yaml_parser_initialize(&parser) != 0; }

  static int readHandler(void* data, unsigned char* buf, size_t size, size_t* size_read) {
    Impl& s = *static_cast<Impl*>(data);
    long n = s.read(reinterpret_cast<char*>(buf), size);
    if (n < 0 || static_cast<size_t>(n) > size) return 0;
    *size_read = static_cast<size_t>(n);
    s.recent.append(reinterpret_cast<const char*>(buf), *size_read);
    if (s.recent.size() > 2 * kWindow) {
      std::string_view dropped(s.recent.data(), s.recent.size() - kWindow);
      if (size_t last = dropped.rfind('\n'); last != std::string_view::npos) {
        s.recent_line += static_cast<int>(countNewlines(dropped));
        s.line_start = s.recent_offset + last + 1;
      }
      s.recent_offset += dropped.size();
      s.recent.erase(0, dropped.size());
    }
    return 1;
  }

  // libyaml's own errors: problem and context, at the problem's position.
  void setLibyamlError(YamlParseError& error) const {
    const yaml_parser_t& p = parser;
    std::string message = p.problem ? p.problem : "unknown error";
    switch (p.error) {
      case YAML_MEMORY_ERROR:
        setError(error, -1, -1, "out of memory");
        return;
      case YAML_READER_ERROR: {
        // Encoding problems carry a byte offset rather than a mark.
        if (p.problem_value != -1) {
          char value[16];
          std::snprintf(value, sizeof(value), " (#%X)", static_cast<unsigned>(p.problem_value));
          message += value;
        }
        int line = -1, column = -1;
        if (read) {
          positionOf(p.problem_offset, recent, recent_offset, recent_line, line_start, line,
                     column);
        } else {
          positionOf(p.problem_offset, input, 0, 0, 0, line, column);
        }
        setError(error, line, column, std::move(message));
        return;
      }
      case YAML_SCANNER_ERROR:
      case YAML_PARSER_ERROR:
        if (p.context) message += std::string(" ") + p.context;
        setError(error, p.problem_mark, std::move(message));
        return;
      default:
        setError(error, -1, -1, std::move(message));
        return;
    }
  }

  // The next event; nullptr (and the stream over) on a libyaml error, set in `error`.
  const yaml_event_t* nextEvent(YamlParseError& error) {
    if (has_event) yaml_event_delete(&event);
    has_event = yaml_parser_parse(&parser, &event) != 0;
    if (has_event) return &event;
    setLibyamlError(error);
    over = true;
    return nullptr;
  }

  // Skips to the next document start (true) or the stream's end (false, `over` set; `error`
  // set too when that end is an error).
  bool toDocument(YamlParseError& error) {
    while (!over) {
      const yaml_event_t* e = nextEvent(error);
      if (!e) return false;
      if (e->type == YAML_DOCUMENT_START_EVENT) {
        ++documents;
        return true;
      }
      if (e->type == YAML_STREAM_END_EVENT) over = true;
    }
    return false;
  }
};

YamlStream::YamlStream(std::string_view text) : impl_(std::make_unique<Impl>()) {
  impl_->input = text;
  if (text.size() > kMaxTextBytes) {
    impl_->too_large = true;
    return;
  }
  impl_->init();
  if (impl_->initialized) {
    yaml_parser_set_input_string(&impl_->parser,
                                 reinterpret_cast<const unsigned char*>(text.data()), text.size());
  }
}

YamlStream::YamlStream(Reader read) : impl_(std::make_unique<Impl>()) {
  impl_->read = std::move(read);
  impl_->init();
  if (impl_->initialized) yaml_parser_set_input(&impl_->parser, &Impl::readHandler, impl_.get());
}

YamlStream::~YamlStream() = default;

int YamlStream::documents() const { return impl_->documents; }

YamlStream::Next YamlStream::next(YamlDocument& doc, YamlParseError& error) {
  doc.clear();
  error = YamlParseError();
  Impl& s = *impl_;
  if (!s.initialized && !s.over) {  // too large, or out of memory
    s.over = true;
    setError(error, -1, -1, s.too_large ? "the text is too large" : "out of memory");
    return Next::kError;
  }
  if (!s.toDocument(error)) return error.message.empty() ? Next::kEnd : Next::kError;
  YamlDocument::Builder builder(doc, error);
  while (true) {
    const yaml_event_t* e = s.nextEvent(error);
    bool ok = e && (e->type == YAML_DOCUMENT_END_EVENT || builder.onEvent(*e));
    if (!ok) {
      s.over = true;
      doc.clear();
      return Next::kError;
    }
    if (e->type == YAML_DOCUMENT_END_EVENT) break;
  }
  doc.scratch_.clear();
  doc.weight_.clear();
  return Next::kDocument;
}

YamlStream::Next YamlStream::expectEnd(YamlParseError& error) {
  error = YamlParseError();
  Impl& s = *impl_;
  if (!s.toDocument(error)) return error.message.empty() ? Next::kEnd : Next::kError;
  s.over = true;
  setError(error, s.event.start_mark, "found a second document where one was expected");
  return Next::kError;
}

bool YamlDocument::parse(std::string_view text, YamlParseError& error) {
  YamlStream stream(text);
  YamlStream::Next n = stream.next(*this, error);
  if (n == YamlStream::Next::kDocument) n = stream.expectEnd(error);
  if (n == YamlStream::Next::kError) {
    clear();
    return false;
  }
  return true;
}

}  // namespace meshlet

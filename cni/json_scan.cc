#include "cni/json_scan.h"

#include <nlohmann/json.hpp>

namespace meshlet::cni {
namespace {

bool IsWhitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Index just past the closing quote of the string whose opening quote is at pos.
size_t StringEnd(std::string_view text, size_t pos) {
  for (size_t i = pos + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;  // the escaped byte (for \uXXXX the hex digits need no special care)
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  throw ScanError("unterminated string");
}

// Index just past the bracket that closes the object/array opened at pos.
size_t ContainerEnd(std::string_view text, size_t pos) {
  std::vector<char> closers;
  for (size_t i = pos; i < text.size();) {
    char c = text[i];
    if (c == '"') {
      i = StringEnd(text, i);
      continue;
    }
    if (c == '{' || c == '[') {
      closers.push_back(c == '{' ? '}' : ']');
    } else if (c == '}' || c == ']') {
      if (closers.empty() || closers.back() != c) throw ScanError("mismatched bracket");
      closers.pop_back();
      if (closers.empty()) return i + 1;
    }
    ++i;
  }
  throw ScanError("unterminated object or array");
}

void Expect(std::string_view text, size_t pos, char c) {
  if (pos >= text.size() || text[pos] != c) {
    throw ScanError(std::string("expected '") + c + "' at offset " + std::to_string(pos));
  }
}

}  // namespace

size_t SkipWhitespace(std::string_view text, size_t pos) {
  while (pos < text.size() && IsWhitespace(text[pos])) ++pos;
  return pos;
}

Span ValueAt(std::string_view text, size_t pos) {
  pos = SkipWhitespace(text, pos);
  if (pos >= text.size()) throw ScanError("expected a value, found the end of the text");
  char c = text[pos];
  if (c == '"') return {pos, StringEnd(text, pos)};
  if (c == '{' || c == '[') return {pos, ContainerEnd(text, pos)};
  size_t end = pos;
  while (end < text.size() && !IsWhitespace(text[end]) && text[end] != ',' && text[end] != ']' &&
         text[end] != '}' && text[end] != ':') {
    ++end;
  }
  if (end == pos) throw ScanError("unexpected '" + std::string(1, c) + "'");
  return {pos, end};
}

Span DocumentValue(std::string_view text) {
  Span value = ValueAt(text, 0);
  if (SkipWhitespace(text, value.end) != text.size()) throw ScanError("trailing bytes");
  return value;
}

std::vector<Member> ObjectMembers(std::string_view text, Span object) {
  Expect(text, object.begin, '{');
  std::vector<Member> members;
  size_t pos = SkipWhitespace(text, object.begin + 1);
  if (pos < text.size() && text[pos] == '}') return members;
  while (true) {
    Expect(text, pos, '"');
    size_t key_end = StringEnd(text, pos);
    std::string key;
    try {
      key = nlohmann::json::parse(text.substr(pos, key_end - pos)).get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      throw ScanError(std::string("bad key: ") + e.what());
    }
    pos = SkipWhitespace(text, key_end);
    Expect(text, pos, ':');
    Span value = ValueAt(text, pos + 1);
    members.push_back({std::move(key), value});
    pos = SkipWhitespace(text, value.end);
    if (pos < text.size() && text[pos] == ',') {
      pos = SkipWhitespace(text, pos + 1);
      continue;
    }
    Expect(text, pos, '}');
    return members;
  }
}

std::vector<Span> ArrayElements(std::string_view text, Span array) {
  Expect(text, array.begin, '[');
  std::vector<Span> elements;
  size_t pos = SkipWhitespace(text, array.begin + 1);
  if (pos < text.size() && text[pos] == ']') return elements;
  while (true) {
    Span value = ValueAt(text, pos);
    elements.push_back(value);
    pos = SkipWhitespace(text, value.end);
    if (pos < text.size() && text[pos] == ',') {
      ++pos;
      continue;
    }
    Expect(text, pos, ']');
    return elements;
  }
}

FoundMember FindMember(std::string_view text, Span object, std::string_view key) {
  FoundMember found;
  for (const Member& m : ObjectMembers(text, object)) {
    if (m.key == key) found = {true, m.value};
  }
  return found;
}

}  // namespace meshlet::cni

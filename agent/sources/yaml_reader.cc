#include "agent/sources/yaml_reader.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <iterator>
#include <optional>
#include <unordered_set>
#include <utility>

namespace meshlet::file_source_internal {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [a-z0-9]([-a-z0-9]*[a-z0-9])? without the length limit.
bool matchesDnsLabel(std::string_view s) {
  if (s.empty() || !isLowerAlnum(s.front()) || !isLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!isLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// A decimal integer with an optional sign. nullopt when not a number; `overflow` set when it
// is a number that does not fit in 64 bits.
std::optional<int64_t> parseDecimal(std::string_view v, bool& overflow) {
  overflow = false;
  if (!v.empty() && v.front() == '+') v.remove_prefix(1);
  if (v.empty()) return std::nullopt;
  size_t digits_from = v.front() == '-' ? 1 : 0;
  if (digits_from == v.size()) return std::nullopt;
  for (size_t i = digits_from; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return std::nullopt;
  }
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
  if (ec == std::errc::result_out_of_range) {
    overflow = true;
    return std::nullopt;
  }
  if (ec != std::errc() || ptr != v.data() + v.size()) return std::nullopt;
  return value;
}

}  // namespace

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void Field::setPath(std::initializer_list<std::string_view> parts) {
  size_t size = 0;
  for (std::string_view p : parts) size += p.size();
  on_heap_ = size > short_.size();
  if (on_heap_) {
    long_.reserve(size);
    for (std::string_view p : parts) long_.append(p);
    return;
  }
  char* out = short_.data();
  for (std::string_view p : parts) out = std::copy(p.begin(), p.end(), out);
  short_size_ = static_cast<uint8_t>(size);
}

Field Field::child(std::string_view key) const {
  Field f(node_.get(key));
  std::string_view path = pathView();
  if (path.empty()) {
    f.setPath({key});
  } else {
    f.setPath({path, ".", key});
  }
  return f;
}

Field Field::element(size_t index) const {
  Field f(node_.at(index));
  char digits[24];
  char* end = std::to_chars(digits, digits + sizeof(digits), index).ptr;
  f.setPath({pathView(), "[", std::string_view(digits, static_cast<size_t>(end - digits)), "]"});
  return f;
}

std::string Field::describe() const {
  if (!present()) return "null";
  if (isMap()) return "a map";
  if (isSeq()) return "a list";
  return isQuotedString() ? "string " + quote(text()) : quote(text());
}

Error Reader::error(const std::string& path, const std::string& message) const {
  std::string out = where_;
  for (const std::string* part : {&object_, &path}) {
    if (part->empty()) continue;
    if (!out.empty()) out += ": ";
    out += *part;
  }
  return Error(out + ": " + message);
}

Status Reader::required(const Field& f) const {
  if (!f.present()) return error(f, "required field is missing");
  return Status::Ok();
}

Status Reader::expectMap(const Field& f, bool required_field) const {
  if (!f.present()) return required_field ? required(f) : Status::Ok();
  if (!f.isMap()) return error(f, "expected a map, got " + f.describe());
  // The first key (in document order) that repeats an earlier one. Objects' maps are small:
  // a linear search up to kSmall keys, a hash set beyond.
  constexpr size_t kSmall = 16;
  const YamlNode& map = f.node();
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < map.size(); ++i) {
    YamlNode key = map.keyAt(i);
    if (!key.isScalar()) return error(f, "map keys must be strings");
    std::string_view text = key.scalar();
    bool duplicate = false;
    if (map.size() <= kSmall) {
      for (size_t j = 0; j < i && !duplicate; ++j) duplicate = map.keyAt(j).scalar() == text;
    } else {
      duplicate = !seen.insert(text).second;
    }
    if (duplicate) return error(f, "duplicate key " + quote(text));
  }
  return Status::Ok();
}

Status Reader::expectSeq(const Field& f, bool required_field) const {
  if (!f.present()) return required_field ? required(f) : Status::Ok();
  if (!f.isSeq()) return error(f, "expected a list, got " + f.describe());
  return Status::Ok();
}

Status Reader::string(const Field& f, std::string& out, bool required_field) const {
  if (!f.present()) return required_field ? required(f) : Status::Ok();
  if (!f.isScalar()) return error(f, "expected a string, got " + f.describe());
  out.assign(f.text());
  return Status::Ok();
}

Status Reader::string(const Field& f, Name& out, bool required_field) const {
  if (!f.present()) return required_field ? required(f) : Status::Ok();
  if (!f.isScalar()) return error(f, "expected a string, got " + f.describe());
  out = Name(f.text());
  return Status::Ok();
}

Status Reader::integer(const Field& f, int64_t& out, bool required_field) const {
  if (!f.present()) return required_field ? required(f) : Status::Ok();
  if (!f.isScalar() || f.isQuotedString()) {
    return error(f, "expected an integer, got " + f.describe());
  }
  bool overflow = false;
  std::optional<int64_t> v = parseDecimal(f.text(), overflow);
  if (overflow) return error(f, f.scalar() + " is out of range");
  if (!v) return error(f, "expected an integer, got " + f.describe());
  out = *v;
  return Status::Ok();
}

Status Reader::boolean(const Field& f, bool& out) const {
  if (!f.present()) return Status::Ok();
  // The YAML 1.1 booleans, as sigs.k8s.io/yaml (go-yaml v2) reads them.
  static constexpr std::string_view kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                               "on",   "On",   "ON",   "y",   "Y"};
  static constexpr std::string_view kFalse[] = {"false", "False", "FALSE", "no", "No", "NO",
                                                "off",   "Off",   "OFF",   "n",  "N"};
  if (f.isScalar() && !f.isQuotedString()) {
    std::string_view text = f.text();
    if (std::find(std::begin(kTrue), std::end(kTrue), text) != std::end(kTrue)) {
      out = true;
      return Status::Ok();
    }
    if (std::find(std::begin(kFalse), std::end(kFalse), text) != std::end(kFalse)) {
      out = false;
      return Status::Ok();
    }
  }
  return error(f, "expected true or false, got " + f.describe());
}

Status Reader::port(const Field& f, int& out, bool required_field) const {
  if (!f.present()) return required_field ? required(f) : Status::Ok();
  int64_t v = 0;
  Status s = integer(f, v, true);
  if (!s.ok()) {
    bool overflow = false;
    if (f.isScalar() && !f.isQuotedString() && !parseDecimal(f.text(), overflow) && overflow) {
      return error(f, f.scalar() + " is out of range 1-65535");
    }
    return s;
  }
  if (v < 1 || v > 65535) return error(f, std::to_string(v) + " is out of range 1-65535");
  out = static_cast<int>(v);
  return Status::Ok();
}

Status Reader::protocol(const Field& f, Protocol& out) const {
  std::string text = "TCP";
  MESHLET_SOURCES_TRY(string(f, text, false));
  if (text == "TCP") {
    out = Protocol::kTCP;
  } else if (text == "UDP") {
    out = Protocol::kUDP;
  } else if (text == "SCTP") {
    return error(f, "protocol SCTP is not supported (only TCP and UDP)");
  } else {
    return error(f, quote(text) + " is not a valid protocol (TCP or UDP)");
  }
  return Status::Ok();
}

Status Reader::ip(const Field& f, IpAddr& out) const {
  std::string text;
  MESHLET_SOURCES_TRY(string(f, text, true));
  std::optional<IpAddr> a = IpAddr::parse(text);
  if (!a) return error(f, quote(text) + " is not a valid IP address");
  static const std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!a->isV4() && std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), a->bytes.begin())) {
    return error(f, quote(text) + " is an IPv4-mapped IPv6 address; write the IPv4 address");
  }
  if (*a == IpAddr{a->family, {}}) {
    return error(f, quote(text) + " is the unspecified address");
  }
  out = *a;
  return Status::Ok();
}

Status Reader::stringMap(const Field& f, StringMap& out) const {
  MESHLET_SOURCES_TRY(expectMap(f, false));
  if (!f.present()) return Status::Ok();
  StringMap result;
  for (auto [key, value] : f.node().entries()) {
    if (value.present() && !value.isScalar()) {  // what string() refuses; the path only then
      Field v(value, f.path() + "[" + quote(key.scalar()) + "]");
      return error(v, "expected a string, got " + v.describe());
    }
    result[std::string(key.scalar())] = std::string(value.scalar());
  }
  out = std::move(result);
  return Status::Ok();
}

Status Reader::labels(const Field& f, Labels& out) const {
  Labels result;
  MESHLET_SOURCES_TRY(stringMap(f, result));
  for (const auto& [key, value] : result) {
    std::string path = f.path() + "[" + quote(key) + "]";
    if (std::string why = checkQualifiedName(key); !why.empty()) {
      return error(path, "invalid label key " + quote(key) + ": " + why);
    }
    if (std::string why = checkLabelValue(value); !why.empty()) {
      return error(path, "invalid label value " + quote(value) + ": " + why);
    }
  }
  out = std::move(result);
  return Status::Ok();
}

Status Reader::annotations(const Field& f, StringMap& out) const {
  StringMap result;
  MESHLET_SOURCES_TRY(stringMap(f, result));
  for (const auto& [key, value] : result) {
    if (std::string why = checkQualifiedName(key); !why.empty()) {
      return error(f.path() + "[" + quote(key) + "]",
                   "invalid annotation key " + quote(key) + ": " + why);
    }
  }
  out = std::move(result);
  return Status::Ok();
}

std::string checkDns1123Label(std::string_view s) {
  if (s.size() > 63) return "must be no more than 63 characters";
  if (!matchesDnsLabel(s)) {
    return "a DNS-1123 label must consist of lower case alphanumeric characters or '-', and "
           "must start and end with an alphanumeric character";
  }
  return "";
}

std::string checkDns1123Subdomain(std::string_view s) {
  if (s.size() > 253) return "must be no more than 253 characters";
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!matchesDnsLabel(part)) {
      return "a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or "
             "'.', and must start and end with an alphanumeric character";
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return "";
}

std::string checkDns1035Label(std::string_view s) {
  if (s.size() > 63) return "must be no more than 63 characters";
  if (!matchesDnsLabel(s) || (s.front() >= '0' && s.front() <= '9')) {
    return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
           "with an alphabetic character, and end with an alphanumeric character";
  }
  return "";
}

std::string checkIanaSvcName(std::string_view s) {
  if (s.empty()) return "must not be empty";
  if (s.size() > 15) return "must be no more than 15 characters";
  bool letter = false;
  for (char c : s) {
    if (!isLowerAlnum(c) && c != '-') return "must contain only lower case alphanumerics and '-'";
    if (c >= 'a' && c <= 'z') letter = true;
  }
  if (s.front() == '-' || s.back() == '-') return "must not begin or end with '-'";
  if (s.find("--") != std::string_view::npos) return "must not contain consecutive '-'";
  if (!letter) return "must contain at least one letter";
  return "";
}

std::string checkQualifiedName(std::string_view s) {
  std::string_view name = s;
  size_t slash = s.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = s.substr(0, slash);
    name = s.substr(slash + 1);
    if (prefix.empty()) return "the prefix before '/' must not be empty";
    if (std::string why = checkDns1123Subdomain(prefix); !why.empty()) return "prefix: " + why;
  }
  if (name.empty()) return "the name part must not be empty";
  if (name.size() > 63) return "the name part must be no more than 63 characters";
  if (!isAlnum(name.front()) || !isAlnum(name.back())) {
    return "the name part must start and end with an alphanumeric character";
  }
  for (char c : name) {
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.') {
      return "the name part must consist of alphanumeric characters, '-', '_' or '.'";
    }
  }
  return "";
}

std::string checkLabelValue(std::string_view s) {
  if (s.empty()) return "";
  if (s.size() > 63) return "must be no more than 63 characters";
  if (!isAlnum(s.front()) || !isAlnum(s.back())) {
    return "must start and end with an alphanumeric character";
  }
  for (char c : s) {
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.') {
      return "must consist of alphanumeric characters, '-', '_' or '.'";
    }
  }
  return "";
}

}  // namespace meshlet::file_source_internal

#pragma once
// Private to agent/sources: typed, path-tracking access to YamlDocument nodes. Nothing here
// throws; every problem becomes an Error that names the file, the document, the object and the
// field:
//   "svc.yaml (document 2): Service default/web: spec.ports[0].port: 70000 is out of range 1-65535"
#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "agent/common/ip.h"
#include "agent/common/name.h"
#include "agent/common/status.h"
#include "agent/sources/yaml_doc.h"
#include "agent/state/types.h"

// Returns the Status of `expr` from the enclosing function when it is an error.
#define MESHLET_SOURCES_TRY(expr)       \
  do {                                  \
    ::meshlet::Status status_ = (expr); \
    if (!status_.ok()) return status_;  \
  } while (0)

namespace meshlet::file_source_internal {

// A document node plus its field path ("spec.ports[0].port"). A missing key and an explicit
// null are both "absent", as in the Kubernetes API.
class Field {
 public:
  Field(YamlNode node, std::string_view path) : node_(node) { setPath({path}); }

  bool present() const { return node_.present(); }
  bool isMap() const { return node_.isMap(); }
  bool isSeq() const { return node_.isSeq(); }
  bool isScalar() const { return node_.isScalar(); }
  // The scalar text; empty when not a scalar.
  std::string scalar() const { return std::string(node_.scalar()); }
  std::string_view text() const { return node_.scalar(); }
  // True for a quoted ("80"), block (|, >) or explicitly !!str-tagged scalar: a string, never a
  // number.
  bool isQuotedString() const { return node_.isQuoted(); }
  // A child of a map (absent when this is not a map or the key is missing).
  Field child(std::string_view key) const;
  // An element of a sequence (absent when out of range or not a sequence).
  Field element(size_t index) const;
  size_t size() const { return node_.size(); }
  std::string path() const { return std::string(pathView()); }
  std::string_view pathView() const {
    return on_heap_ ? std::string_view(long_) : std::string_view(short_.data(), short_size_);
  }
  const YamlNode& node() const { return node_; }
  // A short human description of what the value is, for "expected X, got Y" messages.
  std::string describe() const;

 private:
  explicit Field(YamlNode node) : node_(node) {}
  void setPath(std::initializer_list<std::string_view> parts);

  YamlNode node_;
  // The path: in place when short, which is nearly always (the parsers ask for a million
  // fields of a big file, and need a path only for the odd error message), else on the heap.
  std::array<char, 94> short_{};
  uint8_t short_size_ = 0;
  bool on_heap_ = false;
  std::string long_;
};

// Reads the fields of one object; knows where it is for error messages.
class Reader {
 public:
  // `where` is "file (document N)" or "file (document N, items[i])".
  explicit Reader(std::string where) : where_(std::move(where)) {}

  // "Kind namespace/name" (or "Kind name" for cluster-scoped objects).
  void setObject(std::string object) { object_ = std::move(object); }
  const std::string& where() const { return where_; }
  const std::string& object() const { return object_; }

  // "where: object: path: message" (parts that are empty are left out).
  Error error(const std::string& path, const std::string& message) const;
  Error error(const Field& f, const std::string& message) const { return error(f.path(), message); }

  // Presence and type checks. An absent optional field is OK and leaves `out` untouched.
  Status required(const Field& f) const;
  Status expectMap(const Field& f, bool required) const;  // also rejects duplicate keys
  Status expectSeq(const Field& f, bool required) const;
  Status string(const Field& f, std::string& out, bool required) const;
  Status string(const Field& f, Name& out, bool required) const;  // interned
  Status integer(const Field& f, int64_t& out, bool required) const;
  Status boolean(const Field& f, bool& out) const;
  // An integer in 1-65535.
  Status port(const Field& f, int& out, bool required) const;
  // "TCP" (default when absent) or "UDP"; SCTP is recognised and refused.
  Status protocol(const Field& f, Protocol& out) const;
  Status ip(const Field& f, IpAddr& out) const;
  // A map of string to string (labels, annotations, selectors). Scalars of any YAML type are
  // taken as their text; nested maps or lists are rejected.
  Status stringMap(const Field& f, StringMap& out) const;
  // metadata.labels: keys are qualified names, values label values.
  Status labels(const Field& f, Labels& out) const;
  Status annotations(const Field& f, StringMap& out) const;

 private:
  std::string where_;
  std::string object_;
};

// Kubernetes name rules (k8s.io/apimachinery/pkg/util/validation). Each returns an empty string
// when `s` is valid, else why it is not.
std::string checkDns1123Label(std::string_view s);
std::string checkDns1123Subdomain(std::string_view s);
std::string checkDns1035Label(std::string_view s);
std::string checkIanaSvcName(std::string_view s);    // named ports: "http", "grpc-web"
std::string checkQualifiedName(std::string_view s);  // label and annotation keys
std::string checkLabelValue(std::string_view s);

// Quotes a value for an error message: "\"abc\"".
std::string quote(std::string_view s);

}  // namespace meshlet::file_source_internal

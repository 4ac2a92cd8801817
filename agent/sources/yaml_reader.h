#pragma once
// Private to agent/sources: typed, path-tracking access to yaml-cpp nodes. Nothing here throws
// (yaml-cpp is only called in ways that cannot); every problem becomes an Error that names the
// file, the document, the object and the field:
//   "svc.yaml (document 2): Service default/web: spec.ports[0].port: 70000 is out of range 1-65535"
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "agent/common/ip.h"
#include "agent/common/status.h"
#include "agent/state/types.h"

// Returns the Status of `expr` from the enclosing function when it is an error.
#define MESHLET_SOURCES_TRY(expr)       \
  do {                                  \
    ::meshlet::Status status_ = (expr); \
    if (!status_.ok()) return status_;  \
  } while (0)

namespace meshlet::file_source_internal {

// A yaml-cpp node plus its field path ("spec.ports[0].port"). A missing key and an explicit
// null are both "absent", as in the Kubernetes API. Not assignable on purpose: assigning a
// YAML::Node rebinds the *content* of the node it refers to.
class Field {
 public:
  Field(const YAML::Node& node, std::string path);
  Field(const Field&) = default;
  Field& operator=(const Field&) = delete;

  bool present() const { return valid_ && node_.IsDefined() && !node_.IsNull(); }
  bool isMap() const { return present() && node_.IsMap(); }
  bool isSeq() const { return present() && node_.IsSequence(); }
  bool isScalar() const { return present() && node_.IsScalar(); }
  // The scalar text; empty when not a scalar.
  std::string scalar() const;
  // True for a quoted ("80") or explicitly !!str-tagged scalar: a string, never a number.
  bool isQuotedString() const;
  // A child of a map (absent when this is not a map or the key is missing).
  Field child(const std::string& key) const;
  // An element of a sequence (absent when out of range or not a sequence).
  Field element(size_t index) const;
  size_t size() const { return isMap() || isSeq() ? node_.size() : 0; }
  const std::string& path() const { return path_; }
  const YAML::Node& node() const { return node_; }
  // A short human description of what the value is, for "expected X, got Y" messages.
  std::string describe() const;

 private:
  YAML::Node node_;
  bool valid_ = false;
  std::string path_;
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
  Status integer(const Field& f, int64_t& out, bool required) const;
  Status boolean(const Field& f, bool& out) const;
  // An integer in 1-65535.
  Status port(const Field& f, int& out, bool required) const;
  // "TCP" (default when absent) or "UDP"; SCTP is recognised and refused.
  Status protocol(const Field& f, Protocol& out) const;
  Status ip(const Field& f, IpAddr& out) const;
  // A map of string to string (labels, annotations, selectors). Scalars of any YAML type are
  // taken as their text; nested maps or lists are rejected.
  Status stringMap(const Field& f, std::map<std::string, std::string>& out) const;
  // metadata.labels: keys are qualified names, values label values.
  Status labels(const Field& f, Labels& out) const;
  Status annotations(const Field& f, std::map<std::string, std::string>& out) const;

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

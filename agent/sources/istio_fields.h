#pragma once
// Private to agent/sources: field readers shared by the Istio parsers (parse_istio_*.cc).
// Istio objects are read strictly: every map is checked against the fields meshlet knows, and
// a field it recognises but does not implement is refused with a message saying so.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/sources/yaml_reader.h"
#include "agent/state/types.h"

namespace meshlet::file_source_internal {

// A field meshlet recognises but refuses, and why ("is not supported: <why>").
struct Unsupported {
  std::string_view field;
  std::string_view why;
};

// `f` must be a map (when present) whose keys are all in `known`; a key in `unsupported` gets
// "field: is not supported: why", any other "field: unknown field".
Status strictMap(const Reader& r, const Field& f, bool required,
                 std::initializer_list<std::string_view> known,
                 std::initializer_list<Unsupported> unsupported = {});

// The top level of an Istio object: apiVersion, kind, metadata (read by parseMeta, which
// accepts every field the API server adds), spec (checked by the caller), status (ignored).
Status istioObject(const Reader& r, const Field& root, const Origin& origin, ObjectMeta& meta);

// A list of strings (absent: left empty).
Status stringList(const Reader& r, const Field& f, std::vector<std::string>& out);

// A duration as Istio writes them ("1.5s", "250ms", "1m", "1h30m", Go's time.ParseDuration
// form) in whole milliseconds, at least `min_ms`. Absent: `out` untouched.
Status durationMs(const Reader& r, const Field& f, int64_t min_ms, std::optional<int64_t>& out);
// Parses a duration to nanoseconds; empty string when valid, else why not.
std::string parseDurationNs(std::string_view s, int64_t& ns);

// A number (integer or decimal) in [min, max].
Status number(const Reader& r, const Field& f, double min, double max, double& out);
// An integer in [min, max] (absent: untouched).
Status intRange(const Reader& r, const Field& f, int64_t min, int64_t max, int& out);
// A `Percent` message: {value: 0-100}.
Status percent(const Reader& r, const Field& f, double& out);

// selector: {matchLabels: {...}} (Istio's WorkloadSelector). Absent: nullopt.
Status workloadSelector(const Reader& r, const Field& f, std::optional<Labels>& out);

// exportTo: ".", "*", "~" (alone) or namespace names.
Status exportTo(const Reader& r, const Field& f, std::vector<std::string>& out);

// A service host: a short name or FQDN ("reviews", "reviews.prod.svc.cluster.local"), with an
// optional leading "*." label when `wildcard`. Empty string when valid, else why not.
std::string checkHost(std::string_view s, bool wildcard);

// An HTTP header name (an RFC 9110 token). Empty string when valid, else why not.
std::string checkHeaderName(std::string_view s);

std::string lower(std::string_view s);

}  // namespace meshlet::file_source_internal

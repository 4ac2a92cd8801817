// The file source: multi-document Kubernetes YAML → Snapshot, cross-object validation, and the
// directory loader.
#include "agent/sources/file_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/sources/k8s_objects.h"
#include "agent/sources/objects.h"
#include "agent/sources/yaml_reader.h"

namespace meshlet {
namespace {

using file_source_internal::Field;
using file_source_internal::quote;
using file_source_internal::Reader;

constexpr off_t kMaxFileBytes = 16 << 20;

std::string where(const std::string& file, int document, int item = -1) {
  std::string out = file + " (document " + std::to_string(document);
  if (item >= 0) out += ", items[" + std::to_string(item) + "]";
  return out + ")";
}

std::string originText(const Origin& o) {
  return o.document > 0 ? where(o.file, o.document) : o.file;
}

std::string objectName(std::string_view kind, const ObjectMeta& m) {
  return std::string(kind) + " " + (m.ns.empty() ? m.name : m.ns + "/" + m.name);
}

// How a line of a YAML stream bears on document boundaries.
struct LineKind {
  bool marker;      // "---": a document starts here
  bool end_marker;  // "...": the open document ends
  bool content;     // anything but blank lines, comments and directives
};

LineKind classifyLine(std::string_view s) {
  size_t first = s.find_first_not_of(" \t\r");
  return {s.substr(0, 3) == "---" && (s.size() == 3 || s[3] == ' ' || s[3] == '\t' || s[3] == '\r'),
          s.substr(0, 3) == "...",
          first != std::string_view::npos && s[first] != '#' && s[0] != '%'};
}

// yaml-cpp reports only a line for a syntax error, so the document holding it is found by
// counting document markers up to that line.
int documentAtLine(const std::string& text, int line /* 0-based */) {
  int document = 0;
  bool open = false;
  size_t pos = 0;
  for (int l = 0; l <= line && pos <= text.size(); ++l) {
    size_t end = text.find('\n', pos);
    auto [marker, end_marker, content] = classifyLine(
        std::string_view(text.data() + pos, (end == std::string::npos ? text.size() : end) - pos));
    if (marker) {
      ++document;
      open = true;
    } else if (end_marker) {
      open = false;
    } else if (content && !open) {
      ++document;
      open = true;
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return std::max(document, 1);
}

struct KindInfo {
  const char* kind;
  std::array<const char*, 3> api_versions;  // the first is the preferred one; unused: nullptr
  bool namespaced;

  bool accepts(std::string_view version) const {
    for (const char* v : api_versions) {
      if (v && version == v) return true;
    }
    return false;
  }
  // "v1" or "security.istio.io/v1 or security.istio.io/v1beta1".
  std::string versionsText() const {
    std::string out;
    for (const char* v : api_versions) {
      if (!v) continue;
      if (!out.empty()) out += " or ";
      out += v;
    }
    return out;
  }
};

constexpr KindInfo kKinds[] = {
    {"Namespace", {"v1"}, false},
    {"Service", {"v1"}, true},
    {"EndpointSlice", {"discovery.k8s.io/v1"}, true},
    {"Pod", {"v1"}, true},
    {"AuthorizationPolicy", {"security.istio.io/v1", "security.istio.io/v1beta1"}, true},
    {"PeerAuthentication", {"security.istio.io/v1", "security.istio.io/v1beta1"}, true},
    {"VirtualService",
     {"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"},
     true},
    {"DestinationRule",
     {"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"},
     true},
};

const KindInfo* findKind(std::string_view kind) {
  for (const KindInfo& k : kKinds) {
    if (kind == k.kind) return &k;
  }
  return nullptr;
}

// "Namespace, Service, ..., DestinationRule or List".
std::string kindsText() {
  std::string out;
  for (const KindInfo& k : kKinds) out += std::string(k.kind) + ", ";
  out.resize(out.size() - 2);
  return out + " or List";
}

// One object (a document's root, or an item of a List).
Status parseObject(const Field& root, Reader& r, const Origin& origin, std::string api_version,
                   std::string kind, Snapshot& out) {
  // Name the object in every message, as well as can be told before validating it.
  if (root.child("kind").isScalar()) kind = root.child("kind").scalar();
  const KindInfo* info = findKind(kind);
  Field meta = root.child("metadata");
  std::string name = meta.child("name").scalar();
  std::string ns = meta.child("namespace").scalar();
  if (ns.empty()) ns = "default";
  if (!name.empty()) {
    r.setObject(kind + " " + (info && !info->namespaced ? name : ns + "/" + name));
  } else {
    r.setObject(kind);
  }
  MESHLET_SOURCES_TRY(r.string(root.child("apiVersion"), api_version, api_version.empty()));
  MESHLET_SOURCES_TRY(r.string(root.child("kind"), kind, kind.empty()));

  if (!info) {
    return r.error("kind", "unsupported kind " + quote(kind) + " (expected " + kindsText() + ")");
  }
  if (!info->accepts(api_version)) {
    return r.error("apiVersion", quote(api_version) + " is not valid for kind " + kind +
                                     " (expected " + info->versionsText() + ")");
  }
  if (kind == "Namespace") {
    Namespace n;
    MESHLET_SOURCES_TRY(parseNamespace(r, root, origin, n));
    out.namespaces.push_back(std::move(n));
  } else if (kind == "Service") {
    Service s;
    MESHLET_SOURCES_TRY(parseService(r, root, origin, s));
    out.services.push_back(std::move(s));
  } else if (kind == "EndpointSlice") {
    EndpointSlice e;
    MESHLET_SOURCES_TRY(parseEndpointSlice(r, root, origin, e));
    out.endpoint_slices.push_back(std::move(e));
  } else if (kind == "Pod") {
    Pod p;
    MESHLET_SOURCES_TRY(parsePod(r, root, origin, p));
    out.pods.push_back(std::move(p));
  } else if (kind == "AuthorizationPolicy") {
    AuthorizationPolicy p;
    MESHLET_SOURCES_TRY(parseAuthorizationPolicy(r, root, origin, p));
    out.authorization_policies.push_back(std::move(p));
  } else if (kind == "PeerAuthentication") {
    PeerAuthentication p;
    MESHLET_SOURCES_TRY(parsePeerAuthentication(r, root, origin, p));
    out.peer_authentications.push_back(std::move(p));
  } else if (kind == "VirtualService") {
    VirtualService v;
    MESHLET_SOURCES_TRY(parseVirtualService(r, root, origin, v));
    out.virtual_services.push_back(std::move(v));
  } else {
    DestinationRule d;
    MESHLET_SOURCES_TRY(parseDestinationRule(r, root, origin, d));
    out.destination_rules.push_back(std::move(d));
  }
  return Status::Ok();
}

// `kind: List` (kubectl get -o yaml) or a typed list (ServiceList, ... as the API returns it,
// whose items carry no apiVersion/kind).
bool isListKind(const std::string& kind) {
  constexpr std::string_view kSuffix = "List";
  if (kind == kSuffix) return true;
  return kind.size() > kSuffix.size() &&
         std::string_view(kind).substr(kind.size() - kSuffix.size()) == kSuffix &&
         findKind(std::string_view(kind).substr(0, kind.size() - kSuffix.size())) != nullptr;
}

Status parseDocument(const YAML::Node& doc, const std::string& file, int index, Snapshot& out) {
  Reader r(where(file, index));
  Field root(doc, "");
  if (!root.present()) return Status::Ok();  // an empty document
  if (!root.isMap()) return r.error("", "document is not a mapping (got " + root.describe() + ")");
  MESHLET_SOURCES_TRY(r.expectMap(root, true));
  std::string kind;
  MESHLET_SOURCES_TRY(r.string(root.child("kind"), kind, false));
  Origin origin{file, index};
  if (!isListKind(kind)) return parseObject(root, r, origin, "", "", out);

  std::string api_version;
  MESHLET_SOURCES_TRY(r.string(root.child("apiVersion"), api_version, true));
  std::string item_kind = kind == "List" ? "" : kind.substr(0, kind.size() - 4);
  std::string item_version;
  if (!item_kind.empty()) {
    const KindInfo* item_info = findKind(item_kind);
    if (!item_info->accepts(api_version)) {
      return r.error("apiVersion", quote(api_version) + " is not valid for kind " + kind +
                                       " (expected " + item_info->versionsText() + ")");
    }
    item_version = api_version;  // items carry none; they share the list's
  } else if (api_version != "v1") {
    return r.error("apiVersion", quote(api_version) + " is not valid for kind List (expected v1)");
  }
  Field items = root.child("items");
  MESHLET_SOURCES_TRY(r.expectSeq(items, false));
  for (size_t i = 0; i < items.size(); ++i) {
    Reader item_reader(where(file, index, static_cast<int>(i)));
    Field item(items.element(i).node(), "");  // field paths are relative to the item
    if (!item.isMap())
      return item_reader.error("", "item is not a mapping (got " + item.describe() + ")");
    MESHLET_SOURCES_TRY(item_reader.expectMap(item, true));
    std::string nested;
    MESHLET_SOURCES_TRY(item_reader.string(item.child("kind"), nested, false));
    if (isListKind(nested)) return item_reader.error("kind", "a List inside a List");
    MESHLET_SOURCES_TRY(parseObject(item, item_reader, origin, item_version, item_kind, out));
  }
  return Status::Ok();
}

template <typename T>
void appendAll(std::vector<T>& to, std::vector<T>& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

Result<std::string> readFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::fromErrno(path + ": cannot open", errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Error::fromErrno(path + ": cannot stat", err);
  }
  if (st.st_size > kMaxFileBytes) {
    close(fd);
    return Error(path + ": file is larger than " + std::to_string(kMaxFileBytes >> 20) + " MiB",
                 EFBIG);
  }
  std::string text;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return Error::fromErrno(path + ": cannot read", err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > static_cast<size_t>(kMaxFileBytes)) {
      close(fd);
      return Error(path + ": file is larger than " + std::to_string(kMaxFileBytes >> 20) + " MiB",
                   EFBIG);
    }
  }
  close(fd);
  return text;
}

bool isConfigFile(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;  // hidden, and ConfigMap's ..data links
  for (std::string_view ext : {".yaml", ".yml", ".json"}) {
    if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

Status parseObjectNode(const YAML::Node& root, const std::string& where, Snapshot& out,
                       const std::string& api_version, const std::string& kind) {
  Reader r(where);
  Field f(root, "");
  if (!f.isMap()) return r.error("", "object is not a mapping (got " + f.describe() + ")");
  MESHLET_SOURCES_TRY(r.expectMap(f, true));
  return parseObject(f, r, Origin{where, 0}, api_version, kind, out);
}

// Calls fn(document_text, first_line, index) for each YAML document of `text`, in order, with
// the same document model as documentAtLine: a document starts at a `---` marker, or at the
// first content line when none is open, and `...` ends one. Parsing one document at a time
// keeps yaml-cpp's node graph small (a whole 15 MB stream at once costs ~1 GB).
template <typename Fn>
Status forEachDocument(const std::string& text, Fn fn) {
  int index = 0;
  bool open = false, started = false;
  size_t chunk_begin = 0;  // where the current document starts in `text`
  int chunk_line = 0;      // and on which line
  auto flush = [&](size_t until) -> Status {
    if (!started) return Status::Ok();
    started = false;
    return fn(std::string_view(text.data() + chunk_begin, until - chunk_begin), chunk_line, index);
  };
  size_t pos = 0;
  for (int line = 0; pos < text.size(); ++line) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string::npos ? text.size() : end + 1;
    auto [marker, end_marker, content] = classifyLine(
        std::string_view(text.data() + pos, (end == std::string::npos ? text.size() : end) - pos));
    if (marker || (content && !open && !end_marker)) {
      // A new document: the previous one is complete. (Comments and directives before a
      // document are not part of it; yaml-cpp needs neither.)
      MESHLET_SOURCES_TRY(flush(pos));
      ++index;
      started = open = true;
      chunk_begin = pos;
      chunk_line = line;
    } else if (end_marker) {
      MESHLET_SOURCES_TRY(flush(next));
      open = false;
    }
    pos = next;
  }
  return flush(text.size());
}

Status parseYaml(const std::string& text, const std::string& file, Snapshot& out) {
  Snapshot parsed;
  Status st = forEachDocument(
      text, [&](std::string_view doc, int first_line, int index) -> Status {
        YAML::Node node;
        try {
          node = YAML::Load(std::string(doc));
        } catch (const YAML::ParserException& e) {
          if (e.mark.is_null()) return Error(file + ": invalid YAML: " + e.msg);
          int line = first_line + e.mark.line;
          return Error(where(file, documentAtLine(text, line)) + ": invalid YAML at line " +
                       std::to_string(line + 1) + ", column " + std::to_string(e.mark.column + 1) +
                       ": " + e.msg);
        } catch (const std::exception& e) {
          return Error(where(file, index) + ": invalid YAML: " + e.what());
        }
        try {
          return parseDocument(node, file, index, parsed);
        } catch (const std::exception& e) {
          // Not expected (the reader never lets yaml-cpp throw), but never let it escape.
          return Error(where(file, index) + ": " + e.what());
        }
      });
  if (!st) return st;
  forEachKindList(out, parsed, [](auto& to, auto& from) { appendAll(to, from); });
  return Status::Ok();
}

Status validateSnapshot(const Snapshot& s) {
  std::map<std::string, const Origin*> objects;
  auto unique = [&objects](std::string_view kind, const ObjectMeta& m) -> Status {
    std::string name = objectName(kind, m);
    auto [it, inserted] = objects.emplace(name, &m.origin);
    if (inserted) return Status::Ok();
    return Error(originText(m.origin) + ": " + name + ": duplicate object, also defined in " +
                 originText(*it->second));
  };
  for (const Namespace& n : s.namespaces) MESHLET_SOURCES_TRY(unique("Namespace", n.meta));
  for (const Service& v : s.services) MESHLET_SOURCES_TRY(unique("Service", v.meta));
  for (const EndpointSlice& e : s.endpoint_slices) {
    MESHLET_SOURCES_TRY(unique("EndpointSlice", e.meta));
  }
  for (const Pod& p : s.pods) MESHLET_SOURCES_TRY(unique("Pod", p.meta));
  for (const AuthorizationPolicy& p : s.authorization_policies) {
    MESHLET_SOURCES_TRY(unique("AuthorizationPolicy", p.meta));
  }
  for (const PeerAuthentication& p : s.peer_authentications) {
    MESHLET_SOURCES_TRY(unique("PeerAuthentication", p.meta));
  }
  for (const VirtualService& v : s.virtual_services) {
    MESHLET_SOURCES_TRY(unique("VirtualService", v.meta));
  }
  for (const DestinationRule& d : s.destination_rules) {
    MESHLET_SOURCES_TRY(unique("DestinationRule", d.meta));
  }

  std::map<IpAddr, const Service*> cluster_ips;
  for (const Service& v : s.services) {
    for (const IpAddr& ip : v.cluster_ips) {
      auto [it, inserted] = cluster_ips.emplace(ip, &v);
      if (inserted) continue;
      const Service& other = *it->second;
      return Error(originText(v.meta.origin) + ": " + objectName("Service", v.meta) +
                   ": spec.clusterIPs: " + ip.toString() + " is already the cluster IP of " +
                   objectName("Service", other.meta) + " (" + originText(other.meta.origin) + ")");
    }
  }
  // Objects in an undeclared namespace are fine: Kubernetes' "default" need not be declared,
  // and a file set may describe only part of a cluster. EndpointSlices of an absent Service are
  // kept too (Kubernetes allows them; they select nothing).
  return Status::Ok();
}

Result<Snapshot> loadDirectory(const std::string& dir, bool synthesize) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status st = fs::status(dir, ec);
  if (ec) return Error::fromErrno("file source: cannot read directory " + dir, ec.value());
  if (!fs::is_directory(st)) {
    return Error("file source: " + dir + " is not a directory", ENOTDIR);
  }
  std::vector<std::string> names;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!isConfigFile(name)) continue;
    std::error_code entry_ec;
    fs::file_status entry = it->status(entry_ec);  // follows symlinks (ConfigMap volumes)
    if (entry_ec) {
      return Error::fromErrno("file source: " + it->path().string() + ": cannot read",
                              entry_ec.value());
    }
    if (fs::is_directory(entry)) continue;
    names.push_back(name);
  }
  if (ec) return Error::fromErrno("file source: cannot read directory " + dir, ec.value());
  std::sort(names.begin(), names.end());

  Snapshot snapshot;
  for (const std::string& name : names) {
    std::string path = (fs::path(dir) / name).string();
    Result<std::string> text = readFile(path);
    if (!text.ok()) return text.error();
    Status s = parseYaml(*text, path, snapshot);
    if (!s.ok()) return s.error();
  }
  Status valid = validateSnapshot(snapshot);
  if (!valid.ok()) return valid.error();
  if (synthesize) synthesizeEndpointSlices(snapshot);
  return snapshot;
}

}  // namespace meshlet

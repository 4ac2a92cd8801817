#include "cni/conflist_edit.h"

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>
#include <vector>

#include "cni/json_scan.h"

namespace meshlet::cni {
namespace {

using OrderedJson = nlohmann::ordered_json;

struct PluginsArray {
  Span array;
  std::vector<Span> elements;
};

PluginsArray LocatePlugins(std::string_view text) {
  OrderedJson doc;
  try {
    doc = OrderedJson::parse(text);
  } catch (const OrderedJson::exception& e) {
    throw std::runtime_error(std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) throw std::runtime_error("not a JSON object");
  auto it = doc.find("plugins");
  if (it == doc.end() || !it->is_array()) {
    throw std::runtime_error("has no \"plugins\" array, so it is not a .conflist");
  }
  try {
    FoundMember plugins = FindMember(text, DocumentValue(text), "plugins");
    if (!plugins.found) throw ScanError("no \"plugins\" member");
    return {plugins.value, ArrayElements(text, plugins.value)};
  } catch (const ScanError& e) {
    throw std::runtime_error(std::string("cannot scan the JSON text: ") + e.what());
  }
}

std::string_view Slice(std::string_view text, Span span) {
  return text.substr(span.begin, span.size());
}

OrderedJson ParseElement(std::string_view element) {
  return OrderedJson::parse(element, nullptr, /*allow_exceptions=*/false);
}

bool IsMeshletEntry(const OrderedJson& element) {
  if (!element.is_object()) return false;
  auto it = element.find("type");
  return it != element.end() && it->is_string() && it->get<std::string>() == kPluginType;
}

// Index of the first meshlet-cni element, or -1.
int FindMeshletEntry(std::string_view text, const std::vector<Span>& elements) {
  for (size_t i = 0; i < elements.size(); ++i) {
    if (IsMeshletEntry(ParseElement(Slice(text, elements[i])))) return static_cast<int>(i);
  }
  return -1;
}

// How the neighbouring plugin object is formatted, so a new one looks the same.
struct Style {
  bool multiline = false;
  std::string newline = "\n";
  std::string inner_indent;  // before each member (multiline)
  std::string close_indent;  // before the closing brace (multiline)
  std::string colon = ": ";
  std::string comma = ", ";  // between members (single line)
  bool padded = false;       // "{ ... }" (single line)
};

std::string LeadingBlanks(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && (s[n] == ' ' || s[n] == '\t')) ++n;
  return std::string(s.substr(0, n));
}

// The spaces/tabs that start the line an element starts on (empty unless only blanks precede it).
std::string IndentBefore(std::string_view text, size_t begin) {
  size_t start = begin;
  while (start > 0 && (text[start - 1] == ' ' || text[start - 1] == '\t')) --start;
  if (start > 0 && text[start - 1] != '\n') return "";
  return std::string(text.substr(start, begin - start));
}

Style StyleOf(std::string_view text, std::string_view element, const std::string& indent) {
  Style style;
  if (text.find("\r\n") != std::string_view::npos) style.newline = "\r\n";
  size_t colon = element.find("\":");
  if (colon != std::string_view::npos && colon + 2 < element.size()) {
    style.colon = element[colon + 2] == ' ' ? ": " : ":";
  }
  size_t first_nl = element.find('\n');
  style.multiline = first_nl != std::string_view::npos;
  if (!style.multiline) {
    style.padded = element.size() > 2 && element[1] == ' ';
    style.comma = element.find(", ") != std::string_view::npos ? ", " : ",";
    return style;
  }
  std::string unit = indent.find('\t') != std::string::npos ? "\t" : "  ";
  style.inner_indent = LeadingBlanks(element.substr(first_nl + 1));
  if (style.inner_indent.size() <= indent.size()) style.inner_indent = indent + unit;
  size_t last_nl = element.rfind('\n');
  std::string close = LeadingBlanks(element.substr(last_nl + 1));
  style.close_indent = last_nl + 1 + close.size() == element.size() - 1 ? close : indent;
  return style;
}

std::string Render(const OrderedJson& object, const Style& style) {
  std::string out = "{";
  size_t i = 0;
  for (const auto& [key, value] : object.items()) {
    std::string member = OrderedJson(key).dump() + style.colon + value.dump();
    if (style.multiline) {
      out += style.newline + style.inner_indent + member;
      if (++i < object.size()) out += ",";
    } else {
      if (i++ > 0) out += style.comma;
      out += (i == 1 && style.padded ? " " : "") + member;
    }
  }
  if (style.multiline) {
    out += style.newline + style.close_indent;
  } else if (style.padded) {
    out += " ";
  }
  return out + "}";
}

bool SettingsMatch(const OrderedJson& entry, const PluginEntrySettings& settings) {
  auto socket = entry.find("socketPath");
  bool socket_ok = socket == entry.end()
                       ? settings.socket_path == kDefaultSocketPath
                       : socket->is_string() && socket->get<std::string>() == settings.socket_path;
  auto fail_open = entry.find("failOpen");
  bool fail_open_ok = fail_open == entry.end()
                          ? !settings.fail_open
                          : fail_open->is_boolean() && fail_open->get<bool>() == settings.fail_open;
  return socket_ok && fail_open_ok;
}

}  // namespace

std::string AddPluginEntry(std::string_view text, const PluginEntrySettings& settings) {
  PluginsArray plugins = LocatePlugins(text);
  const std::vector<Span>& elements = plugins.elements;
  if (elements.empty()) {
    throw std::runtime_error(
        "has an empty \"plugins\" list; meshlet-cni must be chained after a primary plugin");
  }
  std::string out(text);
  int existing = FindMeshletEntry(text, elements);
  if (existing >= 0) {
    Span span = elements[existing];
    OrderedJson entry = ParseElement(Slice(text, span));
    if (SettingsMatch(entry, settings)) return out;
    entry["socketPath"] = settings.socket_path;
    entry["failOpen"] = settings.fail_open;
    Style style = StyleOf(text, Slice(text, span), IndentBefore(text, span.begin));
    return out.replace(span.begin, span.size(), Render(entry, style));
  }

  // The separator goes between the last element and the new one: the one already used between
  // the last two elements, else a comma and the whitespace that precedes the first element.
  const Span& last = elements.back();
  std::string separator;
  if (elements.size() >= 2) {
    separator = std::string(text.substr(elements[elements.size() - 2].end,
                                        last.begin - elements[elements.size() - 2].end));
  } else {
    std::string_view ws =
        text.substr(plugins.array.begin + 1, last.begin - plugins.array.begin - 1);
    separator = "," + (ws.empty() ? std::string(" ") : std::string(ws));
  }
  size_t nl = separator.rfind('\n');
  std::string indent = nl == std::string::npos ? "" : LeadingBlanks(separator.substr(nl + 1));
  OrderedJson entry = OrderedJson::object();
  entry["type"] = kPluginType;
  entry["socketPath"] = settings.socket_path;
  entry["failOpen"] = settings.fail_open;
  Style style = StyleOf(text, Slice(text, last), indent);
  return out.insert(last.end, separator + Render(entry, style));
}

std::string RemovePluginEntry(std::string_view text) {
  std::string out(text);
  while (true) {
    PluginsArray plugins;
    try {
      plugins = LocatePlugins(out);
    } catch (const std::runtime_error&) {
      return out;
    }
    const std::vector<Span>& e = plugins.elements;
    int i = FindMeshletEntry(out, e);
    if (i < 0) return out;
    if (i > 0) {  // the separator before it went in with it
      out.erase(e[i - 1].end, e[i].end - e[i - 1].end);
    } else if (e.size() > 1) {  // first of several: take the separator after it
      out.erase(e[0].begin, e[1].begin - e[0].begin);
    } else {
      out.erase(e[0].begin, e[0].size());
    }
  }
}

bool HasPluginEntry(std::string_view text) {
  try {
    PluginsArray plugins = LocatePlugins(text);
    return FindMeshletEntry(text, plugins.elements) >= 0;
  } catch (const std::runtime_error&) {
    return false;
  }
}

}  // namespace meshlet::cni

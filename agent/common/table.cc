#include "agent/common/table.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <vector>

namespace meshlet {

namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kColumnGap = "   ";
constexpr const char* kEmptyCell = "-";

std::string formatFloat(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  std::string s = buf;
  // Trim trailing zeros of the fraction, and the dot when nothing is left of it.
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

// Display width of UTF-8 text: counts code points, not bytes (close enough for the ASCII and
// occasional non-ASCII names this renders).
size_t displayWidth(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

void appendPadded(std::string& out, const std::string& s, size_t width) {
  out += s;
  size_t w = displayWidth(s);
  if (w < width) out.append(width - w, ' ');
}

// Lines of a table given header and rows of cells; no trailing whitespace.
std::string renderGrid(const std::vector<std::string>& headers,
                       const std::vector<std::vector<std::string>>& cells) {
  std::vector<size_t> widths(headers.size(), 0);
  for (size_t c = 0; c < headers.size(); ++c) widths[c] = displayWidth(headers[c]);
  for (const auto& row : cells) {
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], displayWidth(row[c]));
    }
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string out;
    for (size_t c = 0; c < headers.size(); ++c) {
      const std::string& cell = c < row.size() ? row[c] : std::string(kEmptyCell);
      if (c + 1 == headers.size()) {
        out += cell;
      } else {
        appendPadded(out, cell, widths[c]);
        out += kColumnGap;
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
    return out;
  };
  std::string out = line(headers);
  for (const auto& row : cells) out += line(row);
  return out;
}

std::string indentLines(const std::string& text, int indent) {
  if (indent <= 0) return text;
  std::string pad(static_cast<size_t>(indent), ' ');
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out += pad;
    out.append(text, start, end - start);
    out += '\n';
    start = end + 1;
  }
  return out;
}

bool isArrayOfObjects(const Json& v) {
  return v.is_array() &&
         std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_object(); });
}

}  // namespace

std::string tableHeader(const std::string& key) {
  std::string out = key;
  for (char& c : out) {
    c = c == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string fieldLabel(const std::string& key) {
  std::string out = key;
  for (char& c : out) {
    if (c == '_') c = ' ';
  }
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

std::string cellText(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return kEmptyCell;
    case Json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      return s.empty() ? std::string(kEmptyCell) : s;
    }
    case Json::value_t::boolean:
      return value.get<bool>() ? "yes" : "no";
    case Json::value_t::number_integer:
      return std::to_string(value.get<int64_t>());
    case Json::value_t::number_unsigned:
      return std::to_string(value.get<uint64_t>());
    case Json::value_t::number_float:
      return formatFloat(value.get<double>());
    case Json::value_t::array: {
      if (value.empty()) return kEmptyCell;
      std::string out;
      for (const auto& e : value) {
        if (!out.empty()) out += ',';
        out += e.is_string() ? e.get_ref<const std::string&>() : cellText(e);
      }
      return out;
    }
    default:
      return value.dump();
  }
}

std::string renderTable(const Json& rows) {
  if (rows.is_array() && rows.empty()) return "No resources found.\n";
  if (!isArrayOfObjects(rows)) {
    std::vector<std::vector<std::string>> cells;
    if (rows.is_array()) {
      for (const auto& e : rows) cells.push_back({cellText(e)});
    } else {
      cells.push_back({cellText(rows)});
    }
    return renderGrid({"VALUE"}, cells);
  }
  std::vector<std::string> keys;
  for (const auto& row : rows) {
    for (const auto& item : row.items()) {
      if (std::find(keys.begin(), keys.end(), item.key()) == keys.end()) {
        keys.push_back(item.key());
      }
    }
  }
  if (keys.empty()) return "No resources found.\n";
  std::vector<std::string> headers;
  headers.reserve(keys.size());
  for (const auto& k : keys) headers.push_back(tableHeader(k));
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size());
  for (const auto& row : rows) {
    std::vector<std::string> line;
    line.reserve(keys.size());
    for (const auto& k : keys) {
      auto it = row.find(k);
      line.push_back(it == row.end() ? std::string(kEmptyCell) : cellText(*it));
    }
    cells.push_back(std::move(line));
  }
  return renderGrid(headers, cells);
}

std::string renderObject(const Json& object, int indent) {
  if (!object.is_object()) return indentLines(cellText(object) + "\n", indent);
  // Width of the label column: over the scalar fields only (nested blocks stand alone).
  size_t width = 0;
  for (const auto& item : object.items()) {
    width = std::max(width, displayWidth(fieldLabel(item.key())) + 1);
  }
  std::string out;
  for (const auto& item : object.items()) {
    std::string label = fieldLabel(item.key()) + ":";
    const Json& v = item.value();
    if (v.is_array() && !v.empty() && isArrayOfObjects(v)) {
      out += label + "\n";
      out += indentLines(renderTable(v), 2);
    } else if (v.is_object() && !v.empty()) {
      out += label + "\n";
      out += renderObject(v, 2);
    } else {
      std::string line;
      appendPadded(line, label, width);
      line += kColumnGap;
      line += cellText(v);
      out += line + "\n";
    }
  }
  return indentLines(out, indent);
}

}  // namespace meshlet

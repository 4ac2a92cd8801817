#pragma once
// Human-readable rendering of the admin API's JSON: aligned tables (kubectl style) for arrays of
// objects and a key/value listing for single objects. Pure functions, no I/O.
#include <string>

#include <nlohmann/json.hpp>

namespace meshlet {

// "bytes_sent" -> "BYTES SENT".
std::string tableHeader(const std::string& key);

// "node_name" -> "Node name".
std::string fieldLabel(const std::string& key);

// One value as table cell text: strings as is ("" and null as "-"), booleans as yes/no,
// integers in decimal, floats with at most two decimals, arrays joined with ",", objects as
// compact JSON.
std::string cellText(const nlohmann::ordered_json& value);

// An array of objects as an aligned table. Columns are the keys in the order of the first
// object, followed by keys that only later objects have; a row lacking a key shows "-".
// Columns are separated by three spaces, there is no trailing whitespace and every line ends
// with '\n'. An empty array renders "No resources found.\n". A non-array (or an array with
// non-object elements) is rendered as a single VALUE column.
std::string renderTable(const nlohmann::ordered_json& rows);

// A single object as "Label:   value" lines with aligned values. A nested array of objects is
// rendered as an indented sub-table below its label, a nested object as indented key/values.
std::string renderObject(const nlohmann::ordered_json& object, int indent = 0);

}  // namespace meshlet

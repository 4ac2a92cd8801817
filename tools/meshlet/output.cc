#include <iostream>

#include "agent/common/table.h"
#include "tools/meshlet/cli.h"

namespace meshlet::cli {

int printRows(const nlohmann::ordered_json& rows, const GlobalOptions& opts) {
  if (opts.output == "json") {
    std::cout << (rows.is_array() ? rows : nlohmann::ordered_json::array({rows})).dump(2) << "\n";
  } else {
    std::cout << renderTable(rows);
  }
  std::cout.flush();
  return 0;
}

int printObject(const nlohmann::ordered_json& object, const GlobalOptions& opts) {
  if (opts.output == "json") {
    std::cout << nlohmann::ordered_json::array({object}).dump(2) << "\n";
  } else {
    std::cout << renderObject(object);
  }
  std::cout.flush();
  return 0;
}

int fail(const Error& error) {
  std::cerr << "meshlet: " << error.message() << "\n";
  return 1;
}

}  // namespace meshlet::cli

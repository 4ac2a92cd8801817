#include <iostream>

#include "tools/meshlet/cli.h"

namespace meshlet::cli {

void addVersionCommand(CLI::App& app, Action& action) {
  app.add_subcommand("version", "Print the CLI version")->callback([&action] {
    action = [] {
      std::cout << "meshlet " << kVersion << "\n";
      return 0;
    };
  });
}

}  // namespace meshlet::cli

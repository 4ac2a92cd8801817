// meshlet-cni: the chained CNI plugin (run by the container runtime with CNI_* in the
// environment and the network configuration on stdin), and its installer
// (`meshlet-cni install|uninstall`, run by the agent DaemonSet's init container).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>

#include "cni/installer.h"
#include "cni/plugin.h"

namespace {

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

std::string ReadStdin() {
  std::string data;
  char buf[65536];
  while (true) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return data;
    data.append(buf, static_cast<size_t>(n));
  }
}

int RunInstaller(int argc, char** argv) {
  meshlet::cni::InstallOptions options;
  CLI::App app{"meshlet-cni: chained CNI plugin of the meshlet service mesh"};
  app.require_subcommand(1);
  CLI::App* install = app.add_subcommand(
      "install", "copy meshlet-cni into the CNI bin dir and chain it in the primary .conflist");
  CLI::App* uninstall =
      app.add_subcommand("uninstall", "undo install: remove the plugin entry and the binary");
  for (CLI::App* sub : {install, uninstall}) {
    sub->add_option("--bin-dir", options.bin_dir, "CNI binary directory")->capture_default_str();
    sub->add_option("--conf-dir", options.conf_dir, "CNI configuration directory")
        ->capture_default_str();
  }
  install->add_option("--socket", options.settings.socket_path, "agent's CNI socket")
      ->capture_default_str();
  install->add_flag("--fail-open", options.settings.fail_open,
                    "let pods start without the mesh when the agent is unreachable");
  CLI11_PARSE(app, argc, argv);
  if (install->parsed()) return meshlet::cni::Install(options, std::cout, std::cerr);
  return meshlet::cni::Uninstall(options, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2) {
    std::string_view first = argv[1];
    if (first == "install" || first == "uninstall" || first == "--help" || first == "-h") {
      return RunInstaller(argc, argv);
    }
  }
  auto env = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value == nullptr ? "" : value);
  };
  // The runtime always pipes the configuration in (VERSION too); a person at a terminal who runs
  // the binary by hand is not left waiting for input.
  std::string stdin_data = isatty(STDIN_FILENO) ? "" : ReadStdin();
  meshlet::cni::PluginOutcome outcome = meshlet::cni::RunPlugin(env, stdin_data);
  WriteAll(STDERR_FILENO, outcome.err);
  WriteAll(STDOUT_FILENO, outcome.out);
  return outcome.exit_code;
}

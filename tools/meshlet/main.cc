// meshlet: the CLI. Shows what the node's agent and datapath are doing.
#include <CLI/CLI.hpp>

#include "agent/admin/client.h"
#include "tools/meshlet/cli.h"

int main(int argc, char** argv) {
  using namespace meshlet::cli;  // NOLINT(build/namespaces)
  CLI::App app{"meshlet: inspect the meshlet agent and its eBPF datapath on this node", "meshlet"};
  app.set_version_flag("--version", std::string("meshlet ") + kVersion);
  app.require_subcommand(1);
  // Global options may also follow the subcommand (`meshlet bpf maps --bpffs DIR`); subcommands
  // created below inherit this.
  app.fallthrough();

  GlobalOptions opts;
  opts.admin_socket = meshlet::kDefaultAdminSocket;
  opts.bpffs = kDefaultBpffs;
  app.add_option("--admin-socket", opts.admin_socket, "Unix socket of meshletd's admin API")
      ->capture_default_str();
  app.add_option("--bpffs", opts.bpffs, "bpffs directory holding meshlet's pinned objects")
      ->capture_default_str();
  app.add_option("-o,--output", opts.output, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  Action action;
  addAgentCommands(app, opts, action);
  addBpfCommands(app, opts, action);
  addCaCommands(app, opts, action);
  addVersionCommand(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return action ? action() : 2;
}

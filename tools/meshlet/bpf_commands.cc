// Commands that read the pinned BPF objects directly (work while the agent is down).
#include "agent/datapath/pin_info.h"
#include "tools/meshlet/cli.h"

namespace meshlet::cli {

void addBpfCommands(CLI::App& app, const GlobalOptions& opts, Action& action) {
  auto* bpf = app.add_subcommand("bpf", "Inspect the pinned BPF datapath (no agent needed)");
  bpf->require_subcommand(1);

  auto* maps = bpf->add_subcommand("maps", "Pinned maps: type, sizes, entries");
  maps->callback([&opts, &action] {
    action = [&opts] {
      auto maps = listPinnedMaps(opts.bpffs);
      if (!maps) return fail(maps.error());
      return printRows(pinnedMapsJson(*maps), opts);
    };
  });

  auto* progs = bpf->add_subcommand("progs", "Pinned links and sockmap programs");
  progs->callback([&opts, &action] {
    action = [&opts] {
      auto progs = listPinnedLinks(opts.bpffs);
      if (!progs) return fail(progs.error());
      return printRows(pinnedProgsJson(*progs), opts);
    };
  });
}

}  // namespace meshlet::cli

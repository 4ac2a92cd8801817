// meshletd: flags -> agent -> run. Nothing else lives here.
#include <malloc.h>

#include <csignal>
#include <cstdio>

#include "agent/common/log.h"
#include "agent/config/flags.h"
#include "agent/datapath/datapath.h"
#include "agent/server/agent.h"

namespace {
meshlet::Agent* g_agent = nullptr;
void onSignal(int) {
  if (g_agent) g_agent->stop();
}
}  // namespace

int main(int argc, char** argv) {
  auto flags = meshlet::parseAgentFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(flags.error().code() == 0 ? stdout : stderr, "%s\n",
                 flags.error().message().c_str());
    return flags.error().code();
  }
  const auto& f = *flags;
  meshlet::setLogLevel(f.log_level == "debug"  ? meshlet::LogLevel::kDebug
                       : f.log_level == "warn" ? meshlet::LogLevel::kWarn
                       : f.log_level == "error" ? meshlet::LogLevel::kError
                                                : meshlet::LogLevel::kInfo);
  if (f.uninstall) {
    meshlet::DatapathOptions opts;
    opts.bpffs_dir = f.bpffs;
    if (auto st = meshlet::Datapath::uninstall(opts); !st) {
      meshlet::logError("uninstall: " + st.error().message());
      return 1;
    }
    std::remove(f.admin_socket.c_str());
    meshlet::logInfo("uninstalled: programs detached, pins under " + f.bpffs + " removed");
    return 0;
  }
  // A sync builds tables of a few MB each (one entry per endpoint) and frees the previous ones.
  // glibc's adaptive policy alternates between serving such blocks with fresh mmaps and
  // trimming the heap, so every other sync faults all its tables in anew (page faults cost up
  // to 20 us each on some VMs: a 100 000-endpoint translation took 30 or 150 ms by turns).
  // Fixed thresholds keep those blocks in the heap and reuse its pages from sync to sync;
  // free memory beyond 32 MB at the heap's top still goes back to the kernel.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
  meshlet::Agent agent(f);
  g_agent = &agent;
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int rc = agent.run();
  g_agent = nullptr;
  return rc;
}

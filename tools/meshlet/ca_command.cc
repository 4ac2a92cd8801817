// `meshlet ca init`: the built-in CA's root certificate and key, for the
// embedded default (on a cluster, put the same two files in the Secret the
// chart mounts at --ca-dir).
#include <chrono>
#include <memory>

#include "agent/common/log.h"
#include "agent/config/flags.h"
#include "agent/tls/ca.h"
#include "tools/meshlet/cli.h"

namespace meshlet::cli {

void addCaCommands(CLI::App& app, const GlobalOptions& opts, Action& action) {
  auto* ca = app.add_subcommand("ca", "The built-in certificate authority");
  ca->require_subcommand(1);
  auto* init = ca->add_subcommand("init",
                                  "Write a new root certificate (ca-cert.pem) "
                                  "and key (ca-key.pem, mode 0600)");
  struct Args {
    tls::CaInitOptions ca;
    std::string validity = "87600h";
  };
  auto args = std::make_shared<Args>();
  args->ca.dir = "/etc/meshlet/ca";
  init->add_option("--dir", args->ca.dir, "directory to write (meshletd's --ca-dir)")
      ->capture_default_str();
  init->add_option("--trust-domain", args->ca.trust_domain, "SPIFFE trust domain of the root")
      ->capture_default_str();
  init->add_option("--validity", args->validity, "lifetime of the root, e.g. 87600h (10 years)")
      ->capture_default_str();
  init->add_flag("--force", args->ca.force,
                 "replace an existing CA (keep the old root in "
                 "trust-bundle.pem while workloads "
                 "move to the new one)");
  init->callback([&opts, &action, args] {
    action = [&opts, args] {
      auto validity = parseDurationSeconds(args->validity);
      if (!validity.ok()) return fail(validity.error().wrap("--validity"));
      args->ca.validity_seconds = *validity;
      int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
      auto info = tls::initCa(args->ca, now);
      if (!info.ok()) return fail(info.error());
      return printObject({{"dir", args->ca.dir},
                          {"subject", info->subject},
                          {"serial", info->serial},
                          {"trust_domain", args->ca.trust_domain},
                          {"not_after", unixToRfc3339(info->not_after)}},
                         opts);
    };
  });
}

}  // namespace meshlet::cli

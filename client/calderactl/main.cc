// calderactl: command-line client of Caldera Service.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"

namespace caldera::cli {

void AddVersionCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand("version", "Print the version and exit");
  cmd->callback([exit_code] {
    std::printf("calderactl %s\n", CALDERA_VERSION);
    *exit_code = kExitOk;
  });
}

}  // namespace caldera::cli

int main(int argc, char** argv) {
  CLI::App app{
      "calderactl: compress LLMs with CALDERA (W = Q + L*R) and manage compression jobs.\n"
      "Exit codes: 0 succeeded, 2 invalid input (also: not authenticated, permission\n"
      "denied), 3 job failed, 4 cancelled, 75 temporarily unavailable (retry), 1 internal\n"
      "error. Tokens and TLS: --token-file / $CALDERA_TOKEN, --tls-ca (docs/security.md)."};
  app.require_subcommand(1);
  int exit_code = caldera::cli::kExitOk;
  caldera::cli::AddVersionCommand(app, &exit_code);
  caldera::cli::AddCalibrateCommand(app, &exit_code);
  caldera::cli::AddEvalCommand(app, &exit_code);
  caldera::cli::AddMakeTestModelCommand(app, &exit_code);
  caldera::cli::AddDecomposeCommand(app, &exit_code);
  caldera::cli::AddFineTuneCommand(app, &exit_code);
  caldera::cli::AddExportCommand(app, &exit_code);
  caldera::cli::AddTokenizeCommand(app, &exit_code);
#ifdef CALDERA_HAS_SERVICE
  caldera::cli::AddCompressCommand(app, &exit_code);
  caldera::cli::AddSubmitCommand(app, &exit_code);
  caldera::cli::AddStatusCommand(app, &exit_code);
  caldera::cli::AddListCommand(app, &exit_code);
  caldera::cli::AddWatchCommand(app, &exit_code);
  caldera::cli::AddCancelCommand(app, &exit_code);
  caldera::cli::AddSweepCommand(app, &exit_code);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : caldera::cli::kExitInvalidInput;
  }
  return exit_code;
}

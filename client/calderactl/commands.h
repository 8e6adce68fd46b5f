// Subcommands of calderactl. Each Add*Command registers one subcommand on `app`;
// when it runs, its callback stores the process exit code in `*exit_code`.
#ifndef CALDERA_CLIENT_CALDERACTL_COMMANDS_H_
#define CALDERA_CLIENT_CALDERACTL_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace caldera::cli {

void AddVersionCommand(CLI::App& app, int* exit_code);
void AddCalibrateCommand(CLI::App& app, int* exit_code);
void AddEvalCommand(CLI::App& app, int* exit_code);
void AddMakeTestModelCommand(CLI::App& app, int* exit_code);
void AddDecomposeCommand(CLI::App& app, int* exit_code);
void AddFineTuneCommand(CLI::App& app, int* exit_code);
// Built with the service parts (CALDERA_HAS_SERVICE):
void AddCompressCommand(CLI::App& app, int* exit_code);
void AddSubmitCommand(CLI::App& app, int* exit_code);
void AddStatusCommand(CLI::App& app, int* exit_code);
void AddListCommand(CLI::App& app, int* exit_code);
void AddWatchCommand(CLI::App& app, int* exit_code);
void AddCancelCommand(CLI::App& app, int* exit_code);
void AddSweepCommand(CLI::App& app, int* exit_code);
void AddExportCommand(CLI::App& app, int* exit_code);
void AddTokenizeCommand(CLI::App& app, int* exit_code);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_COMMANDS_H_

// The console side of `vit train`: a progress reporter that draws on the terminal, and the
// SIGINT / SIGTERM handling that asks training to stop.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "vit/train.hpp"

namespace vit_cli {

// Progress bar on stderr when it is a terminal (redrawn at most 10 times a second); epoch lines
// and messages (passed through `wording`, which names the CLI's options) on stdout. Its
// stop_requested() answers whether SIGINT or SIGTERM arrived (install_stop_signals). quiet: prints
// nothing (a distributed run's ranks but the first).
std::unique_ptr<vit::TrainReporter> make_console_reporter(
    std::function<std::string(const std::string&)> wording, bool quiet = false);

// The first SIGINT / SIGTERM only records itself (training stops after the current step and
// saves); a second one ends the process at once (the files on disk are whole either way: every
// write is atomic). stop_signal() is the recorded signal, or 0.
void install_stop_signals();
int stop_signal();

}  // namespace vit_cli

// SIGINT / SIGTERM during training: the first asks for a clean stop, the second kills at once.
#include <csignal>

#include "vit/train.hpp"

namespace vit {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  if (g_signal != 0) {
    std::signal(sig, SIG_DFL);  // second signal: the default action, now
    std::raise(sig);
    return;
  }
  g_signal = sig;
}

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() {
  return g_signal;
}

}  // namespace vit

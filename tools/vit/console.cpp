// The console side of `vit train`: progress (a bar with ETA redrawn on stderr when it is a
// terminal, nothing when it is not; every epoch's summary on stdout) and SIGINT / SIGTERM
// handling.
#include "console.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>

namespace vit_cli {

using vit::EpochMetrics;
using vit::StepProgress;
using vit::TrainReporter;

namespace {

std::string format_duration(double seconds) {
  const long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

// "=====>      ": done of total in 24 characters.
std::string bar(int64_t done, int64_t total) {
  constexpr int kWidth = 24;
  const int filled = int(kWidth * std::min(done, total) / std::max<int64_t>(total, 1));
  std::string b(size_t(filled), '=');
  if (filled < kWidth) b += '>' + std::string(size_t(kWidth - filled - 1), ' ');
  return b;
}

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  if (g_signal != 0) {
    std::signal(sig, SIG_DFL);  // second signal: the default action, now
    std::raise(sig);
    return;
  }
  g_signal = sig;
}

class ConsoleReporter : public TrainReporter {
 public:
  ConsoleReporter(std::function<std::string(const std::string&)> wording, bool quiet)
      : tty_(isatty(STDERR_FILENO) == 1 && !quiet), quiet_(quiet), wording_(std::move(wording)) {}

  void message(const std::string& line) override {
    if (quiet_) return;
    clear_bar();
    std::printf("%s\n", wording_(line).c_str());
    std::fflush(stdout);
  }

  void step(const StepProgress& p) override {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (p.step != p.steps && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    std::fprintf(
        stderr, "\r\033[Kepoch %d/%d [%s] %lld/%lld  loss %.4f  acc %.2f%%  %.0f img/s  ETA %s",
        p.epoch, p.epochs, bar(p.step, p.steps).c_str(), (long long)p.step, (long long)p.steps,
        p.loss, 100 * p.acc, p.img_per_s, format_duration(p.eta_seconds).c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  void progress(const std::string& what, int64_t done, int64_t total) override {
    if (!tty_ || total <= 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (done == 0 || what != progress_what_) {
      progress_what_ = what;
      progress_start_ = now;
    }
    if (done < total && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double seconds = std::chrono::duration<double>(now - progress_start_).count();
    const double eta = done > 0 ? seconds * double(total - done) / double(done) : 0;
    std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld  ETA %s", what.c_str(),
                 bar(done, total).c_str(), (long long)done, (long long)total,
                 format_duration(eta).c_str());
    std::fflush(stderr);
    drawn_ = true;
    if (done >= total) clear_bar();
  }

  bool stop_requested() override { return stop_signal() != 0; }

  void epoch(const EpochMetrics& m, int epochs) override {
    if (quiet_) return;
    clear_bar();
    char val[64] = "", test[64] = "", wait[48] = "";
    if (m.val_acc) {
      std::snprintf(val, sizeof val, "  val loss %.4f acc %.2f%%", *m.val_loss, 100 * *m.val_acc);
    }
    if (m.test_acc) {  // (not in the epochs eval_every skips)
      std::snprintf(test, sizeof test, "  test loss %.4f acc %.2f%%", *m.test_loss,
                    100 * *m.test_acc);
    }
    if (m.wait_share > 0) {
      std::snprintf(wait, sizeof wait, "  (%.0f%% waiting for other ranks)", 100 * m.wait_share);
    }
    std::printf("epoch %d/%d  train loss %.4f acc %.2f%%%s%s  lr %.2e  %.1f s  %.0f img/s%s\n",
                m.epoch, epochs, m.train_loss, 100 * m.train_acc, val, test, m.lr, m.seconds,
                m.img_per_s, wait);
    std::fflush(stdout);
  }

 private:
  void clear_bar() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }
  bool tty_, quiet_;
  std::function<std::string(const std::string&)> wording_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{}, progress_start_{};
  std::string progress_what_;
};

}  // namespace

std::unique_ptr<TrainReporter> make_console_reporter(
    std::function<std::string(const std::string&)> wording, bool quiet) {
  return std::make_unique<ConsoleReporter>(std::move(wording), quiet);
}

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

}  // namespace vit_cli

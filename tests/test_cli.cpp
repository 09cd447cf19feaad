// The `vit` tool as a user runs it: help, exit codes (0 ok, 1 runtime error, 2 usage error),
// messages that name the problem, and a train -> eval -> predict -> info round on generated data.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "idx_writer.hpp"
#include "test_util.hpp"
#include "vit/image.hpp"
#include "vit/isa.hpp"
#include "vit/safetensors.hpp"

namespace vit::test {
namespace {

// The `vit` processes tests start keep decoded folder images in a directory of this test
// process's (removed at the end), not in the user's ~/.cache/vitcpp.
class ImageCacheEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("cli-image-cache");
    ::setenv("VIT_CACHE", dir_->path.c_str(), 1);
  }
  void TearDown() override { dir_.reset(); }

 private:
  std::unique_ptr<TempDir> dir_;
};
[[maybe_unused]] const auto* const kImageCache =
    ::testing::AddGlobalTestEnvironment(new ImageCacheEnvironment);

#define EXPECT_RUN(ARGS, EXIT_CODE, PHRASE)                               \
  do {                                                                    \
    const std::string args_ = (ARGS);                                     \
    const Result r_ = vit(args_);                                         \
    EXPECT_EQ(r_.code, (EXIT_CODE)) << "vit " << args_ << "\n" << r_.out; \
    EXPECT_NE(r_.out.find(PHRASE), std::string::npos)                     \
        << "vit " << args_ << ": output lacks '" << (PHRASE) << "':\n"    \
        << r_.out;                                                        \
  } while (0)

TEST(Cli, HelpAndVersion) {
  EXPECT_RUN("--help", 0, "train");
  EXPECT_RUN("--version", 0, "vit 0.");
  for (const char* cmd : {"train", "eval", "predict", "info"}) {
    EXPECT_RUN(std::string(cmd) + " --help", 0, "--");
  }
  EXPECT_RUN("train --help", 0, "tiny28");
}

// The kernels in use are named by info, bench --json and train; VIT_ISA forces them, and one that
// is unknown (or that this CPU cannot run) is a usage error.
TEST(Cli, ReportsAndChoosesTheKernels) {
  EXPECT_RUN("info --preset tiny28", 0, std::string("kernels:     ") + isa_name(active_isa()));
  EXPECT_RUN("info --preset tiny28 --json", 0,
             std::string("\"isa\":\"") + isa_name(active_isa()) + "\"");
  for (Isa isa : supported_isas()) {
    EXPECT_RUN(std::string("VIT_ISA=") + isa_name(isa) +
                   " bench --preset seed --batch 4 --steps 1 --warmup 0 --json",
               0, std::string("\"isa\":\"") + isa_name(isa) + "\"");
  }
  EXPECT_RUN("VIT_ISA=avx3 info --preset tiny28", 2, "unknown instruction set 'avx3'");
  if (supported_isas().back() != Isa::kAvx512) {
    EXPECT_RUN("VIT_ISA=avx512 info --preset tiny28", 2, "cannot run the avx512 kernels");
  }
}

// A mistyped command line under an MPI launcher: every rank exits with 2, the first alone says
// why (the launcher's variables tell the rank before MPI starts).
TEST(Cli, CommandLineMistakesAreSaidOnceUnderALauncher) {
  for (const char* mistake : {"train --epochz 3", "trian", "--bogus"}) {
    SCOPED_TRACE(mistake);
    const Result first = vit(std::string("OMPI_COMM_WORLD_RANK=0 ") + mistake);
    EXPECT_EQ(first.code, 2);
    EXPECT_NE(first.out.find("vit: "), std::string::npos) << first.out;
    for (const char* other : {"OMPI_COMM_WORLD_RANK=1", "PMIX_RANK=2", "PMI_RANK=3",
                              "SLURM_STEP_NUM_TASKS=4 SLURM_PROCID=3"}) {
      const Result r = vit(std::string(other) + " " + mistake);
      EXPECT_EQ(r.code, 2) << other;
      EXPECT_EQ(r.out, "") << other;
    }
    // A batch script's own SLURM_PROCID is no launcher's rank.
    const Result batch = vit(std::string("SLURM_PROCID=3 ") + mistake);
    EXPECT_EQ(batch.code, 2);
    EXPECT_NE(batch.out.find("vit: "), std::string::npos) << batch.out;
  }
}

TEST(Cli, UsageErrorsExitTwoAndNameTheFlag) {
  EXPECT_RUN("", 2, "subcommand");
  EXPECT_RUN("frobnicate", 2, "frobnicate");
  EXPECT_RUN("--bogus", 2, "vit: unknown option '--bogus'");
  EXPECT_RUN("train --data mnist --out /tmp/x --bogus", 2, "--bogus");
  EXPECT_RUN("train --data mnist --out /tmp/x --batch 0", 2, "--batch");
  EXPECT_RUN("train --data mnist --out /tmp/x --epochs 0", 2, "--epochs");
  EXPECT_RUN("train --data mnist --out /tmp/x --lr -1", 2, "--lr");
  EXPECT_RUN("train --data mnist --out /tmp/x --threads 0", 2, "--threads");
  EXPECT_RUN("train --data mnist --out /tmp/x --seed -1", 2, "--seed");
  EXPECT_RUN("train --data mnist --out /tmp/x --weight-decay nan", 2, "weight");
  EXPECT_RUN("train --data mnist --out /tmp/x --batch many", 2, "--batch");
  EXPECT_RUN("train --data mnist --out /tmp/x --heads 5", 2, "heads");
  EXPECT_RUN("train --data mnist --out /tmp/x --patch 5", 2, "patch_size");
  EXPECT_RUN("train --data mnist --out /tmp/x --pos fourier", 2, "--pos");
  EXPECT_RUN("train --data mnist --out /tmp/x --patch-drop 1", 2, "--patch-drop");
  EXPECT_RUN("train --data mnist --out /tmp/x --full-token-epochs -1", 2, "--full-token-epochs");
  EXPECT_RUN("train --data mnist --out /tmp/x --timeout nan", 2,
             "vit: --timeout: must be a finite number (got nan)");
  EXPECT_RUN("train --data mnist --out /tmp/x --timeout 0", 2, "--timeout: must be in [1, ");
  EXPECT_RUN("report /tmp/x --out /tmp/x/last.train.safetensors", 2, "name it NAME.html");
  EXPECT_RUN("train --data mnist --out /tmp/x --preset huge", 2, "unknown preset");
  // Near misses get the nearest name; every message starts with "vit:".
  EXPECT_RUN("train --data mnist --out /tmp/x --preset tiny_28", 2,
             "vit: unknown preset 'tiny_28'; did you mean 'tiny28'?");
  EXPECT_RUN("train --data mnsit --out /tmp/x", 2,
             "vit: unknown dataset 'mnsit'; did you mean 'mnist'?");
  EXPECT_RUN("tran", 2, "vit: unknown command 'tran'; did you mean 'train'?");
  EXPECT_RUN("train --data mnist --out /tmp/x --epoch 3", 2, "did you mean '--epochs'?");
  EXPECT_RUN("train --data mnist --out /tmp/x --epochs three", 2,
             "vit: --epochs: must be an integer (got 'three')");
  // A range reads in a refusal as --help shows it, for settings and for the commands' own options.
  EXPECT_RUN("train --help", 0, "--epochs INT in [1, 100000]");
  EXPECT_RUN("train --data mnist --out /tmp/x --epochs 0", 2,
             "vit: --epochs: must be in [1, 100000] (got 0)");
  EXPECT_RUN("train --help", 0, "--val-split FLOAT in [0, 0.9]");
  EXPECT_RUN("train --data mnist --out /tmp/x --val-split 1", 2, "must be in [0, 0.9] (got 1)");
  EXPECT_RUN("train --data mnist --out /tmp/x --val-split 1e-300", 2,
             "vit: --val-split: is too close to 0 to be held (got '1e-300')");
  EXPECT_RUN("eval --help", 0, "--batch INT in [1, 65536]");
  EXPECT_RUN("eval --model m --data mnist --batch 0", 2,
             "vit: --batch: must be in [1, 65536] (got 0)");
  EXPECT_RUN("predict --help", 0, "--threads INT in [1, 1024]");
  EXPECT_RUN("predict --model m x.png --threads 0", 2, "--threads: must be in [1, 1024] (got 0)");
  EXPECT_RUN("train --out /tmp/x", 2, "--data");
  EXPECT_RUN("train --data mnist", 2, "--out");
  EXPECT_RUN("train --resume /tmp/x --lr 0.1", 2, "--lr cannot be changed");
  EXPECT_RUN("train --resume /tmp/x --patch-drop 0.1", 2, "--patch-drop cannot be changed");
  // Every option but --epochs, --threads and --data-dir is the run's own: none is left out.
  for (const char* option : {"--preset seed", "--mlp-ratio 2", "--hflip", "--no-hflip", "--seed 1",
                             "--pos-init normal", "--full-token-epochs 1", "--out /tmp/y"}) {
    const std::string flag = std::string(option).substr(0, std::string(option).find(' '));
    EXPECT_RUN(std::string("train --resume /tmp/x ") + option, 2, flag + " cannot be changed");
  }
  EXPECT_RUN("eval --data mnist", 2, "--model");
  EXPECT_RUN("predict --model m.safetensors", 2, "images");
  EXPECT_RUN("info", 2, "--model");
}

TEST(Cli, RuntimeErrorsExitOne) {
  TempDir dir("cli-err");
  EXPECT_RUN("eval --model " + (dir / "none.safetensors") + " --data mnist", 1, "cannot open");
  EXPECT_RUN("info --model " + (dir / "none.safetensors"), 1, "none.safetensors");
  {
    const Result r = vit("train --data idx:" + (dir / "nothing") + " --out " + (dir / "run"));
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("not found"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("model:"), std::string::npos) << "the error comes before any settings";
    EXPECT_FALSE(std::filesystem::exists(dir / "run")) << "a failed start leaves no run directory";
  }
  EXPECT_RUN("train --resume " + (dir / "nothing"), 1, "no run to resume");
  // The library names a setting as `data_dir`; the tool says which of its options sets it.
  EXPECT_RUN(
      "train --data fashion-mnist --data-dir " + (dir / "nothing") + " --out " + (dir / "run"), 1,
      "or pass --data-dir");
  write_bytes(dir / "junk.safetensors", {1, 2, 3}, false);
  EXPECT_RUN("predict --model " + (dir / "junk.safetensors") + " x.png", 1, "too short");
}

TEST(Cli, InfoOnPresets) {
  EXPECT_RUN("info --preset tiny28", 0, "305034");
  EXPECT_RUN("info --preset vit_base_patch16_224", 0, "86567656");
  Result r = vit("info --preset seed --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["dim"], 8);
  EXPECT_EQ(j["config"]["pos_embed"], "sincos");
}

TEST(Cli, BenchSmoke) {
  // Seconds-long: it checks that the benchmark runs and reports, not how fast (no timed asserts).
  Result r = vit("bench --preset tiny28 --batch 2 --steps 1 --warmup 0 --threads 2 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  for (const char* k :
       {"train_img_per_s", "infer_img_per_s", "train_gflops", "infer_gflops", "peak_rss_mb"}) {
    ASSERT_TRUE(j.contains(k)) << k;
    EXPECT_GT(j[k].get<double>(), 0.0) << k;
  }
  EXPECT_EQ(j["train_micro_batch"].get<int>(), 2);  // 2 images are one micro-batch
  EXPECT_EQ(j["infer_micro_batch"].get<int>(), 2);
  // Without --threads: OMP_NUM_THREADS where it is set.
  EXPECT_RUN("OMP_NUM_THREADS=1 bench --preset seed --batch 2 --steps 1 --warmup 0 --mode infer", 0,
             "seed, batch 2, 1 thread,");
  // Micro-batches of 1 image: said in the report and in the JSON.
  EXPECT_RUN("bench --preset tiny28 --batch 2 --steps 1 --warmup 0 --mode train --micro-batch 1", 0,
             "micro-batches of at most 1 image)");
  r =
      vit("bench --preset tiny28 --batch 3 --steps 1 --warmup 0 --mode train --micro-batch 2 "
          "--json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["train_micro_batch"].get<int>(), 2);
  EXPECT_RUN("bench --preset tiny28 --batch 2 --steps 1 --warmup 0 --mode infer", 0, "infer");
  // --contend: the same beside a busy process on one core, then with 1 thread; both reported.
  r = vit("bench --preset tiny28 --batch 2 --steps 1 --warmup 0 --threads 2 --contend --json");
  ASSERT_EQ(r.code, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["threads"].get<int>(), 2);
  EXPECT_GE(j["contend_cpu"].get<int>(), 0);
  for (const char* k : {"one_thread_train_img_per_s", "one_thread_infer_img_per_s"}) {
    ASSERT_TRUE(j.contains(k)) << k;
    EXPECT_GT(j[k].get<double>(), 0.0) << k;
  }
  EXPECT_RUN(
      "bench --preset tiny28 --batch 2 --steps 1 --warmup 0 --mode train --threads 2 --contend", 0,
      "2 threads at");
  EXPECT_RUN("bench --preset nope", 2, "unknown preset");
  EXPECT_RUN("bench --batch 0", 2, "--batch");
  EXPECT_RUN("bench --micro-batch 0", 2, "--micro-batch");
  // Memory is checked before anything is allocated, as train does (terabytes of activations).
  EXPECT_RUN("bench --preset vit_base_patch16_224 --batch 65536 --mode train", 1,
             "MiB of memory is available; use a smaller --batch");
}

TEST(Cli, TrainEvalPredictInfo) {
  TempDir dir("cli");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  const std::string data = "idx:" + (dir / "data");
  std::string model_flags;
  for (const std::string& word : kQuadrantFlags) model_flags += " " + word;
  const std::string program = cli_command().back();
  Result t = vit("train --data " + data + model_flags +
                 " --epochs 8 --val-split 0.25 --threads 2 --out " + (dir / "run"));
  ASSERT_EQ(t.code, 0) << t.out;
  EXPECT_NE(t.out.find("test accuracy:"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("epoch 8/8"), std::string::npos) << t.out;
  // Of each class's training images a quarter (rounded) is held out: about 100 of the 400.
  const size_t held_at = t.out.find(" validation / 100 test images");
  ASSERT_NE(held_at, std::string::npos) << t.out;
  const int held = std::stoi(t.out.substr(t.out.rfind(' ', held_at - 1) + 1));
  EXPECT_NEAR(held, 100, 2);
  EXPECT_NE(t.out.find("best epoch by validation accuracy:"), std::string::npos) << t.out;
  // The end says where the checkpoints are and what to run next, as the user ran the tool.
  EXPECT_NE(t.out.find(dir / "run/best.safetensors"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find(program + " eval --model " + (dir / "run") + " --data " + data),
            std::string::npos)
      << t.out;
  EXPECT_NE(t.out.find(program + " predict --model " + (dir / "run")), std::string::npos) << t.out;
  const std::string model = dir / "run/best.safetensors";

  Result e = vit("eval --json --model " + model + " --data " + data);
  ASSERT_EQ(e.code, 0) << e.out;
  auto j = nlohmann::json::parse(e.out);
  EXPECT_GT(j["accuracy"].get<double>(), 0.7);
  EXPECT_EQ(j["confusion"].size(), 4u);
  EXPECT_EQ(j["per_class_accuracy"].size(), 4u);
  EXPECT_TRUE(j.contains("loss"));
  EXPECT_RUN("eval --model " + model + " --data " + data, 0, "confusion matrix");
  // Classes named by their numbers are shown once ("  2 ", not "  2 2 ").
  {
    const Result r = vit("eval --model " + model + " --data " + data);
    EXPECT_NE(r.out.find("\n  2    "), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("2 2"), std::string::npos) << r.out;
  }
  EXPECT_RUN("eval --model " + model + " --data fashion-mnist --data-dir " + (dir / "nothing"), 1,
             "or pass --data-dir");
  // report: one page, the run's sections, its pictures inlined, nothing from outside, no script.
  EXPECT_NE(t.out.find(program + " report " + (dir / "run")), std::string::npos) << t.out;
  EXPECT_RUN("report " + (dir / "run"), 0, "wrote " + (dir / "run/report.html"));
  {
    std::ifstream in(dir / "run/report.html");
    const std::string html((std::istreambuf_iterator<char>(in)), {});
    EXPECT_TRUE(html.starts_with("<!DOCTYPE html>"));
    EXPECT_TRUE(html.ends_with("</html>\n"));
    for (const char* section :
         {"<h2>Training</h2>", "<h2>Model</h2>", "<h2>Recipe</h2>", "<h2>Evaluation</h2>",
          "<h2>Most confident mistakes</h2>", "<h2>Where the model looks</h2>"}) {
      EXPECT_NE(html.find(section), std::string::npos) << section;
    }
    auto count = [&](const std::string& what) {
      size_t n = 0;
      for (size_t at = html.find(what); at != std::string::npos; at = html.find(what, at + 1)) ++n;
      return n;
    };
    EXPECT_EQ(count("<svg"), 2u);  // the curves and the confusion matrix
    EXPECT_EQ(count("<svg"), count("</svg>"));
    EXPECT_EQ(count("<table>"), count("</table>"));
    EXPECT_EQ(count("src=\""), 1u + 4u);  // the mistakes and 4 attention pictures
    EXPECT_EQ(count("src=\""), count("src=\"data:image/png;base64,"));
    for (const char* outside : {"<script", "<link", "href=", "url("}) {
      EXPECT_EQ(count(outside), 0u) << outside;
    }
  }
  // A dataset that cannot be read: the page says why it has no evaluation.
  {
    std::filesystem::rename(dir / "data", dir / "moved");
    EXPECT_RUN("report " + (dir / "run") + " --out " + (dir / "nodata.html"), 0, "warning");
    std::filesystem::rename(dir / "moved", dir / "data");
    std::ifstream in(dir / "nodata.html");
    const std::string html((std::istreambuf_iterator<char>(in)), {});
    const size_t at = html.find("No evaluation: ");
    ASSERT_NE(at, std::string::npos);
    EXPECT_NE(html.find(dir / "data", at), std::string::npos) << html.substr(at, 300);
  }
  // A run stopped after an epoch that --eval-every skipped ends on a line without validation or
  // test numbers: its report still picks the best epoch by validation, and that row shows dashes.
  {
    const std::string metrics = dir / "run/metrics.jsonl";
    std::string lines;
    {
      std::ifstream in(metrics);
      lines.assign(std::istreambuf_iterator<char>(in), {});
    }
    std::ofstream(metrics, std::ios::app)
        << "{\"epoch\":99,\"train_loss\":0.5,\"train_acc\":0.9,\"val_loss\":null,\"val_acc\":null,"
           "\"test_loss\":null,\"test_acc\":null,\"lr\":0.001,\"seconds\":1,\"img_per_s\":100,"
           "\"data_share\":0.01}\n";
    EXPECT_RUN("report " + (dir / "run"), 0, "wrote " + (dir / "run/report.html"));
    std::ifstream in(dir / "run/report.html");
    const std::string html((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(html.find("<th>best (validation)</th>"), std::string::npos);
    EXPECT_NE(html.find("<tr><th>last</th><td>99</td><td>0.5000</td><td>90.00%</td><td>-</td><td>-"
                        "</td><td>-</td></tr>"),
              std::string::npos);
    std::ofstream(metrics) << lines;
  }
  EXPECT_RUN("report " + (dir / "none"), 1, "has no metrics.jsonl");
  // A run stopped in its first epoch (its checkpoints, no metrics.jsonl yet): a page that says
  // so, and no chart to draw.
  std::filesystem::create_directories(dir / "first");
  for (const char* f : {"last.safetensors", "last.train.safetensors"})
    std::filesystem::copy_file(dir / ("run/" + std::string(f)), dir / ("first/" + std::string(f)));
  EXPECT_RUN("report " + (dir / "first"), 0, "wrote " + (dir / "first/report.html"));
  EXPECT_RUN("plot " + (dir / "first") + " --out " + (dir / "first/c.svg"), 1,
             "has no finished epoch");
  // The report never replaces a file of the run (only an .html page), and training never a
  // directory with a run's checkpoint in it, best.safetensors alone included.
  {
    const auto size = std::filesystem::file_size(dir / "run/last.train.safetensors");
    EXPECT_RUN("report " + (dir / "run") + " --out " + (dir / "run/last.train.safetensors"), 2,
               "the report is an HTML page");
    EXPECT_EQ(std::filesystem::file_size(dir / "run/last.train.safetensors"), size);
    EXPECT_RUN("report " + (dir / "run") + " --out " + (dir / "page.HTML"), 0, "wrote");
    std::filesystem::create_directories(dir / "keep");
    std::filesystem::copy_file(dir / "run/best.safetensors", dir / "keep/best.safetensors");
    const auto best = std::filesystem::file_size(dir / "keep/best.safetensors");
    EXPECT_RUN("train --data " + data + model_flags + " --epochs 1 --out " + (dir / "keep"), 2,
               "already holds a training run (best.safetensors); choose another --out");
    EXPECT_EQ(std::filesystem::file_size(dir / "keep/best.safetensors"), best);
    // A run killed while its first state was written: no --resume to offer.
    std::filesystem::copy_file(dir / "run/metrics.jsonl", dir / "keep/metrics.jsonl");
    EXPECT_RUN("train --data " + data + model_flags + " --epochs 1 --out " + (dir / "keep"), 2,
               "it stopped before its first save and cannot be resumed");
  }
  // export: a timm folder of its own, never into a run directory (whose --model it would become).
  EXPECT_RUN("export --model " + (dir / "run") + " --out " + (dir / "run"), 2,
             "holds a training run (last.safetensors): export to a folder of its own");
  EXPECT_FALSE(std::filesystem::exists(dir / "run/config.json"));
  EXPECT_RUN("export --model " + (dir / "run") + " --out " + (dir / "timm"), 0,
             "wrote " + (dir / "timm/config.json"));
  EXPECT_RUN("info --model " + (dir / "timm"), 0, "parameters:");
  // A named dataset read from --data-dir: the next steps say where, and the report finds it there.
  {
    const Result d = vit("train --data mnist --data-dir " + (dir / "data") + model_flags +
                         " --epochs 1 --out " + (dir / "named"));
    ASSERT_EQ(d.code, 0) << d.out;
    EXPECT_NE(d.out.find(" eval --model " + (dir / "named") + " --data mnist --data-dir " +
                         (dir / "data")),
              std::string::npos)
        << d.out;
    const Result r = vit("report " + (dir / "named"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.find("no evaluation"), std::string::npos) << r.out;
    std::ifstream in(dir / "named/report.html");
    const std::string html((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(html.find("<h2>Evaluation</h2>"), std::string::npos);
  }
  // --errors: the most confident mistakes as a PNG grid (4 to a row).
  EXPECT_RUN("eval --model " + model + " --data " + data + " --errors " + (dir / "errors.png") +
                 " --error-count 6",
             0, "wrote " + (dir / "errors.png"));
  if (const Image errors = decode_image(dir / "errors.png"); j["accuracy"].get<double>() < 1) {
    EXPECT_GT(errors.width, 4 * 112);
    EXPECT_GT(errors.height, 112);
  }
  EXPECT_RUN("eval --model " + model + " --data " + data + " --errors " + (dir / "e.svg"), 2,
             "written as PNG");
  // info: numbers as numbers, with what the model was trained on and how; eval --split val
  // evaluates the images the run held out and reproduces the accuracy that chose the epoch.
  Result i = vit("info --json --model " + (dir / "run"));
  ASSERT_EQ(i.code, 0) << i.out;
  auto ij = nlohmann::json::parse(i.out);
  EXPECT_EQ(ij["file"], model);
  EXPECT_EQ(ij["dataset"], data);
  EXPECT_TRUE(ij["epoch"].is_number_integer()) << i.out;
  EXPECT_TRUE(ij["val_acc"].is_number()) << i.out;
  EXPECT_TRUE(ij["test_acc"].is_number()) << i.out;
  EXPECT_EQ(ij["recipe"]["val_split"], 0.25) << i.out;
  EXPECT_EQ(ij["recipe"]["epochs"], 8) << i.out;
  Result v = vit("eval --json --split val --model " + model + " --data " + data);
  ASSERT_EQ(v.code, 0) << v.out;
  EXPECT_EQ(nlohmann::json::parse(v.out)["count"], held);
  EXPECT_EQ(nlohmann::json::parse(v.out)["accuracy"].get<double>(), ij["val_acc"].get<double>());
  EXPECT_RUN("info --model " + model, 0, "val_acc:     ");
  EXPECT_RUN("info --model " + model, 0, "dataset:     " + data);

  // An 8x8 PGM with the bright square in the bottom-right quadrant (class 3).
  std::string pgm = "P5\n8 8\n255\n";
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) pgm += char(y >= 5 && y < 8 && x >= 5 && x < 8 ? 255 : 10);
  }
  write_bytes(dir / "q3.pgm", std::vector<uint8_t>(pgm.begin(), pgm.end()), false);
  Result p = vit("predict --json --top-k 2 --model " + model + " " + (dir / "q3.pgm"));
  ASSERT_EQ(p.code, 0) << p.out;
  auto pj = nlohmann::json::parse(p.out);
  EXPECT_EQ(pj["file"], dir / "q3.pgm");
  EXPECT_EQ(pj["top"].size(), 2u);
  EXPECT_EQ(pj["logits"].size(), 4u);
  EXPECT_EQ(pj["top"][0]["index"], 3) << p.out;
  EXPECT_RUN("predict --model " + model + " " + (dir / "q3.pgm"), 0, "q3.pgm: 3 (");
  EXPECT_RUN("predict --model " + model + " --top-k 5 " + (dir / "q3.pgm"), 2,
             "--top-k 5: the model has 4 classes");
  // A file name that is not UTF-8 (any bytes, on Linux) reads in JSON with U+FFFD for its byte.
  write_bytes(dir / "q\xe9.pgm", std::vector<uint8_t>(pgm.begin(), pgm.end()), false);
  const Result latin = vit("predict --json --model " + model + " " + (dir / "q\xe9.pgm"));
  ASSERT_EQ(latin.code, 0) << latin.out;
  EXPECT_EQ(nlohmann::json::parse(latin.out)["file"], dir / "q\xef\xbf\xbd.pgm");
  EXPECT_RUN("predict --model " + model + " " + (dir / "q3.pgm") + " " + (dir / "missing.png"), 1,
             "cannot read image");
  EXPECT_RUN("info --model " + model, 0, "parameters:");

  // Resume continues the run; extending it with --epochs trains one more epoch.
  EXPECT_RUN("train --resume " + (dir / "run") + " --epochs 9", 0, "epoch 9/9");
  EXPECT_RUN("train --data " + data + model_flags + " --out " + (dir / "run"), 2, "--resume");

  // Without a validation split there is only the last checkpoint, and the end says so.
  EXPECT_RUN("train --data " + data + model_flags + " --epochs 1 --out " + (dir / "plain"), 0,
             "no best epoch is chosen without a validation split");
  EXPECT_FALSE(std::filesystem::exists(dir / "plain/best.safetensors"));
  EXPECT_RUN("eval --split val --model " + (dir / "plain") + " --data " + data, 1,
             "trained without a validation split");
  // A model evaluated on data it was not trained on is warned about: name and class names.
  EXPECT_RUN("eval --model " + (dir / "plain") + " --data mnist --data-dir " + (dir / "data"), 0,
             "warning: the model was trained on '" + data + "'");
}

// Users' own images: a folder of quadrant pictures (PGM files, 4 classes named by folders) trains
// with the class count taken from the folders, evaluates, and predicts a picture of another
// shape; a CIFAR-format set trains with the cifar preset's shape.
TEST(Cli, TrainOnImageFoldersAndCifar) {
  TempDir dir("cli-folder");
  const char* names[] = {"0-top-left", "1-top-right", "2-bottom-left", "3-bottom-right"};
  for (const char* split : {"train", "test"}) {
    std::vector<uint8_t> px, lb;
    const int n = std::string(split) == "train" ? 400 : 100;
    make_quadrant_images(n, 8, std::string(split) == "train" ? 1 : 2, &px, &lb);
    for (int i = 0; i < n; ++i) {
      const std::string folder = dir / (std::string(split) + "/" + names[lb[size_t(i)]]);
      std::filesystem::create_directories(folder);
      std::string pgm = "P5\n8 8\n255\n";
      pgm.append(px.begin() + i * 64, px.begin() + (i + 1) * 64);
      write_bytes(folder + "/" + std::to_string(i) + ".pgm",
                  std::vector<uint8_t>(pgm.begin(), pgm.end()), false);
    }
  }
  std::string flags;
  for (const std::string& word : kQuadrantFlags) {
    if (word == "--classes") break;  // the rest of the flags after it: the folders say 4
    flags += " " + word;
  }
  flags += " --batch 32 --lr 3e-3 --threads 2";
  const std::string data = "folder:" + dir.path;
  Result t = vit("train --data " + data + flags + " --epochs 8 --out " + (dir / "run"));
  ASSERT_EQ(t.code, 0) << t.out;
  EXPECT_NE(t.out.find("note: 4 classes, as '" + data + "' has (--classes)"), std::string::npos)
      << t.out;
  Result e = vit("eval --json --model " + (dir / "run") + " --data " + data);
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_GT(nlohmann::json::parse(e.out)["accuracy"].get<double>(), 0.7) << e.out;
  EXPECT_RUN("eval --model " + (dir / "run") + " --data " + data, 0, "3 3-bottom-right");
  // A 16x8 picture, the square in the bottom-right of its centred 8x8: class 3 by its name.
  std::string pgm = "P5\n16 8\n255\n";
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 16; ++x) pgm += char(y >= 5 && x >= 9 && x < 12 ? 255 : 10);
  }
  write_bytes(dir / "wide.pgm", std::vector<uint8_t>(pgm.begin(), pgm.end()), false);
  EXPECT_RUN("predict --top-k 1 --model " + (dir / "run") + " " + (dir / "wide.pgm"), 0,
             "wide.pgm: 3-bottom-right (");
  // The run keeps its preprocessing (timm's default crop_pct) for prediction, which flags override.
  Result ri = vit("info --json --model " + (dir / "run"));
  ASSERT_EQ(ri.code, 0) << ri.out;
  EXPECT_EQ(
      nlohmann::json::parse(ri.out)["preprocess"],
      nlohmann::json::parse(
          R"({"crop_pct":0.875,"crop_mode":"center","interpolation":"bicubic","exif":true})"));
  EXPECT_RUN("predict --top-k 1 --crop-mode border --crop-pct 1 --interpolation bilinear --model " +
                 (dir / "run") + " " + (dir / "wide.pgm"),
             0, "wide.pgm: ");
  EXPECT_RUN("predict --crop-pct 0 --model " + (dir / "run") + " " + (dir / "wide.pgm"), 2,
             "--crop-pct: must be in (0, 1] (got 0)");
  // Training with random resized crops (and another filter) runs and resumes.
  EXPECT_RUN("train --data " + data + flags + " --epochs 1 --rrc --rrc-scale 0.5 " +
                 "--interpolation bilinear --mixup 0.8 --cutmix 1 --out " + (dir / "rrc"),
             0, "epoch 1/1");
  EXPECT_RUN("train --resume " + (dir / "rrc") + " --epochs 2", 0, "epoch 2/2");
  // A corrupt image stops a run before training, named, with the way out; with that flag it is
  // left out and listed in the run directory, and resume keeps the choice.
  const std::string broken = dir / "train/2-bottom-left/broken.jpg";
  write_bytes(broken, {0xFF, 0xD8, 0xFF, 0xE0, 0, 16}, false);
  EXPECT_RUN("train --data " + data + flags + " --epochs 1 --out " + (dir / "bad"), 1,
             "broken.jpg': JPEG: ");
  EXPECT_RUN("train --data " + data + flags + " --epochs 1 --out " + (dir / "bad"), 1,
             "or leave unreadable images out with --skip-bad-images");
  EXPECT_FALSE(std::filesystem::exists(dir / "bad"));
  EXPECT_RUN(
      "train --data " + data + flags + " --epochs 1 --skip-bad-images --out " + (dir / "skip"), 0,
      "1 unreadable image was left out; it is listed in");
  std::ifstream listed(dir / "skip/skipped-images.txt");
  const std::string list((std::istreambuf_iterator<char>(listed)), {});
  EXPECT_NE(list.find(broken), std::string::npos) << list;
  EXPECT_RUN("train --resume " + (dir / "skip") + " --epochs 2", 0, "epoch 2/2");
  // eval decodes only the split it evaluates: the test split reads nothing of train/.
  {
    const Result r = vit("eval --model " + (dir / "run") + " --data " + data);
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("(test split, 100 images)"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("broken.jpg"), std::string::npos) << r.out;
  }
  EXPECT_RUN("eval --model " + (dir / "run") + " --data " + data + " --split train", 1,
             "broken.jpg': JPEG: ");
  EXPECT_RUN(
      "eval --model " + (dir / "run") + " --data " + data + " --split train --skip-bad-images", 0,
      "vit eval: warning: cannot read image '" + broken + "': JPEG: ");
  std::filesystem::remove(broken);

  // CIFAR's format, 3x32x32: the tiny28 shape does not fit and says what to set; the cifar
  // preset's does (made small here to be quick).
  std::filesystem::create_directories(dir / "cifar");
  for (const char* f : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}) {
    std::vector<uint8_t> bytes;
    for (int i = 0; i < 20; ++i) {
      bytes.push_back(uint8_t(i % 10));
      for (int j = 0; j < 3072; ++j) bytes.push_back(uint8_t((i * 37 + j * (i % 10 + 1)) & 255));
    }
    write_bytes(dir / ("cifar/" + std::string(f)), bytes, false);
  }
  const std::string cifar = "cifar10:" + (dir / "cifar");
  EXPECT_RUN("train --data " + cifar + " --epochs 1 --out " + (dir / "c1"), 1,
             "has 3x32x32 images but the model expects 1x28x28");
  EXPECT_RUN("train --data " + cifar + " --labels coarse --epochs 1 --out " + (dir / "c1"), 2,
             "has no coarse labels");
  EXPECT_RUN("train --preset cifar --data " + cifar +
                 " --dim 16 --depth 1 --heads 2 --epochs 1 --warmup 0 --threads 2 --normalize "
                 "imagenet --out " +
                 (dir / "c2"),
             0, "epoch 1/1");
  // --normalize imagenet: ImageNet's constants, kept in the checkpoint; for RGB models only.
  Result info = vit("info --json --model " + (dir / "c2"));
  ASSERT_EQ(info.code, 0) << info.out;
  auto mean = nlohmann::json::parse(info.out)["normalize"]["mean"];
  ASSERT_EQ(mean.size(), 3u);
  EXPECT_NEAR(mean[0].get<double>(), 0.485, 1e-7);
  // Images of the model's own size were used whole: prediction keeps whole images too.
  EXPECT_EQ(nlohmann::json::parse(info.out)["preprocess"]["crop_pct"], 1.0);
  EXPECT_NEAR(mean[2].get<double>(), 0.406, 1e-7);
  EXPECT_RUN("train --data " + data + flags + " --normalize imagenet --out " + (dir / "gray"), 2,
             "--normalize imagenet is for 3-channel (RGB) models; this one has 1");
}

// A timm model folder and a bare timm state dict (tests/fixtures/timm): predicted with their
// label names and preprocessing, described by info, evaluated on a folder of their input size.
TEST(Cli, TimmModels) {
  const std::string folder = fixture("timm/cls"), photo = fixture("timm/photo.png");
  Result p = vit("predict --json --top-k 1 --model " + folder + " " + photo);
  ASSERT_EQ(p.code, 0) << p.out;
  const auto j = nlohmann::json::parse(p.out);
  EXPECT_EQ(j["top"][0]["class"], "door") << p.out;
  Result i = vit("info --json --model " + folder);
  ASSERT_EQ(i.code, 0) << i.out;
  const auto info = nlohmann::json::parse(i.out);
  EXPECT_EQ(info["format"], "timm");
  EXPECT_EQ(info["architecture"], "vit_test_patch8_32");
  EXPECT_RUN("info --model " + folder + " --arch tiny28", 2, "is not a timm architecture");
  EXPECT_RUN("info --model " + folder + " --arch tiny_28", 2, "did you mean 'tiny28'?");
  EXPECT_EQ(info["config"]["heads"], 4);
  EXPECT_EQ(info["preprocess"]["crop_pct"], 0.9);
  EXPECT_RUN("predict --model " + fixture("timm/avg.safetensors") + " " + photo, 0, "photo.png: ");
  TempDir dir("cli-timm");
  EXPECT_RUN("predict --model " + (dir / "none") + " " + photo, 1, "none");
  // Fine-tuning the folder's model on a folder of 3 classes of its input size: every tensor but
  // the head copied, the pretrained preprocessing and normalisation kept.
  for (int k = 0; k < 3; ++k) {
    for (const char* split : {"train", "val"}) {
      const std::string d = dir / (std::string(split) + "/c" + std::to_string(k));
      std::filesystem::create_directories(d);
      for (int i = 0; i < 8; ++i) {
        std::string ppm = "P6\n40 36\n255\n";
        for (int p = 0; p < 40 * 36; ++p) {
          for (int c = 0; c < 3; ++c) ppm += char(c == k ? 200 - i : 30 + 3 * i);
        }
        write_bytes(d + "/" + std::to_string(i) + ".ppm",
                    std::vector<uint8_t>(ppm.begin(), ppm.end()), false);
      }
    }
  }
  const std::string data = "folder:" + dir.path;
  EXPECT_RUN("train --init " + folder + " --data " + data +
                 " --epochs 2 --warmup 0 --batch 8 --threads 2 --out " + (dir / "ft"),
             0,
             "fine-tuning: 30 of 32 tensors from the pretrained model, its normalisation; a new "
             "head for 3 classes");
  // Its confusion matrix as a heat map, with the folder's class names.
  EXPECT_RUN("eval --model " + (dir / "ft") + " --data " + data + " --confusion " +
                 (dir / "confusion.svg"),
             0, "wrote " + (dir / "confusion.svg"));
  {
    std::ifstream in(dir / "confusion.svg");
    const std::string svg((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(svg.find("<title>c0 as c0: "), std::string::npos);
  }
  EXPECT_RUN("eval --model " + (dir / "ft") + " --data " + data + " --confusion " +
                 (dir / "confusion.png"),
             0, "wrote " + (dir / "confusion.png"));
  {
    const Image png = decode_image(dir / "confusion.png");
    std::set<int> colours;
    for (size_t i = 0; i + 2 < png.pixels.size(); i += png.channels) {
      colours.insert(png.pixels[i] << 16 | png.pixels[i + 1] << 8 | png.pixels[i + 2]);
    }
    EXPECT_GT(png.width, 100);
    EXPECT_GT(colours.size(), 16u) << "the heat map is drawn";
  }
  EXPECT_RUN("eval --model " + (dir / "ft") + " --data " + data + " --confusion x.txt", 2,
             "SVG (.svg) or PNG (.png)");
  Result fi = vit("info --json --model " + (dir / "ft"));
  ASSERT_EQ(fi.code, 0) << fi.out;
  const auto ft = nlohmann::json::parse(fi.out);
  EXPECT_EQ(ft["config"]["num_classes"], 3);
  EXPECT_EQ(ft["config"]["heads"], 4);
  EXPECT_EQ(ft["preprocess"]["crop_pct"], 0.9);
  EXPECT_NEAR(ft["normalize"]["std"][2].get<double>(), 0.26, 1e-7);
  // At another image size: pos_embed resampled as timm does.
  EXPECT_RUN("train --init " + folder + " --data " + data +
                 " --image-size 40 --epochs 1 --warmup 0 --batch 8 --threads 2 --out " +
                 (dir / "ft40"),
             0, "pos_embed resampled from a 4x4 grid of patches to 5x5");
  // A backbone without a head (timm's DINOv2 with num_classes 0; here the register-token,
  // LayerScale fixture without head.*): refused by predict, fine-tuned with a new head, at another
  // image size (its pos_embed, the patches' rows only, resampled).
  const std::string backbone = dir / "backbone.safetensors";
  write_without_head(fixture("timm/reg.safetensors"), backbone);
  EXPECT_RUN("predict --model " + backbone + " " + photo, 1, "has no head.weight");
  EXPECT_RUN("train --init " + backbone + " --data " + data +
                 " --image-size 40 --epochs 1 --warmup 0 --batch 8 --threads 2 --out " +
                 (dir / "ftb"),
             0, "pos_embed resampled from a 4x4 grid of patches to 5x5");
  Result fb = vit("info --json --model " + (dir / "ftb"));
  ASSERT_EQ(fb.code, 0) << fb.out;
  const auto ftb = nlohmann::json::parse(fb.out);
  EXPECT_EQ(ftb["config"]["num_classes"], 3);
  EXPECT_EQ(ftb["config"]["reg_tokens"], 4);
  EXPECT_EQ(ftb["config"]["image_size"], 40);
  // A linear probe with the finetune recipe (--init's default), its layer decay overridden.
  EXPECT_RUN("train --init " + folder + " --data " + data +
                 " --freeze-backbone --layer-decay 0.6 --epochs 1 --warmup 0 --batch 8 "
                 "--threads 2 --out " +
                 (dir / "probe"),
             0, "a new head for 3 classes");
  Result pi = vit("info --json --model " + (dir / "probe"));
  ASSERT_EQ(pi.code, 0) << pi.out;
  const auto probe = nlohmann::json::parse(pi.out);
  EXPECT_EQ(probe["recipe"]["freeze_backbone"], true) << pi.out;
  EXPECT_NEAR(probe["recipe"]["layer_decay"].get<double>(), 0.6, 1e-7);
  EXPECT_NEAR(probe["recipe"]["lr"].get<double>(), 1e-4, 1e-9) << "the finetune preset's";
  EXPECT_RUN("train --preset finetune --data " + data + " --out " + (dir / "x"), 2,
             "give the pretrained model with --init");
  EXPECT_RUN("train --init " + folder + " --data " + data + " --dim 32 --out " + (dir / "x"), 2,
             "--dim cannot be given with --init");
  EXPECT_RUN("train --init " + folder + " --data " + data + " --pos sincos --out " + (dir / "x"), 2,
             "vit: --pos cannot be given with --init");
  EXPECT_RUN(
      "train --init " + folder + " --data " + data + " --normalize imagenet --out " + (dir / "x"),
      2, "--normalize cannot be given with --init");
  // --image-size with --init: a multiple of the pretrained patches (--patch cannot change).
  EXPECT_RUN("train --init " + folder + " --data " + data + " --image-size 30 --out " + (dir / "x"),
             2, "so the size must be a multiple of");
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

// `vit plot`: the training curves of run directories as SVG.
TEST(Cli, PlotWritesAnSvgOfRuns) {
  TempDir dir("cli-plot");
  std::filesystem::create_directories(dir / "run");
  std::ofstream(dir / "run/metrics.jsonl")
      << "{\"epoch\":1,\"train_loss\":1.5,\"train_acc\":0.5,\"val_loss\":null,\"val_acc\":null,"
         "\"test_loss\":1.2,\"test_acc\":0.6,\"lr\":0.001,\"seconds\":1,\"img_per_s\":100,"
         "\"data_share\":0.01}\n";
  const std::string out = dir / "curves.svg";
  EXPECT_RUN("plot " + (dir / "run") + " --names mine --out " + out, 0, "wrote " + out);
  std::ifstream in(out);
  const std::string svg((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(svg.find(">lr<"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_RUN("plot " + (dir / "run") + " --out " + (dir / "c.png"), 0, "wrote " + (dir / "c.png"));
  const Image png = decode_image(dir / "c.png");  // the three charts side by side, as in the SVG
  EXPECT_EQ(png.width, 3 * 420);
  EXPECT_EQ(png.height, 300);
  EXPECT_RUN("plot " + (dir / "run") + " --out " + (dir / "c.pdf"), 2, "SVG (.svg) or PNG (.png)");
  EXPECT_RUN("plot " + (dir / "run") + " --names a b --out " + out, 2, "2 names for 1 runs");
  EXPECT_RUN("plot " + (dir / "none") + " --out " + out, 1, "has no metrics.jsonl");
  std::filesystem::create_directories(dir / "empty");
  std::ofstream(dir / "empty/metrics.jsonl") << "{\"epoch\": 1, \"train_l";  // torn, as a crash
  EXPECT_RUN("plot " + (dir / "empty") + " --out " + out, 1, "has no finished epoch");
}

// vit attention: a picture per image (or --out one file), the maps as numbers with --json, and
// the errors: --out naming one file for two images (usage, 2), an image that cannot be read (1).
TEST(Cli, AttentionPicturesAndMaps) {
  TempDir dir("cli-attention");
  const std::string model = fixture("demo_tiny28.f16.safetensors");
  const std::string seven = fixture("drawings/7_017.png"), three = fixture("drawings/3_013.png");
  // The drawings are dark on white, the other way from MNIST: inverted, as predict says too.
  EXPECT_RUN("attention --model " + model + " --out " + (dir / "pics") + " " + seven + " " + three,
             0, "7_017-rollout.png  [inverted: its background was the other way]");
  EXPECT_TRUE(std::filesystem::exists(dir / "pics/7_017-rollout.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "pics/3_013-rollout.png"));
  const std::string one = dir / "heads.png";
  EXPECT_RUN("attention --model " + model + " --method heads --out " + one + " " + seven, 0,
             "-> " + one);
  const Image picture = decode_image(one);
  EXPECT_GT(picture.width, 4 * 224);  // the input and 4 heads, 4 to a row
  EXPECT_GT(picture.height, 2 * 224);

  const Result r = vit("attention --json --method heads --model " + model + " " + seven);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["grid"], 7);
  EXPECT_EQ(j["extent"], 1.0);
  EXPECT_EQ(j["class_token"], true);
  EXPECT_EQ(j["prediction"]["class"], "7");
  EXPECT_EQ(j["inverted"], true);
  EXPECT_EQ(j["fitted"], true);
  ASSERT_EQ(j["maps"].size(), 4u);  // tiny28's heads
  double sum = 0;
  for (const auto& row : j["maps"][0]) {
    ASSERT_EQ(row.size(), 7u);
    for (double v : row) sum += v;
  }
  EXPECT_GT(sum, 0.0);
  EXPECT_LE(sum, 1.0 + 1e-6);  // the patches' share of a softmax row

  EXPECT_RUN("attention --model " + model + " --out " + (dir / "x.png") + " " + seven + " " + three,
             2, "names one picture for 2 images");
  EXPECT_RUN("attention --model " + model + " --method gradcam " + seven, 2, "--method");
  // --out never replaces an input, and names a directory or one .png (any case).
  std::filesystem::copy_file(seven, dir / "in.png");
  const auto input_size = std::filesystem::file_size(dir / "in.png");
  EXPECT_RUN("attention --model " + model + " --out " + (dir / "in.png") + " " + (dir / "in.png"),
             2, "is the input image");
  EXPECT_EQ(std::filesystem::file_size(dir / "in.png"), input_size);
  std::filesystem::copy_file(seven, dir / "in-rollout.png");
  EXPECT_RUN("attention --model " + model + " --out " + dir.path + " " + (dir / "in-rollout.png"),
             0, "-> " + (dir / "in-rollout-rollout.png"));
  EXPECT_RUN("attention --model " + model + " --out " + dir.path + " " + (dir / "in.png") + " " +
                 (dir / "in-rollout.png"),
             0, "in.png: 7 (");
  EXPECT_EQ(std::filesystem::file_size(dir / "in-rollout.png"), input_size)
      << "in.png's picture is numbered past the input of that name";
  EXPECT_TRUE(std::filesystem::exists(dir / "in-rollout-2.png"));
  EXPECT_RUN("attention --model " + model + " --out " + (dir / "UP.PNG") + " " + seven, 0,
             "-> " + (dir / "UP.PNG"));
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "UP.PNG"));
  EXPECT_RUN("attention --model " + model + " --out " + (dir / "a.jpg") + " " + seven, 2,
             "the pictures are PNG");
  std::ofstream(dir / "notes.txt") << "not a directory\n";
  EXPECT_RUN("attention --model " + model + " --out " + (dir / "notes.txt") + " " + seven, 2,
             "is a file, not a directory");
  EXPECT_RUN("attention --model " + model + " --out " + (dir / "pics") + " " + (dir / "none.png"),
             1, "none.png");
  // A folder that is also the pictures' folder: a second run replaces the first's pictures and
  // does not read them as images.
  const std::string both = dir / "both";
  std::filesystem::create_directories(both);
  std::filesystem::copy_file(seven, dir / "both/7_017.png");
  std::filesystem::copy_file(three, dir / "both/3_013.png");
  for (int run = 0; run < 2; ++run) {
    EXPECT_RUN("attention --model " + model + " --out " + both + " " + both, 0, "7_017.png: 7 (");
  }
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(both)) {
    ++files;
    EXPECT_EQ(e.path().string().find("rollout-"), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 4) << "two images and their pictures";
  EXPECT_RUN("attention --model " + model + " --out " + (dir / "pics") + " " + (dir / "pics"), 1,
             "holds only pictures of an earlier `vit attention`");
}

// --dtype bf16 on predict, eval (with --agreement) and bench where the CPU has AVX512-BF16, and
// its refusals: --agreement without a lower dtype (usage, 2), an unknown dtype (2), and bf16 on a
// CPU without AVX512-BF16 or with VIT_ISA naming other kernels (1, saying so).
TEST(Cli, Bf16Inference) {
  TempDir dir("cli-bf16");
  const std::string model = fixture("demo_tiny28.f16.safetensors");
  const std::string seven = fixture("drawings/7_017.png");
  write_quadrant_dataset(dir / "data", 20, 50, 28);
  const std::string eval = "eval --model " + model + " --data idx:" + (dir / "data");
  EXPECT_RUN(eval + " --agreement", 2, "--dtype bf16");
  EXPECT_RUN("predict --model " + model + " --dtype fp16 " + seven, 2, "--dtype");
  if (!bf16_active()) {  // the CPU lacks AVX512-BF16, or VIT_ISA chose other kernels
    EXPECT_RUN("predict --model " + model + " --dtype bf16 " + seven, 1,
               cpu_has_bf16() ? "VIT_ISA" : "AVX512-BF16");
    return;
  }
  EXPECT_RUN("predict --model " + model + " --dtype bf16 " + seven, 0, "7_017.png: 7 (");
  EXPECT_RUN(eval + " --dtype bf16 --agreement", 0, "bf16 against fp32: the same top-1 class on");
  const Result r = vit(eval + " --dtype bf16 --agreement --json");
  ASSERT_EQ(r.code, 0) << r.out;
  // The JSON's line (beside a warning on stderr: the model was trained on MNIST).
  const size_t at = r.out.rfind("{\"accuracy\"");
  ASSERT_NE(at, std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(at, r.out.find('\n', at) - at));
  EXPECT_EQ(j["dtype"], "bf16");
  EXPECT_EQ(j["agreement"]["with"], "fp32");
  EXPECT_EQ(j["count"], 50);
  const double agreement = j["agreement"]["top1_agreement"];
  EXPECT_EQ(agreement, (50 - j["agreement"]["differ"].get<int>()) / 50.0);
  const Result b =
      vit("bench --preset seed --mode infer --batch 4 --steps 1 --warmup 0 --dtype bf16 --json");
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_EQ(nlohmann::json::parse(b.out)["dtype"], "bf16");
}

// train --dtype bf16: mixed-precision training where bf16 runs (the recipe says so, the run learns
// the quadrants as fp32 does, and --resume --dtype fp32 goes on in fp32), and its refusal elsewhere
// (1, saying what to do).
TEST(Cli, Bf16Training) {
  TempDir dir("cli-bf16-train");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  std::string args = "train --data idx:" + (dir / "data") + " --epochs 10 --threads 2";
  for (const std::string& word : kQuadrantFlags) args += " " + word;
  EXPECT_RUN(args + " --dtype fp16 --out " + (dir / "x"), 2, "--dtype");
  if (!bf16_active()) {
    EXPECT_RUN(args + " --dtype bf16 --out " + (dir / "bf16"), 1,
               cpu_has_bf16() ? "VIT_ISA" : "AVX512-BF16");
    return;
  }
  auto accuracy = [&](const Result& r) {
    const size_t at = r.out.find("test accuracy: ");
    return at == std::string::npos ? -1.0 : std::stod(r.out.substr(at + 15));
  };
  const Result f = vit(args + " --out " + (dir / "fp32"));
  ASSERT_EQ(f.code, 0) << f.out;
  const Result b = vit(args + " --dtype bf16 --out " + (dir / "bf16"));
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_NE(b.out.find("\"dtype\":\"bf16\""), std::string::npos) << b.out;
  EXPECT_NE(f.out.find("\"dtype\":\"fp32\""), std::string::npos) << f.out;
  // Both learn the four quadrants, far above chance (25%): here fp32 reached 90% and bf16 100%
  // (on AMX and on VDPBF16PS) of the 100 test images.
  EXPECT_GE(accuracy(f), 80.0) << f.out;
  EXPECT_GE(accuracy(b), 80.0) << b.out;
  // A bf16 run goes on in fp32 when asked (as on a CPU without bf16), and says so.
  EXPECT_RUN("train --resume " + (dir / "bf16") + " --epochs 11 --dtype fp32", 0,
             "training in fp32 from here on (until now bf16)");
  EXPECT_RUN("train --resume " + (dir / "bf16") + " --epochs 12 --lr 1", 2,
             "only --epochs, --threads, --data-dir, --timeout, --dtype and --cache-dir apply");
}

// The progress bar: drawn with an ETA when stderr is a terminal (a pseudo-terminal from
// script(1)), and nothing of it when output goes to a pipe or a file.
TEST(Cli, ProgressBarOnlyOnATerminal) {
  TempDir dir("cli-bar");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  std::string args = "train --data idx:" + (dir / "data") + " --epochs 1 --threads 1";
  for (const std::string& word : kQuadrantFlags) args += " " + word;
  const Result piped = vit(args + " --out " + (dir / "piped"));
  ASSERT_EQ(piped.code, 0) << piped.out;
  EXPECT_EQ(piped.out.find("ETA"), std::string::npos) << piped.out;
  EXPECT_EQ(piped.out.find('\r'), std::string::npos) << piped.out;
  if (std::system("command -v script > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "script(1) (util-linux) is not installed";
  }
  std::string command;
  for (const std::string& w : cli_command()) command += w + " ";
  command += args + " --out " + (dir / "tty");
  const Result tty = vit_shell("script -qec '" + command + "' /dev/null");
  ASSERT_EQ(tty.code, 0) << tty.out;
  EXPECT_NE(tty.out.find("ETA"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("epoch 1/1 ["), std::string::npos) << tty.out;
  // Decoding a folder's images shows its own bar.
  for (const char* split : {"train/a", "train/b", "test/a", "test/b"}) {
    std::filesystem::create_directories(dir / split);
    for (int i = 0; i < 40; ++i) {
      std::string pgm =
          "P5\n8 8\n255\n" + std::string(64, char(split[std::strlen(split) - 1] == 'a' ? 30 : 200));
      pgm[12 + i % 64] = char(i * 5);
      write_bytes(dir / (std::string(split) + "/" + std::to_string(i) + ".pgm"),
                  std::vector<uint8_t>(pgm.begin(), pgm.end()), false);
    }
  }
  command.clear();
  for (const std::string& w : cli_command()) command += w + " ";
  command += "train --data folder:" + dir.path +
             " --image-size 8 --patch 2 --dim 8 --depth 1 "
             "--heads 1 --epochs 1 --out " +
             (dir / "tty-folder");
  const Result decoding = vit_shell("script -qec '" + command + "' /dev/null");
  ASSERT_EQ(decoding.code, 0) << decoding.out;
  EXPECT_NE(decoding.out.find("decoding images ["), std::string::npos) << decoding.out;
}

}  // namespace
}  // namespace vit::test

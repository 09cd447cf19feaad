// Training end to end on generated data: the loss falls and accuracy beats chance; checkpoints
// round-trip; an interrupted run resumed gives bitwise the weights of an uninterrupted one; a run
// directory admits one trainer at a time.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <clocale>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <utility>

#include "idx_writer.hpp"
#include "test_util.hpp"
#include "train/state.hpp"
#include "vit/checkpoint.hpp"
#include "vit/classify.hpp"
#include "vit/error.hpp"
#include "vit/isa.hpp"
#include "vit/optim.hpp"
#include "vit/safetensors.hpp"
#include "vit/train.hpp"

// flock(2) as the library sees it in this test binary (it links the library statically): the
// system's, or ENOLCK while g_flock_fails, as on a file system without locks (none here).
std::atomic<bool> g_flock_fails{false};
extern "C" int flock(int fd, int operation) noexcept {
  if (g_flock_fails) {
    errno = ENOLCK;
    return -1;
  }
  static const auto system_flock = reinterpret_cast<int (*)(int, int)>(dlsym(RTLD_NEXT, "flock"));
  return system_flock(fd, operation);
}

namespace vit::test {
namespace {

// Collects metrics; optionally asks to stop after a number of epochs.
struct Recorder : TrainReporter {
  std::vector<EpochMetrics> epochs;
  int stop_after = 0;
  void message(const std::string&) override {}
  void step(const StepProgress&) override {}
  void epoch(const EpochMetrics& m, int) override { epochs.push_back(m); }
  bool stop_requested() override { return stop_after && int(epochs.size()) >= stop_after; }
};

Recipe quick(int epochs) {
  Recipe r;
  r.epochs = epochs;
  r.batch_size = 32;
  r.lr = 3e-3f;
  r.warmup_epochs = 1;
  r.label_smoothing = 0.1f;
  r.clip_grad = 1.0f;
  r.augment.crop_padding = 1;
  r.augment.erase_prob = 0.1f;
  r.seed = 5;
  return r;
}

class Train : public ::testing::Test {
 protected:
  TempDir dir{"train"};
  std::string data;
  void SetUp() override {
    write_quadrant_dataset(dir / "data", 600, 200, 8);
    data = "idx:" + (dir / "data");
  }
};

// evaluate's mistakes: an untrained model misclassifies most quadrant images; the kept ones are
// the most confident (each the predicted class's softmax probability of that image, in order),
// and keeping them all gives every off-diagonal count of the confusion matrix. The inverse of the
// normalisation gives each image's pixels back.
TEST_F(Train, EvaluateKeepsTheMostConfidentMistakes) {
  Model model(quadrant_config());
  model.init(3);
  DatasetSplits d = load_dataset(data, 4);
  const Normalization norm = compute_normalization(*d.train);
  const EvalResult few = evaluate(model, *d.test, norm, 64, 5);
  const EvalResult all = evaluate(model, *d.test, norm, 64, 1000);
  int64_t wrong = 0;
  for (int t = 0; t < 4; ++t) {
    for (int p = 0; p < 4; ++p) wrong += t != p ? all.confusion[t][p] : 0;
  }
  ASSERT_GT(wrong, 5);
  EXPECT_EQ(int64_t(all.mistakes.size()), wrong);
  ASSERT_EQ(few.mistakes.size(), 5u);
  const int S = 8, K = 4;
  std::vector<float> image(S * S), logits(K);
  int32_t label = 0;
  for (size_t i = 0; i < all.mistakes.size(); ++i) {
    const Mistake& e = all.mistakes[i];
    if (i < few.mistakes.size()) {
      EXPECT_EQ(few.mistakes[i].index, e.index);
      EXPECT_EQ(few.mistakes[i].prob, e.prob);
    }
    if (i > 0) EXPECT_GE(all.mistakes[i - 1].prob, e.prob);
    make_batch(*d.test, &e.index, 1, norm, AugmentOptions{}, 0, 0, image.data(), &label);
    EXPECT_EQ(label, e.label);
    model.predict(image.data(), 1, logits.data());
    std::vector<double> probs(K);
    softmax(logits.data(), K, probs.data());
    EXPECT_EQ(argmax(logits.data(), K), e.predicted);
    EXPECT_NE(e.predicted, e.label);
    // The same bits on our kernels (an image's logits do not depend on its batch); the scalar
    // path's OpenBLAS blocks by the batch's rows, so there the logits agree to float rounding
    // (relative 1e-6 on these O(1) logits), and a probability within 1e-5.
    EXPECT_NEAR(probs[size_t(e.predicted)], e.prob, active_isa() == Isa::kScalar ? 1e-5 : 1e-12);
    if (i == 0) {
      Image stored;
      d.test->read(e.index, stored);
      EXPECT_EQ(denormalize_image(image.data(), 1, S, norm), stored.pixels);
    }
  }
}

// A request to stop while a folder's images are decoded (a first run over a large folder takes
// minutes): the decoding is given up at once, with no cache file and no run directory left.
TEST_F(Train, StopWhileDecodingWritesNothing) {
  const std::string folder = dir / "folder";
  for (const char* split : {"train", "test"}) {
    for (const char* c : {"a", "b", "c", "d"}) {
      std::filesystem::create_directories(folder + "/" + split + "/" + c);
      std::ofstream(folder + "/" + split + "/" + c + "/1.pgm") << "P5\n8 8\n255\n"
                                                               << std::string(64, c[0]);
    }
  }
  struct Stopping : Recorder {
    int asked = 0;
    bool stop_requested() override { return ++asked > 0; }
  } rec;
  const std::string cache = dir / "cache", out = dir / "stopped";
  const TrainSummary s =
      train(quadrant_config(), quick(2),
            {.data = "folder:" + folder, .out_dir = out, .cache_dir = cache}, rec);
  EXPECT_TRUE(s.interrupted);
  EXPECT_EQ(s.stopped_epoch, 0);
  EXPECT_GT(rec.asked, 0);
  EXPECT_TRUE(rec.epochs.empty());
  EXPECT_FALSE(std::filesystem::exists(out)) << "a new run stopped before training writes nothing";
  if (std::filesystem::exists(cache)) {
    EXPECT_TRUE(std::filesystem::is_empty(cache)) << "no cache file, whole or in part";
  }
  // Without the request, the same run trains (the folder is readable).
  Recorder plain;
  EXPECT_FALSE(train(quadrant_config(), quick(2),
                     {.data = "folder:" + folder, .out_dir = out, .cache_dir = cache}, plain)
                   .interrupted);
}

TEST_F(Train, LossFallsAndAccuracyBeatsChance) {
  Recorder rec;
  Recipe recipe = quick(6);
  recipe.val_split = 0.25f;
  TrainSummary s = train(quadrant_config(), recipe, {data, "", dir / "run", 256}, rec);
  ASSERT_EQ(rec.epochs.size(), 6u);
  EXPECT_LT(rec.epochs.back().train_loss, 0.7 * rec.epochs.front().train_loss)
      << "first " << rec.epochs.front().train_loss << ", last " << rec.epochs.back().train_loss;
  EXPECT_GT(s.final_test_acc, 0.75) << "chance is 0.25";
  EXPECT_EQ(s.epochs, 6);
  // metrics.jsonl: one line per epoch with the documented keys.
  std::ifstream f(dir / "run/metrics.jsonl");
  std::string line;
  int lines = 0;
  double best_val = -1;
  int best_epoch = 0;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* k : {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                          "test_acc", "lr", "seconds", "img_per_s", "data_share"}) {
      EXPECT_TRUE(j.contains(k) && j[k].is_number()) << k;
    }
    EXPECT_EQ(j["epoch"].get<int>(), ++lines);
    EXPECT_GT(j["data_share"].get<double>(), 0.0);  // batches take some time ...
    EXPECT_LT(j["data_share"].get<double>(), 1.0);  // ... and the steps the rest
    if (j["val_acc"].get<double>() > best_val) {
      best_val = j["val_acc"].get<double>();
      best_epoch = lines;
    }
  }
  EXPECT_EQ(lines, 6);
  // best.safetensors is the epoch of the best validation accuracy (the first, on a tie), never
  // chosen by the test set; evaluating it reproduces both recorded accuracies.
  EXPECT_EQ(s.best_epoch, best_epoch);
  EXPECT_EQ(s.best_val_acc, best_val);
  LoadedModel best = load_model(dir / "run/best.safetensors");
  EXPECT_EQ(best.metadata.at("epoch"), std::to_string(best_epoch));
  DatasetSplits d = load_dataset(data, 4);
  hold_out_validation(d, recipe.val_split, recipe.seed);  // the run's split, again
  EXPECT_EQ(d.train->size() + d.val->size(), 600);
  EXPECT_DOUBLE_EQ(evaluate(best.model, *d.val, best.meta.normalize).accuracy, s.best_val_acc);
  EXPECT_DOUBLE_EQ(evaluate(best.model, *d.test, best.meta.normalize).accuracy, s.best_test_acc);
  // Plain checkpoints keep the recipe that trained them.
  EXPECT_EQ(Recipe::from_json(best.metadata.at("recipe")).to_json(), recipe.to_json());
  // The checkpoint records what it was trained on and how those images look (for vit predict),
  // and a run directory names its best checkpoint.
  EXPECT_EQ(best.meta.dataset, data);
  ASSERT_TRUE(best.meta.input.has_value());
  EXPECT_EQ(best.meta.input->background, d.style.background);
  EXPECT_FALSE(best.meta.input->fit_mnist) << "an idx:DIR source is not MNIST-fitted";
  EXPECT_EQ(checkpoint_path(dir / "run"), dir / "run/best.safetensors");
  EXPECT_EQ(checkpoint_path(dir / "run/last.safetensors"), dir / "run/last.safetensors");
  expect_error([&] { checkpoint_path(dir.path); }, "without best.safetensors or last.safetensors");
  // A second run into the same directory is refused rather than overwriting it, pointing to
  // resume() (the CLI turns `resume` into --resume: tests/test_cli.cpp).
  try {
    train(quadrant_config(), quick(2), {data, "", dir / "run", 256}, rec);
    ADD_FAILURE() << "overwrote an existing run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("`resume`"), std::string::npos) << e.what();
  }
}

TEST_F(Train, CheckpointRoundTrip) {
  Model m(quadrant_config());
  m.init(3);
  ModelMeta meta{quadrant_config(), {"a", "b", "c", "d"}, {{0.1f}, {0.3f}}};
  save_model(dir / "m.safetensors", m, meta, {{"epoch", "7"}});
  LoadedModel l = load_model(dir / "m.safetensors");
  EXPECT_EQ(l.meta.config, quadrant_config());
  EXPECT_EQ(l.meta.class_names, meta.class_names);
  EXPECT_EQ(l.meta.normalize.mean, meta.normalize.mean);
  EXPECT_EQ(l.metadata.at("epoch"), "7");
  EXPECT_EQ(l.metadata.at("format"), "vitcpp");
  EXPECT_EQ(std::memcmp(l.model.param_data(), m.param_data(), m.arena_floats() * 4), 0);
  // The metadata holds exactly the config keys the checkpoint format promises.
  auto cfg = nlohmann::json::parse(l.metadata.at("config"));
  std::vector<std::string> keys;
  for (auto it = cfg.begin(); it != cfg.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"act",
                                            "channels",
                                            "depth",
                                            "dim",
                                            "dist_token",
                                            "heads",
                                            "image_size",
                                            "layer_scale",
                                            "ln_eps",
                                            "mean_after_norm",
                                            "mean_class_token",
                                            "mlp_dim",
                                            "no_embed_class",
                                            "norm_pre",
                                            "num_classes",
                                            "patch_bias",
                                            "patch_size",
                                            "pool",
                                            "pos_embed",
                                            "qk_norm",
                                            "qkv_bias",
                                            "reg_tokens",
                                            "stem_channels"}));
  // A tensor missing, or of the wrong shape, or extra, is refused by name.
  std::vector<TensorToWrite> t;
  for (const ParamInfo& p : m.params()) t.push_back({p.name, p.shape, m.param_data() + p.offset});
  SafetensorsReader r(dir / "m.safetensors");
  auto md = r.metadata();
  auto without_head = t;
  without_head.pop_back();
  write_safetensors(dir / "missing.safetensors", without_head, md);
  EXPECT_THROW(load_model(dir / "missing.safetensors"), Error);
  auto extra = t;
  float one = 1;
  extra.push_back({"surprise", {1}, &one});
  write_safetensors(dir / "extra.safetensors", extra, md);
  EXPECT_THROW(load_model(dir / "extra.safetensors"), Error);
  auto bad_cfg = md;
  bad_cfg["config"] = "{\"dim\": 3}";
  write_safetensors(dir / "cfg.safetensors", t, bad_cfg);
  EXPECT_THROW(load_model(dir / "cfg.safetensors"), Error);
}

// With patch dropout in the first two epochs of three: the resumed run draws again (epoch 2) and
// then switches to every token (epoch 3).
TEST_F(Train, ResumeWithPatchDropoutIsBitwiseExact) {
  Recipe r = quick(3);
  r.patch_drop = 0.5f;
  r.full_token_epochs = 1;
  ASSERT_EQ(r.kept_patches(quadrant_config().num_patches(), 1), 8);
  ASSERT_EQ(r.kept_patches(quadrant_config().num_patches(), 2), 16);
  Recorder straight_rec, first_rec, second_rec, plain_rec;
  train(quadrant_config(), r, {data, "", dir / "straight", 256}, straight_rec);
  train(quadrant_config(), quick(3), {data, "", dir / "plain", 256}, plain_rec);
  EXPECT_NE(straight_rec.epochs[0].train_loss, plain_rec.epochs[0].train_loss);
  EXPECT_GT(straight_rec.epochs[2].test_acc.value(), 0.5);  // 4 classes
  // Without a validation split no epoch is chosen: no best checkpoint, no validation metrics, and
  // a run directory names its last checkpoint.
  EXPECT_FALSE(std::filesystem::exists(dir / "plain/best.safetensors"));
  EXPECT_FALSE(plain_rec.epochs[0].val_acc.has_value());
  EXPECT_EQ(checkpoint_path(dir / "plain"), dir / "plain/last.safetensors");
  {
    std::ifstream f(dir / "plain/metrics.jsonl");
    std::string line;
    std::getline(f, line);
    EXPECT_TRUE(nlohmann::json::parse(line).at("val_acc").is_null()) << line;
  }
  first_rec.stop_after = 1;
  train(quadrant_config(), r, {data, "", dir / "resumed", 256}, first_rec);
  ASSERT_EQ(first_rec.epochs.size(), 1u);
  resume(dir / "resumed", 0, "", second_rec);
  ASSERT_EQ(second_rec.epochs.size(), 2u);
  EXPECT_EQ(second_rec.epochs[0].train_loss, straight_rec.epochs[1].train_loss);
  EXPECT_EQ(second_rec.epochs[1].train_loss, straight_rec.epochs[2].train_loss);
  SafetensorsReader a(dir / "straight/last.safetensors"), b(dir / "resumed/last.safetensors");
  for (const TensorInfo& t : a.tensors()) {
    auto va = a.read_f32(t.name), vb = b.read_f32(t.name);
    EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * 4), 0) << t.name;
  }
}

// Mixup and CutMix draw per step from the seed: a run stopped inside an epoch (after its first
// step of epoch 2) and resumed ends with the same weights, and mixing changes the training.
TEST_F(Train, ResumeWithMixingIsBitwiseExact) {
  Recipe r = quick(3);
  r.augment.mixup_alpha = 0.8f;
  r.augment.cutmix_alpha = 1.0f;
  Recorder straight_rec, plain_rec, first_rec, second_rec;
  train(quadrant_config(), r, {data, "", dir / "mixed", 256}, straight_rec);
  train(quadrant_config(), quick(3), {data, "", dir / "unmixed", 256}, plain_rec);
  EXPECT_NE(straight_rec.epochs[0].train_loss, plain_rec.epochs[0].train_loss);
  first_rec.stop_after = 1;
  train(quadrant_config(), r, {data, "", dir / "mixed-resumed", 256}, first_rec);
  resume(dir / "mixed-resumed", 0, "", second_rec);
  ASSERT_EQ(second_rec.epochs.size(), 2u);
  EXPECT_EQ(second_rec.epochs[1].train_loss, straight_rec.epochs[2].train_loss);
  SafetensorsReader a(dir / "mixed/last.safetensors"), b(dir / "mixed-resumed/last.safetensors");
  for (const TensorInfo& t : a.tensors()) {
    auto va = a.read_f32(t.name), vb = b.read_f32(t.name);
    EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * 4), 0) << t.name;
  }
}

TEST(Recipe, PatchDropoutCountsAndJson) {
  Recipe r;
  r.epochs = 10;
  EXPECT_EQ(r.kept_patches(49, 0), 49);
  r.patch_drop = 0.5f;
  r.full_token_epochs = 3;
  EXPECT_EQ(r.kept_patches(49, 0), 24);  // timm: max(1, int(49 * 0.5))
  EXPECT_EQ(r.kept_patches(49, 6), 24);
  EXPECT_EQ(r.kept_patches(49, 7), 49);  // the last 3 epochs see every token
  EXPECT_EQ(r.kept_patches(196, 0), 98);
  // The counts of timm's int(L * (1 - p)) with p a Python float, where float32 would round across.
  const struct {
    int patches;
    float drop;
    int kept;
  } timm[] = {{25, 0.2f, 20},  {25, 0.4f, 15}, {25, 0.6f, 10},   {100, 0.1f, 90},
              {100, 0.3f, 70}, {100, 0.9f, 9}, {400, 0.1f, 360}, {49, 0.6f, 19}};
  for (const auto& t : timm) {
    r.patch_drop = t.drop;
    EXPECT_EQ(r.kept_patches(t.patches, 0), t.kept) << t.patches << " patches, drop " << t.drop;
  }
  r.patch_drop = 0.25f;
  EXPECT_EQ(r.kept_patches(49, 0), 36);
  r.patch_drop = 0.99f;
  EXPECT_EQ(r.kept_patches(49, 0), 1);
  r.full_token_epochs = 20;  // longer than the run: no epoch drops
  EXPECT_EQ(r.kept_patches(49, 0), 49);

  r.patch_drop = 0.3f;
  r.full_token_epochs = 2;
  const Recipe back = Recipe::from_json(r.to_json());
  EXPECT_EQ(back.patch_drop, 0.3f);
  EXPECT_EQ(back.full_token_epochs, 2);
  // Runs saved before patch dropout existed resume without it.
  auto j = nlohmann::json::parse(r.to_json());
  j.erase("patch_drop");
  j.erase("full_token_epochs");
  const Recipe old = Recipe::from_json(j.dump());
  EXPECT_EQ(old.patch_drop, 0.0f);
  EXPECT_EQ(old.full_token_epochs, 0);
  r.patch_drop = 1.0f;
  EXPECT_THROW(r.validate(), Error);
  r.patch_drop = -0.1f;
  EXPECT_THROW(r.validate(), Error);
  r.patch_drop = 0.5f;
  r.full_token_epochs = -1;
  EXPECT_THROW(r.validate(), Error);
}

TEST_F(Train, ResumeIsBitwiseExact) {
  // Two epochs straight, against one epoch, an interruption, and a resume for the second.
  Recorder straight_rec, first_rec, second_rec;
  // With a validation split: resume must hold out the same images.
  Recipe recipe = quick(2);
  recipe.val_split = 0.1f;
  train(quadrant_config(), recipe, {data, "", dir / "straight", 256}, straight_rec);
  first_rec.stop_after = 1;
  train(quadrant_config(), recipe, {data, "", dir / "resumed", 256}, first_rec);
  ASSERT_EQ(first_rec.epochs.size(), 1u);
  resume(dir / "resumed", 0, "", second_rec);
  ASSERT_EQ(second_rec.epochs.size(), 1u);
  EXPECT_EQ(second_rec.epochs[0].train_loss, straight_rec.epochs[1].train_loss);
  EXPECT_EQ(second_rec.epochs[0].test_acc, straight_rec.epochs[1].test_acc);
  EXPECT_EQ(second_rec.epochs[0].val_acc, straight_rec.epochs[1].val_acc);
  for (const char* f : {"last.safetensors", "last.train.safetensors"}) {
    SafetensorsReader a(dir / "straight/" + f), b(dir / "resumed/" + f);
    ASSERT_EQ(a.tensors().size(), b.tensors().size());
    for (const TensorInfo& t : a.tensors()) {
      auto va = a.read_f32(t.name), vb = b.read_f32(t.name);
      EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * 4), 0) << f << ": " << t.name;
    }
  }
  // Resuming a finished run trains nothing more; --epochs extends it.
  Recorder done;
  TrainSummary s = resume(dir / "resumed", 0, "", done);
  EXPECT_TRUE(done.epochs.empty());
  EXPECT_EQ(s.epochs, 2);
  resume(dir / "resumed", 3, "", done);
  EXPECT_EQ(done.epochs.size(), 1u);
  EXPECT_EQ(done.epochs[0].epoch, 3);
  // Fewer epochs than planned would change the schedule the run followed: refused.
  expect_error([&] { resume(dir / "resumed", 2, "", done); }, "was planned for 3 epochs");
}

// eval_every 2 over 5 epochs evaluates after epochs 2, 4 and 5 (the last) alone: the others have
// no test or validation numbers (null in metrics.jsonl), the evaluated ones those of a run that
// evaluates every epoch, whose weights it ends with bit for bit; the best epoch is the best
// evaluated one.
TEST_F(Train, EvaluatingEveryNthEpochTrainsTheSameWeights) {
  Recorder every_rec, second_rec;
  Recipe recipe = quick(5);
  recipe.val_split = 0.25f;
  train(quadrant_config(), recipe, {data, "", dir / "every", 256}, every_rec);
  recipe.eval_every = 2;
  const TrainSummary s =
      train(quadrant_config(), recipe, {data, "", dir / "second", 256}, second_rec);
  ASSERT_EQ(every_rec.epochs.size(), 5u);
  ASSERT_EQ(second_rec.epochs.size(), 5u);
  double best_val = -1;
  int best_epoch = 0;
  for (int e = 0; e < 5; ++e) {
    const EpochMetrics &a = every_rec.epochs[size_t(e)], &b = second_rec.epochs[size_t(e)];
    EXPECT_EQ(a.train_loss, b.train_loss) << "epoch " << e + 1;
    const bool evaluated = e == 1 || e == 3 || e == 4;
    EXPECT_EQ(b.test_acc.has_value(), evaluated) << "epoch " << e + 1;
    EXPECT_EQ(b.test_loss.has_value(), evaluated) << "epoch " << e + 1;
    EXPECT_EQ(b.val_acc.has_value(), evaluated) << "epoch " << e + 1;
    ASSERT_TRUE(a.test_acc && a.val_acc);
    if (!evaluated) continue;
    EXPECT_EQ(a.test_acc, b.test_acc) << "epoch " << e + 1;
    EXPECT_EQ(a.val_loss, b.val_loss) << "epoch " << e + 1;
    if (*b.val_acc > best_val) best_val = *b.val_acc, best_epoch = e + 1;
  }
  EXPECT_EQ(s.best_epoch, best_epoch);
  EXPECT_EQ(s.best_val_acc, best_val);
  EXPECT_EQ(s.final_test_acc, *every_rec.epochs[4].test_acc);
  std::ifstream f(dir / "second/metrics.jsonl");
  std::string line;
  for (int e = 0; std::getline(f, line); ++e) {
    const auto j = nlohmann::json::parse(line);
    for (const char* k : {"val_loss", "val_acc", "test_loss", "test_acc"}) {
      EXPECT_EQ(j.at(k).is_null(), e == 0 || e == 2) << k << " of epoch " << e + 1;
    }
  }
  SafetensorsReader a(dir / "every/last.safetensors"), b(dir / "second/last.safetensors");
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const TensorInfo& t : a.tensors()) {
    auto va = a.read_f32(t.name), vb = b.read_f32(t.name);
    EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * 4), 0) << t.name;
  }
}

// A second run given a directory a run is training in is refused (the directory's lock), also
// before the first has saved anything, where the look for a run's files alone finds none; so is
// a resume of a run that is still training. Neither changes the first run's files: it ends with
// the weights of the same run trained alone.
struct Intruder : Recorder {
  std::function<void()> on_first_step, on_first_epoch;
  void step(const StepProgress&) override {
    if (on_first_step) std::exchange(on_first_step, nullptr)();
  }
  void epoch(const EpochMetrics& m, int e) override {
    Recorder::epoch(m, e);
    if (on_first_epoch) std::exchange(on_first_epoch, nullptr)();
  }
};

TEST_F(Train, ASecondRunInTheSameDirectoryIsRefused) {
  const Recipe recipe = quick(2);
  const std::string run = dir / "run";
  const std::string in_use = "is in use: another process (pid " + std::to_string(getpid()) + " on ";
  Intruder first;
  Recorder second, alone;
  int refusals = 0;
  first.on_first_step = [&] {
    EXPECT_FALSE(std::filesystem::exists(run + "/last.train.safetensors"));
    expect_error([&] { train(quadrant_config(), recipe, {data, "", run, 256}, second); }, in_use);
    // A resume too, though there is nothing to resume yet: the run is named as in use.
    expect_error([&] { resume(run, 0, "", second); }, in_use);
    ++refusals;
  };
  first.on_first_epoch = [&] {
    expect_error([&] { resume(run, 0, "", second); }, in_use);
    ++refusals;
  };
  train(quadrant_config(), recipe, {data, "", run, 256}, first);
  EXPECT_EQ(refusals, 2);
  EXPECT_TRUE(second.epochs.empty());
  // A killed write's temporary file in the directory a new run starts in goes, as on resume.
  std::filesystem::create_directories(dir / "alone");
  std::ofstream(dir / "alone/best.safetensors.tmp-99999") << "half a checkpoint";
  train(quadrant_config(), recipe, {data, "", dir / "alone", 256}, alone);
  EXPECT_FALSE(std::filesystem::exists(dir / "alone/best.safetensors.tmp-99999"));
  ASSERT_EQ(first.epochs.size(), 2u);
  EXPECT_EQ(first.epochs[1].train_loss, alone.epochs[1].train_loss);
  SafetensorsReader a(run + "/last.safetensors"), b(dir / "alone/last.safetensors");
  for (const TensorInfo& t : a.tensors()) {
    auto va = a.read_f32(t.name), vb = b.read_f32(t.name);
    EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * 4), 0) << t.name;
  }
  // The lock goes with the run: the finished run resumes with more epochs.
  Recorder more;
  resume(run, 3, "", more);
  EXPECT_EQ(more.epochs.size(), 1u);
}

// Where the file system has no flock, the run trains unlocked and says so.
TEST_F(Train, WithoutFileLocksTheRunTrainsUnlockedWithANote) {
  struct Notes : Recorder {
    std::string text;
    void message(const std::string& m) override { text += m + "\n"; }
  } notes;
  g_flock_fails = true;
  struct Restore {
    ~Restore() { g_flock_fails = false; }
  } restore;
  train(quadrant_config(), quick(2), {data, "", dir / "unlocked", 256}, notes);
  EXPECT_EQ(notes.epochs.size(), 2u);
  EXPECT_NE(notes.text.find("cannot be locked on its file system (" +
                            std::string(std::strerror(ENOLCK)) + ")"),
            std::string::npos)
      << notes.text;
}

// tiny28 has its own Fashion-MNIST recipe (no crops, patch dropout, 55 epochs: docs/RECIPES.md);
// every other dataset gets the preset's recipe.
TEST(Presets, Tiny28HasItsOwnFashionRecipe) {
  const Preset& p = find_preset("tiny28");
  const Recipe& fashion = p.recipe_for("fashion-mnist");
  EXPECT_EQ(fashion.epochs, 55);
  EXPECT_EQ(fashion.patch_drop, 0.6f);
  EXPECT_EQ(fashion.full_token_epochs, 3);
  EXPECT_EQ(fashion.augment.crop_padding, 0);
  EXPECT_EQ(fashion.augment.erase_prob, 0.25f);
  EXPECT_TRUE(fashion.augment.hflip);
  EXPECT_EQ(fashion.lr, p.recipe.lr);
  EXPECT_EQ(fashion.batch_size, p.recipe.batch_size);
  for (const char* other : {"mnist", "idx:/data/fashion-mnist"}) {
    const Recipe& r = p.recipe_for(other);
    EXPECT_EQ(&r, &p.recipe) << other;
    EXPECT_EQ(r.epochs, 50) << other;
    EXPECT_EQ(r.augment.crop_padding, 2) << other;
    EXPECT_EQ(r.augment.erase_prob, 0.25f) << other;
    EXPECT_EQ(r.patch_drop, 0.0f) << other;
  }
  EXPECT_EQ(&find_preset("seed").recipe_for("fashion-mnist"), &find_preset("seed").recipe);
}

// The recipe JSON a checkpoint keeps, written from Recipe's field list, has the keys, order and
// values it had when each field was written out by hand (these are the lines `vit train` printed
// before the field lists, with `init`, `val_split`, the preprocessing, random resized crop,
// mixing and the later fields added since), and reads back to the same recipe.
TEST(Recipe, JsonKeepsItsKeysAndValues) {
  Recipe seed = find_preset("seed").recipe;
  seed.epochs = 2;
  const std::string seed_json =
      "{\"epochs\":2,\"batch_size\":128,\"micro_batch\":0,\"optimizer\":\"adam\",\"lr\":0.005,"
      "\"min_lr\":0.0,"
      "\"warmup_epochs\":0,\"cosine\":false,\"weight_decay\":0.0,\"beta1\":0.9,\"beta2\":0.999,"
      "\"label_smoothing\":0.0,\"clip_grad\":0.0,\"seed\":0,\"val_split\":0.0,\"qkv_init_std\":0."
      "02,\"pos_init\":"
      "\"normal\",\"init\":\"torch\",\"normalize\":\"data\",\"crop_pct\":0.875,\"crop_mode\":"
      "\"center\",\"interpolation\":\"bicubic\",\"exif\":true,\"rrc\":false,"
      "\"rrc_scale\":0.08,\"rrc_ratio\":1.3333334,\"cache_size\":0,\"crop_padding\":0,\"hflip\":"
      "false,\"rand_augment\":\"\","
      "\"erase_prob\":0.0,\"mixup\":0.0,\"cutmix\":0.0,\"mix_prob\":1.0,\"patch_"
      "drop\":0.0,"
      "\"full_token_epochs\":0,\"drop_path\":0.0,\"layer_decay\":1.0,\"freeze_backbone\":false,"
      "\"dtype\":\"fp32\",\"eval_every\":1}";
  EXPECT_EQ(seed.to_json(), seed_json);
  Recipe fashion = find_preset("tiny28").recipe_for("fashion-mnist");
  fashion.epochs = 1;
  fashion.warmup_epochs = 0;
  const std::string fashion_json =
      "{\"epochs\":1,\"batch_size\":32,\"micro_batch\":0,\"optimizer\":\"adamw\",\"lr\":0.001,"
      "\"min_lr\":1e-05,"
      "\"warmup_epochs\":0,\"cosine\":true,\"weight_decay\":0.05,\"beta1\":0.9,\"beta2\":0.999,"
      "\"label_smoothing\":0.1,\"clip_grad\":1.0,\"seed\":0,\"val_split\":0.0,\"qkv_init_std\":0.2,"
      "\"pos_init\":"
      "\"sincos\",\"init\":\"timm\",\"normalize\":\"data\",\"crop_pct\":0.875,\"crop_mode\":"
      "\"center\",\"interpolation\":\"bicubic\",\"exif\":true,\"rrc\":false,"
      "\"rrc_scale\":0.08,\"rrc_ratio\":1.3333334,\"cache_size\":0,\"crop_padding\":0,\"hflip\":"
      "true,\"rand_augment\":\"\","
      "\"erase_prob\":0.25,\"mixup\":0.0,\"cutmix\":0.0,\"mix_prob\":1.0,\"patch_"
      "drop\":0.6,"
      "\"full_token_epochs\":3,\"drop_path\":0.0,\"layer_decay\":1.0,\"freeze_backbone\":false,"
      "\"dtype\":\"fp32\",\"eval_every\":1}";
  EXPECT_EQ(fashion.to_json(), fashion_json);
  // JSON written before `dtype` existed (every checkpoint until then) reads as fp32; bf16 reads
  // back.
  std::string no_dtype = fashion_json;
  no_dtype.erase(no_dtype.find(",\"dtype\":\"fp32\""), 15);
  EXPECT_EQ(Recipe::from_json(no_dtype).to_json(), fashion_json);
  std::string bf16 = fashion_json;
  bf16.replace(bf16.find("\"fp32\""), 6, "\"bf16\"");
  EXPECT_EQ(Recipe::from_json(bf16).dtype, Dtype::kBf16);
  // JSON written before `eval_every` existed evaluates every epoch; 0 is refused.
  std::string no_eval_every = fashion_json;
  no_eval_every.erase(no_eval_every.find(",\"eval_every\":1"), 15);
  EXPECT_EQ(Recipe::from_json(no_eval_every).to_json(), fashion_json);
  std::string eval_never = fashion_json;
  eval_never.replace(eval_never.find("\"eval_every\":1"), 14, "\"eval_every\":0");
  expect_error([&] { Recipe::from_json(eval_never); }, "eval_every");
  for (const std::string& j : {seed_json, fashion_json}) {
    EXPECT_EQ(Recipe::from_json(j).to_json(), j);
  }
  // JSON written before `rand_augment` existed reads as without it.
  std::string no_ra = fashion_json;
  no_ra.erase(no_ra.find("\"rand_augment\":\"\","), 18);
  EXPECT_EQ(Recipe::from_json(no_ra).to_json(), fashion_json);
  // A config string timm would not read is refused where the recipe is read.
  std::string bad_ra = fashion_json;
  bad_ra.replace(bad_ra.find("\"rand_augment\":\"\""), 17, "\"rand_augment\":\"rand-q\"");
  EXPECT_THROW(Recipe::from_json(bad_ra), Error);
  // JSON written before `init` existed (every checkpoint until then) reads as timm's.
  std::string before = fashion_json;
  before.erase(before.find("\"init\":\"timm\","), 14);
  EXPECT_EQ(Recipe::from_json(before).init, Model::InitOptions::kTimm);
  EXPECT_EQ(Recipe::from_json(before).to_json(), fashion_json);
  // JSON from before the preprocessing, random resized crop and mixing: their defaults, off.
  before = fashion_json;
  const size_t from = before.find("\"crop_pct\""), to = before.find("\"crop_padding\"");
  before.erase(from, to - from);
  before.erase(before.find("\"mixup\""), before.find("\"patch_drop\"") - before.find("\"mixup\""));
  EXPECT_FALSE(Recipe::from_json(before).augment.rrc);
  EXPECT_EQ(Recipe::from_json(before).to_json(), fashion_json);
  // And JSON from before `normalize` as a run normalised by its data.
  before = fashion_json;
  before.erase(before.find("\"normalize\":\"data\","), 19);
  EXPECT_EQ(Recipe::from_json(before).normalize, Normalization::kData);
  EXPECT_EQ(Recipe::from_json(before).to_json(), fashion_json);
  // And JSON from before `val_split` as a run without a validation split.
  before = fashion_json;
  before.erase(before.find("\"val_split\":0.0,"), 16);
  EXPECT_EQ(Recipe::from_json(before).val_split, 0.0f);
  EXPECT_EQ(Recipe::from_json(before).to_json(), fashion_json);
  // A key of the wrong type, or a word that is no value of its field, is refused by name.
  std::string bad = seed_json;
  bad.replace(bad.find("\"adam\""), 6, "\"sgd\"");
  EXPECT_THROW(Recipe::from_json(bad), Error);
  bad = seed_json;
  bad.replace(bad.find("\"cosine\":false"), 14, "\"cosine\":\"no\"");
  EXPECT_THROW(Recipe::from_json(bad), Error);
  auto j = nlohmann::json::parse(seed_json);
  j.erase("lr");
  EXPECT_THROW(Recipe::from_json(j.dump()), Error);  // only fields added later may be missing
}

// A 8x8x1 model of `depth` blocks, D 16, 3 classes: small enough to step in a test.
Config fine_tuning_config(int depth) {
  Config c;
  c.image_size = 8;
  c.patch_size = 4;
  c.dim = 16;
  c.depth = depth;
  c.heads = 2;
  c.mlp_dim = 32;
  c.num_classes = 3;
  return c;
}

// Layer-wise lr decay as timm's param_groups_layer_decay groups a ViT (its group_matcher):
// embeddings layer 0, blocks.i layer i + 1, norm* with the last block, the rest (head) last; and
// the first AdamW step moves each tensor by its own lr (Adam's first step is lr * g / |g|).
TEST(Recipe, LayerDecayScalesEachTensorsLearningRate) {
  Config c = fine_tuning_config(2);
  c.reg_tokens = 1;
  c.norm_pre = true;
  Model model(c);
  model.init(1);
  const std::vector<float> scales = AdamW::lr_scales(model, 0.5f);
  for (size_t i = 0; i < model.params().size(); ++i) {
    const std::string& n = model.params()[i].name;
    const float want =
        n == "cls_token" || n == "reg_token" || n == "pos_embed" || n.starts_with("patch_embed.")
            ? 0.125f
        : n.starts_with("blocks.0.")                          ? 0.25f
        : n.starts_with("blocks.1.") || n.starts_with("norm") ? 0.5f
                                                              : 1.0f;
    EXPECT_EQ(scales[i], want) << n;
  }
  EXPECT_EQ(AdamW::lr_scales(model, 1.0f), std::vector<float>(scales.size(), 1.0f));

  Recipe r;
  r.lr = 1e-3f;
  r.weight_decay = 0.0f;
  r.layer_decay = 0.5f;
  const int B = 4;
  auto images = random_vector(int64_t(B) * 8 * 8, 2);
  std::vector<int32_t> labels = {0, 1, 2, 0};
  const std::vector<float> before(model.param_data(), model.param_data() + model.arena_floats());
  TrainStep step(model, r, B, B);
  step.run(images.data(), labels.data(), B, r.lr);
  for (size_t i = 0; i < model.params().size(); ++i) {
    const ParamInfo& p = model.params()[i];
    double moved = 0;
    for (int64_t j = 0; j < p.numel; ++j) {
      moved = std::max(moved,
                       std::fabs(double(model.param_data()[p.offset + j]) - before[p.offset + j]));
    }
    EXPECT_NEAR(moved, r.lr * scales[i], 1e-3 * r.lr * scales[i]) << p.name;
  }
}

// A linear probe (freeze_backbone): the heads' gradients are those of the whole backward, bit
// for bit, every other gradient stays zero, and a step moves the heads alone.
TEST(Recipe, FrozenBackboneTrainsTheHeadsAlone) {
  Config c = fine_tuning_config(1);
  c.dist_token = true;
  const int B = 4, K = c.num_classes;
  auto images = random_vector(int64_t(B) * 8 * 8, 3);
  auto dlogits = random_vector(int64_t(B) * K, 4);
  Model whole(c), probe(c);
  whole.init(5);
  probe.init(5);
  for (Model* m : {&whole, &probe}) m->enable_training(B);
  probe.freeze_backbone(true);
  EXPECT_TRUE(probe.backbone_frozen());
  for (Model* m : {&whole, &probe}) {
    m->zero_grad();
    m->forward(images.data(), B);
    m->backward(dlogits.data());
  }
  for (const ParamInfo& p : probe.params()) {
    const bool head = p.name.starts_with("head");
    EXPECT_EQ(p.trainable, head) << p.name;
    const float* g = probe.grad(p.name).data;
    const float* w = whole.grad(p.name).data;
    if (head) {
      EXPECT_EQ(std::memcmp(g, w, size_t(p.numel) * 4), 0) << p.name;
    } else {
      EXPECT_TRUE(std::all_of(g, g + p.numel, [](float v) { return v == 0.0f; })) << p.name;
    }
  }
  Recipe r;
  r.freeze_backbone = true;
  std::vector<int32_t> labels = {0, 1, 2, 0};
  Model fresh(c);
  fresh.init(5);
  const std::vector<float> before(fresh.param_data(), fresh.param_data() + fresh.arena_floats());
  TrainStep step(fresh, r, B, B);
  step.run(images.data(), labels.data(), B, r.lr);
  for (const ParamInfo& p : fresh.params()) {
    const bool same = std::memcmp(fresh.param_data() + p.offset, before.data() + p.offset,
                                  size_t(p.numel) * 4) == 0;
    EXPECT_EQ(same, !p.name.starts_with("head")) << p.name;
  }
  probe.freeze_backbone(false);
  EXPECT_TRUE(std::all_of(probe.params().begin(), probe.params().end(),
                          [](const ParamInfo& p) { return p.trainable; }));
}

// The resume state (last.train.safetensors' metadata) from its field list: the keys runs have
// always written, numbers exactly, and back.
// A program that sets a locale with a decimal comma (de_DE, built here with localedef) reads and
// writes recipes and run states as any other: strtod and printf would read "0.003" as 0 and write
// "0,97".
TEST(TrainState, NumbersIgnoreTheProgramsLocale) {
  TempDir dir("locale");
  const std::string build = "localedef -i de_DE -f UTF-8 " + (dir / "de_DE.UTF-8") + " 2>&1";
  if (std::system(build.c_str()) != 0) GTEST_SKIP() << "localedef cannot build de_DE (locales)";
  const std::string before = std::setlocale(LC_ALL, nullptr);
  setenv("LOCPATH", dir.path.c_str(), 1);
  const bool set = std::setlocale(LC_ALL, "de_DE.UTF-8") != nullptr;
  const std::string comma = std::localeconv()->decimal_point;
  Recipe r;
  std::string lr_error;
  try {
    set_field(r, "lr", "0.003");
  } catch (const Error& e) {
    lr_error = e.what();
  }
  TrainState s;
  s.recipe = r;
  s.best_acc = 0.9735;
  const std::map<std::string, std::string> md = s.to_metadata();
  std::string back_error;
  TrainState back;
  try {
    back = TrainState::from_metadata(md, "run");
  } catch (const Error& e) {
    back_error = e.what();
  }
  std::setlocale(LC_ALL, before.c_str());
  unsetenv("LOCPATH");
  ASSERT_TRUE(set);
  ASSERT_EQ(comma, ",") << "de_DE's decimal point";
  EXPECT_EQ(lr_error, "");
  EXPECT_FLOAT_EQ(r.lr, 0.003f);
  EXPECT_NE(md.at("recipe").find("\"lr\":0.003,"), std::string::npos) << md.at("recipe");
  EXPECT_EQ(md.at("best_acc"), "0.97350000000000003");
  EXPECT_EQ(back_error, "");
  EXPECT_EQ(back.best_acc, 0.9735);
  EXPECT_FLOAT_EQ(back.recipe.lr, 0.003f);
}

TEST(TrainState, MetadataKeysAndRoundTrip) {
  TrainState s;
  s.epochs_done = 3;
  s.step = 191;
  s.optimizer_step = 191;
  s.recipe = find_preset("tiny28").recipe;
  s.data_spec = "mnist";
  s.data_dir = "/data/x";
  s.best_acc = 0.9735;
  s.best_epoch = 2;
  s.pos.step = 5;
  s.pos.loss_sum = 0.1;
  s.pos.correct = 77;
  s.pos.seen = 160;
  s.pos.seconds = 1.25;
  const std::map<std::string, std::string> md = s.to_metadata();
  std::vector<std::string> keys;
  for (const auto& [k, v] : md) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "best_acc", "best_epoch", "best_test_acc", "data", "data_dir", "epoch",
                      "epoch_correct", "epoch_data_seconds", "epoch_loss_sum", "epoch_seconds",
                      "epoch_seen", "epoch_step", "epoch_wait_seconds", "kind", "optimizer_step",
                      "recipe", "skip_bad_images", "step"}));
  EXPECT_EQ(md.at("kind"), "train-state");
  EXPECT_EQ(md.at("epoch"), "3");
  EXPECT_EQ(md.at("best_acc"), "0.97350000000000003");  // %.17g, as always
  EXPECT_EQ(md.at("epoch_loss_sum"), "0.10000000000000001");
  EXPECT_EQ(md.at("recipe"), s.recipe.to_json());
  const TrainState back = TrainState::from_metadata(md, "run");
  EXPECT_EQ(back.to_metadata(), md);
  EXPECT_EQ(back.best_acc, s.best_acc);
  EXPECT_EQ(back.pos.loss_sum, s.pos.loss_sum);
  auto expect_refused = [&](const std::map<std::string, std::string>& m,
                            const std::string& phrase) {
    expect_error([&] { TrainState::from_metadata(m, "run/last.train.safetensors"); }, phrase);
  };
  auto m = md;
  m.erase("epoch_seen");
  expect_refused(m, "no 'epoch_seen'");
  m = md;
  m.erase("best_test_acc");  // states written before it existed
  m.erase("skip_bad_images");
  m.erase("epoch_data_seconds");
  EXPECT_EQ(TrainState::from_metadata(m, "run").best_test_acc, 0.0);
  EXPECT_FALSE(TrainState::from_metadata(m, "run").skip_bad_images);
  m = md;
  m["step"] = "12x";
  expect_refused(m, "'step' is not a valid integer");
  m = md;
  m["best_acc"] = "nan";
  expect_refused(m, "'best_acc' is not a valid number");
  m = md;
  m["kind"] = "model";
  expect_refused(m, "not a vitcpp training state");
}

// A run's settings: the preset's, then the given fields by name, with the two rules that follow a
// preset (flips only where labels survive them, min_lr under a lower lr) and mlp_ratio.
TEST(Presets, SettingsFromTheGivenFields) {
  const Preset& p = find_preset("tiny28");
  RunSettings s = preset_settings(p, "mnist", {{"dim", "96"}, {"heads", "6"}},
                                  {{"lr", "0.002"}, {"epochs", "3"}});
  EXPECT_EQ(s.config.dim, 96);
  EXPECT_EQ(s.config.heads, 6);
  EXPECT_EQ(s.config.mlp_dim, 384);  // the preset's ratio, 4
  EXPECT_EQ(s.recipe.lr, 0.002f);
  EXPECT_EQ(s.recipe.epochs, 3);
  s = preset_settings(p, "mnist", {}, {{"cosine", "constant"}, {"batch_size", "8"}});
  EXPECT_FALSE(s.recipe.cosine);
  EXPECT_EQ(s.recipe.batch_size, 8);
  EXPECT_FALSE(s.recipe.augment.hflip);  // digits: the preset's flips are off
  EXPECT_TRUE(preset_settings(p, "fashion-mnist", {}, {}).recipe.augment.hflip);
  EXPECT_EQ(preset_settings(p, "fashion-mnist", {}, {}).recipe.epochs, 55);
  EXPECT_TRUE(preset_settings(p, "mnist", {}, {{"hflip", "true"}}).recipe.augment.hflip);
  EXPECT_FALSE(preset_settings(p, "fashion-mnist", {}, {{"hflip", "false"}}).recipe.augment.hflip);
  EXPECT_EQ(preset_settings(p, "mnist", {}, {{"lr", "1e-6"}}).recipe.min_lr, 0.0f);
  EXPECT_EQ(preset_settings(p, "mnist", {{"mlp_ratio", "2"}}, {}).config.mlp_dim, 128);
  EXPECT_EQ(preset_settings(p, "mnist", {{"mlp_dim", "100"}}, {}).config.mlp_dim, 100);
  // Fewer epochs than the preset's warm-up: the warm-up is shortened, and the notes say so; a
  // warm-up given with them must fit.
  const RunSettings short_run = preset_settings(p, "mnist", {}, {{"epochs", "1"}});
  EXPECT_EQ(short_run.recipe.warmup_epochs, 0);
  ASSERT_EQ(short_run.notes.size(), 1u);
  EXPECT_NE(short_run.notes[0].find("warm-up of 1 epoch is shortened to 0"), std::string::npos);
  EXPECT_TRUE(preset_settings(p, "mnist", {}, {{"epochs", "3"}}).notes.empty());
  auto expect_refused = [&](const FieldValues& model, const FieldValues& recipe,
                            const std::string& phrase) {
    expect_error([&] { preset_settings(p, "mnist", model, recipe); }, phrase);
  };
  expect_refused({{"heads", "5"}}, {}, "impossible model: config: dim 64 is not divisible");
  // A new model sees its whole image (a pretrained one may not: Config::grid).
  expect_refused({{"image_size", "30"}}, {},
                 "impossible model: image_size 30 is not divisible by patch_size 4");
  expect_refused({}, {{"epochs", "1"}, {"warmup_epochs", "1"}},
                 "`warmup_epochs` must be in [0, epochs)");
  expect_refused({{"dim", "0"}}, {}, "impossible model: `dim` must be in [1, 65536] (got 0)");
  expect_refused({{"mlp_ratio", "1.01"}}, {}, "`mlp_ratio` times `dim` must be a whole number");
  expect_refused({{"pos_embed", "fourier"}}, {}, "`pos_embed` must be 'learned' or 'sincos'");
  expect_refused({}, {{"optimizer", "sgd"}}, "impossible recipe: `optimizer` must be");
  expect_refused({}, {{"lr", "1e-6"}, {"min_lr", "1e-5"}}, "`min_lr` must be in [0, lr]");
  expect_refused({}, {{"epochs", "many"}}, "`epochs` must be an integer");
  expect_refused({}, {{"seed", "-1"}}, "`seed` must be an integer >= 0");
  expect_refused({}, {{"bogus", "1"}}, "no field `bogus`");
  expect_refused({}, {{"schedule", "constant"}}, "no field `schedule`");  // an option, not a field
}

}  // namespace
}  // namespace vit::test

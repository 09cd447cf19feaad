// The training loop: epochs of shuffled, augmented batches; AdamW with warm-up + cosine schedule;
// evaluation after every epoch; atomic checkpoints and exact resume, also from the middle of an
// epoch when training was asked to stop (Ctrl-C).
//
// Files in the run directory:
//   last.train.safetensors  everything resume needs, in one atomically written file: weights,
//                           AdamW moments (optimizer.exp_avg.*, optimizer.exp_avg_sq.*), config,
//                           recipe, epoch, step and the position inside an interrupted epoch;
//   last.safetensors        the same weights as a plain checkpoint, for eval / predict / PyTorch;
//   best.safetensors        the weights of the best validation accuracy so far (only with a
//                           validation split: the test set never chooses an epoch);
//   metrics.jsonl           one line per finished epoch;
//   skipped-images.txt      the unreadable images left out (skip_bad_images), when there are;
//   .vit.lock               locked by the process training there (core/dir_lock.hpp).
// Resume reads only last.train.safetensors, so a crash between two writes can never pair files
// from different steps. In a distributed run (vit::Comm) every rank runs this loop on the same
// batches, shares each step's micro-batches and each evaluation with the others, and takes the
// same optimizer step; rank 0 alone writes the files.
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/dir_lock.hpp"
#include "core/numbers.hpp"
#include "model/executor.hpp"
#include "train/prefetch.hpp"
#include "train/state.hpp"
#include "vit/checkpoint.hpp"
#include "vit/dist.hpp"
#include "vit/error.hpp"
#include "vit/isa.hpp"
#include "vit/memory.hpp"
#include "vit/optim.hpp"
#include "vit/pretrained.hpp"
#include "vit/safetensors.hpp"
#include "vit/train.hpp"

namespace vit {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kLast = "last.safetensors";
constexpr const char* kLastTrain = "last.train.safetensors";
constexpr const char* kBest = "best.safetensors";
constexpr const char* kMetrics = "metrics.jsonl";
constexpr const char* kSkipped = "skipped-images.txt";
constexpr const char* kMoment1 = "optimizer.exp_avg.";
constexpr const char* kMoment2 = "optimizer.exp_avg_sq.";

// Everything a run carries from step to step: its resume state (TrainState, state.hpp: what
// last.train.safetensors keeps besides tensors) and what is rebuilt from it.
struct Run : TrainState {
  std::string dir;
  std::string cache_dir;  // where decoded folder images are kept (this machine's; not saved)
  Config config;
  DatasetSplits data;
  Normalization norm;
  std::unique_ptr<Model> model;
  std::unique_ptr<TrainStep> train_step;  // the training step
  AdamW* opt = nullptr;                   // its optimizer (the moments checkpoints keep)
  Comm* comm = nullptr;                   // a distributed run's ranks; null: one process
  std::unique_ptr<DirLock> lock;          // the writer's hold on dir
  bool writer() const { return !comm || comm->rank() == 0; }
  bool distributed() const { return comm && comm->distributed(); }
};

std::string path_in(const Run& r, const char* name) {
  return (fs::path(r.dir) / name).string();
}

// "1 epoch", "3 epochs".
std::string epochs_text(int64_t n) {
  return std::to_string(n) + (n == 1 ? " epoch" : " epochs");
}

std::string exact(double v) {
  return general_text(v, 17);
}

void check_data_fits(const Config& c, const DatasetSplits& d) {
  const SampleShape s = d.train->shape();
  VIT_CHECK(s.channels == c.channels && s.height == c.image_size && s.width == c.image_size,
            "dataset '" + d.name + "' has " + std::to_string(s.channels) + "x" +
                std::to_string(s.height) + "x" + std::to_string(s.width) +
                " images but the model expects " + std::to_string(c.channels) + "x" +
                std::to_string(c.image_size) + "x" + std::to_string(c.image_size) +
                ": the model's `image_size` and `channels` must be the data's (a pretrained "
                "model's channels are its own; image folders are decoded at the model's size and "
                "channels)");
  VIT_CHECK(d.train->size() > 0, "dataset '" + d.name + "' has no training images");
}

void check_memory(const Config& c, int batch) {
  require_memory(Model::training_bytes(c, batch),
                 "training this model with batch " + std::to_string(batch),
                 "use a smaller `batch_size` or model");
}

// The batch size of r's steps: the recipe's, at most the training set.
int step_batch(const Run& r) {
  return int(std::min<int64_t>(r.recipe.batch_size, r.data.train->size()));
}

// Every rank's n values (all[rank * n + i]), and the first rank after 0 whose values are not rank
// 0's (0 when there is none).
int first_rank_unlike_rank0(Comm& comm, const double* mine, int n, std::vector<double>* all) {
  const int ranks = comm.size();
  all->assign(size_t(ranks) * n, 0.0);
  comm.all_gather(mine, std::vector<int>(size_t(ranks), n), all->data());
  for (int rank = 1; rank < ranks; ++rank) {
    if (!std::equal(all->begin(), all->begin() + n, all->begin() + int64_t(rank) * n)) return rank;
  }
  return 0;
}

// "1 micro-batch", "4 micro-batches".
std::string micro_batches_text(int n) {
  return std::to_string(n) + (n == 1 ? " micro-batch" : " micro-batches");
}

// r's training step (and its optimizer), once the memory it needs is known to be there. A
// distributed run needs at least one micro-batch per rank: where the automatic choice
// (micro_batch_images) gives fewer, the recipe's micro_batch becomes the batch over the ranks,
// kept in the run's state so that a resume on another number of ranks cuts the batches alike.
// A run begun in one process and resumed on several keeps its cut (its bits), ranks left over
// waiting.
void make_step(Run& r, TrainReporter& reporter, bool resuming) {
  const int B = step_batch(r);
  check_memory(r.config, B);
  if (r.distributed()) {
    const int N = r.config.num_tokens(), ranks = r.comm->size();
    auto parts_of = [&](int micro_batch) {
      return micro_batch_count(B, N, micro_batch_images(r.config, B, N, micro_batch));
    };
    if (r.recipe.micro_batch == 0 && !resuming && parts_of(0) < ranks) {
      r.recipe.micro_batch = std::max(1, B / ranks);
      const int cut = parts_of(r.recipe.micro_batch);
      reporter.message("note: " + std::to_string(ranks) +
                       " ranks share each step's micro-batches; this model would train a batch "
                       "in fewer, so each step is cut into " +
                       std::to_string(cut) + " (`micro_batch` " +
                       std::to_string(r.recipe.micro_batch) + " gives one process the same bits)" +
                       (cut % ranks ? ", which the ranks share unevenly" : ""));
    }
    const int parts = parts_of(r.recipe.micro_batch);
    if (parts < ranks) {
      const std::string waiting = std::to_string(ranks - parts) + " of the " +
                                  std::to_string(ranks) + " ranks " +
                                  (ranks - parts == 1 ? "waits" : "wait");
      // Still automatic: a resumed run that began in one process.
      reporter.message(r.recipe.micro_batch == 0
                           ? "note: this run began in one process, whose cut of each step into " +
                                 micro_batches_text(parts) +
                                 " it keeps, so as to train the same bits: " + waiting
                           : "note: each step is cut into " + micro_batches_text(parts) +
                                 " (`micro_batch` " + std::to_string(r.recipe.micro_batch) +
                                 "), so " + waiting + ": a smaller `micro_batch` shares the work");
    }
    if (r.recipe.dtype == Dtype::kBf16) {
      // bf16's products on AMX and on AVX512-BF16 round differently (docs/CONVENTIONS.md): ranks
      // mixing them would not give one process's bits.
      const double mine = amx_active() ? 1 : 0;
      std::vector<double> all;
      if (const int rank = first_rank_unlike_rank0(*r.comm, &mine, 1, &all)) {
        auto kernel = [](double amx) { return amx ? "AMX-BF16" : "AVX512-BF16"; };
        throw EveryRankError("rank 0 runs bf16's products on " + std::string(kernel(all[0])) +
                             " and rank " + std::to_string(rank) + " on " + kernel(all[rank]) +
                             ", which round differently: choose one for every rank (mpirun -x "
                             "VIT_AMX=0 runs AVX512-BF16 everywhere)");
      }
    }
    // Besides one process's memory: a gradient buffer for each of this rank's micro-batches (held
    // until sent) and its slice of every other micro-batch, for each rank on this machine.
    const int64_t floats = int64_t(r.model->arena_floats());
    const int64_t buffers = (parts + ranks - 1) / ranks * floats + parts * (floats / ranks + 16);
    require_memory((Model::training_bytes(r.config, B) + 4 * buffers) * r.comm->local_size(),
                   "training this model with batch " + std::to_string(B) + " on " +
                       std::to_string(r.comm->local_size()) + " ranks of this machine",
                   "use fewer ranks on it, a smaller `batch_size` or larger micro-batches "
                   "(`micro_batch`)");
  }
  r.train_step = std::make_unique<TrainStep>(*r.model, r.recipe, B, r.recipe.micro_batch, r.comm);
  r.opt = &r.train_step->optimizer();
}

ModelMeta model_meta(const Run& r) {
  ModelMeta m{r.config, r.data.class_names, r.norm, r.data.name, r.data.style};
  // Files for prediction are prepared as the training images were: by the recipe's preprocessing,
  // or, after images of the model's own size, whole (crop_pct 1).
  m.preprocess = r.recipe.preprocess;
  if (!r.data.preprocessed) m.preprocess.crop_pct = 1.0, m.preprocess.crop_mode = CropMode::kCenter;
  return m;
}

// vit::EveryRankError unless every rank read a dataset of rank 0's splits' sizes and class names:
// the same path on each machine may hold another copy, whose batches would not be the same.
void check_same_data(Run& r) {
  const DatasetSplits& d = r.data;
  uint32_t names = 2166136261u;  // FNV-1a of the class names, each ended by a newline
  for (const std::string& n : d.class_names) {
    for (char ch : n + '\n') names = (names ^ uint8_t(ch)) * 16777619u;
  }
  constexpr int kFields = 5;
  const double mine[kFields] = {double(d.train->size()), d.val ? double(d.val->size()) : -1.0,
                                double(d.test->size()), double(d.class_names.size()),
                                double(names)};
  std::vector<double> all;
  const int rank = first_rank_unlike_rank0(*r.comm, mine, kFields, &all);
  if (rank == 0) return;
  auto describe = [&](int k) {
    const double* f = &all[size_t(k) * kFields];
    return std::to_string(int64_t(f[0])) + " train / " +
           (f[1] >= 0 ? std::to_string(int64_t(f[1])) + " validation / " : "") +
           std::to_string(int64_t(f[2])) + " test images of " + std::to_string(int64_t(f[3])) +
           " classes";
  };
  const std::string other = describe(rank);
  throw EveryRankError("the ranks read different datasets from '" + r.data_spec +
                       "' (rank 0: " + describe(0) + "; rank " + std::to_string(rank) + ": " +
                       (other == describe(0) ? "other class names" : other) +
                       "): every machine must hold the same files at that path");
}

// The dataset of r's spec, checked against its model, with the recipe's validation split held
// out (the same one on every resume: it depends only on the seed and the fraction). A source that
// decodes files reports its progress.
void open_data(Run& r, TrainReporter& reporter) {
  DatasetOptions o;
  o.num_classes = r.config.num_classes;
  o.data_dir = r.data_dir;
  o.cache_dir = r.cache_dir;
  o.shape = {r.config.channels, r.config.image_size, r.config.image_size};
  o.skip_bad = r.skip_bad_images;
  o.preprocess = r.recipe.preprocess;
  o.train_scale = r.recipe.cache_size;
  o.progress = [&reporter](int64_t done, int64_t total) {
    reporter.progress("decoding images", done, total);
  };
  // One process: a request to stop gives up decoding (vit::Stopped) instead of finishing it. (The
  // ranks of a distributed run wait on one another here, so they decode to the end.)
  if (!r.distributed()) o.stop = [&reporter] { return reporter.stop_requested(); };
  // The ranks of a machine one after the other, so that a folder dataset's cache is built once
  // (by local rank 0) and then read by the others, which wait as long as that takes.
  if (r.distributed()) {
    if (r.comm->local_rank() == 0) r.data = load_dataset(r.data_spec, o);
    r.comm->barrier(/*bounded=*/false);
    if (r.comm->local_rank() != 0) r.data = load_dataset(r.data_spec, o);
    // ... and wait for the others to read it (or decode it, without a cache) just as long.
    r.comm->barrier(/*bounded=*/false);
    check_same_data(r);
  } else {
    r.data = load_dataset(r.data_spec, o);
  }
  check_data_fits(r.config, r.data);
  if (r.recipe.val_split > 0) hold_out_validation(r.data, r.recipe.val_split, r.recipe.seed);
}

// The summary of a run stopped on request while its images were decoded, before its first step:
// stopped_epoch 0 (a new run has written nothing; a resumed one is as it was).
TrainSummary stopped_before_training(const Run& r) {
  TrainSummary s;
  s.dir = r.dir;
  s.data = r.data_spec;
  s.data_dir = r.data_dir;
  s.epochs = int(r.epochs_done);
  s.interrupted = true;
  return s;
}

// Lists the images the dataset left out (skip_bad_images) in the run directory, and says so.
void note_skipped(const Run& r, TrainReporter& reporter) {
  if (r.data.skipped.empty() || !r.writer()) return;
  std::string text;
  for (const std::string& line : r.data.skipped) text += line + "\n";
  write_file_atomically(path_in(r, kSkipped), text);
  const size_t n = r.data.skipped.size();
  reporter.message("note: " + std::to_string(n) +
                   (n == 1 ? " unreadable image was left out; it is"
                           : " unreadable images were left out; they are") +
                   " listed in " + path_in(r, kSkipped));
}

// What a plain checkpoint (last, best) keeps besides the model: where in the run it was written
// and the recipe that trained it.
std::map<std::string, std::string> checkpoint_extra(const Run& r, int64_t epoch) {
  return {{"epoch", std::to_string(epoch)},
          {"step", std::to_string(r.step)},
          {"recipe", r.recipe.to_json()}};
}

// last.train.safetensors (the resume state), then last.safetensors (the plain checkpoint).
void save_last(Run& r) {
  r.optimizer_step = r.opt->step_count();
  if (!r.writer()) return;
  const std::map<std::string, std::string> md = r.to_metadata();
  std::vector<TensorToWrite> moments;
  for (const ParamInfo& p : r.model->params()) {
    if (!p.trainable) continue;
    moments.push_back({kMoment1 + p.name, p.shape, r.opt->exp_avg() + p.offset});
    moments.push_back({kMoment2 + p.name, p.shape, r.opt->exp_avg_sq() + p.offset});
  }
  save_model(path_in(r, kLastTrain), *r.model, model_meta(r), md, moments);
  save_model(path_in(r, kLast), *r.model, model_meta(r), checkpoint_extra(r, r.epochs_done));
}

void append_metrics(const Run& r, const EpochMetrics& m) {
  if (!r.writer()) return;
  std::ofstream f(path_in(r, kMetrics), std::ios::app);
  f << m.to_json() << "\n";
  f.flush();
  VIT_CHECK(f.good(), "cannot append to '" + path_in(r, kMetrics) + "'");
}

TrainSummary run_epochs(Run& r, TrainReporter& rep) {
  const Recipe& rc = r.recipe;
  const AugmentOptions augment = rc.augment_options();
  const Dataset& train = *r.data.train;
  const int64_t n = train.size();
  const int B = step_batch(r);
  const int64_t steps = (n + B - 1) / B;
  const int64_t total = steps * rc.epochs, warmup = steps * rc.warmup_epochs;

  // The next batch is assembled on a worker thread while this one trains.
  BatchPrefetcher batches(train, r.norm, augment, rc.seed, B, train.shape().pixels());
  const int Np = r.config.num_patches();
  std::vector<int32_t> keep;  // patch dropout's draws [B, kept]
  const int depth = r.config.depth;
  const bool depth_drop = rc.drop_path > 0.0f;
  std::vector<float> depth_factors(depth_drop ? size_t(B) * size_t(2 * depth) : 0);  // drop-path's
  TrainSummary summary;
  summary.dir = r.dir;
  summary.data = r.data_spec;
  summary.data_dir = r.data_dir;
  const bool validate = r.data.val != nullptr;
  // The summary's best epoch, from the run's state (also what earlier sessions of it found).
  auto note_best = [&] {
    if (!validate || r.best_epoch == 0) return;
    summary.best_epoch = r.best_epoch;
    summary.best_val_acc = r.best_acc;
    summary.best_test_acc = r.best_test_acc;
  };
  const auto run_start = Clock::now();
  // Every rank stops at the same step: the first where any of them was asked to.
  auto stop_requested = [&] {
    const bool mine = rep.stop_requested();
    return r.comm ? r.comm->any(mine) : mine;
  };
  auto eval = [&](const Dataset& d) { return evaluate(*r.model, d, r.norm, 256, 0, r.comm); };
  if (r.epochs_done >= rc.epochs) summary.final_test_acc = eval(*r.data.test).accuracy;
  for (int64_t e = r.epochs_done; e < rc.epochs; ++e) {
    const auto start = Clock::now();
    const double seconds_before = r.pos.seconds;  // time spent on this epoch before a resume
    if (r.comm) r.comm->take_wait_seconds();      // (the evaluation's waits are not the steps')
    const std::vector<int64_t> order = epoch_order(n, rc.seed, e);
    const int kept = rc.kept_patches(Np, e);
    const bool drop = kept < Np;
    if (drop) keep.resize(size_t(B) * size_t(kept));
    float lr = rc.lr;
    auto batch_size = [&](int64_t s) { return int(std::min<int64_t>(B, n - s * B)); };
    if (r.pos.step < steps) {
      batches.start(order.data() + r.pos.step * B, batch_size(r.pos.step), e, r.pos.step);
    }
    for (int64_t s = r.pos.step; s < steps; ++s) {
      const int b = batch_size(s);
      const auto batch_start = Clock::now();
      const float* images = nullptr;
      const int32_t* labels = nullptr;
      const Mixed mixed = batches.wait(&images, &labels);
      if (s + 1 < steps) batches.start(order.data() + (s + 1) * B, batch_size(s + 1), e, s + 1);
      // The time the step waited for its images.
      r.pos.data_seconds += std::chrono::duration<double>(Clock::now() - batch_start).count();
      lr = rc.lr_at(r.step, total, warmup);
      if (drop) sample_kept_patches(order.data() + s * B, b, Np, kept, rc.seed, e, keep.data());
      if (depth_drop) {
        sample_drop_path(order.data() + s * B, b, depth, rc.drop_path, rc.seed, e,
                         depth_factors.data());
      }
      const StepStats stats =
          r.train_step->run(images, labels, b, lr, drop ? keep.data() : nullptr, drop ? kept : 0,
                            mixed.lam, depth_drop ? depth_factors.data() : nullptr);
      if (r.comm) r.pos.wait_seconds += r.comm->take_wait_seconds();
      const double loss = stats.loss, grad_norm = stats.grad_norm;
      if (!stats.updated) {
        std::ostringstream msg;
        msg << "training diverged at epoch " << e + 1 << ", step " << s + 1 << " of " << steps
            << ": " << (std::isfinite(loss) ? "the gradient norm" : "the loss") << " is "
            << (std::isfinite(loss) ? grad_norm : loss) << ". Nothing was saved from this epoch; "
            << "the last good checkpoint is " << path_in(r, kLast) << " (epoch " << r.epochs_done
            << "). Try a lower learning rate (`lr`, now " << rc.lr << ")"
            << (rc.clip_grad > 0 ? "" : " or gradient clipping (`clip_grad` 1)") << ".";
        throw EveryRankError(msg.str());  // every rank has the same summed gradient
      }
      r.pos.correct += stats.correct;
      r.pos.loss_sum += loss * b;
      r.pos.seen += b;
      ++r.step;
      r.pos.step = s + 1;

      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      r.pos.seconds = seconds_before + elapsed;
      StepProgress p;
      p.epoch = int(e + 1);
      p.epochs = rc.epochs;
      p.step = s + 1;
      p.steps = steps;
      p.loss = r.pos.loss_sum / r.pos.seen;
      p.acc = double(r.pos.correct) / r.pos.seen;
      p.img_per_s = r.pos.seen / std::max(r.pos.seconds, 1e-9);
      p.eta_seconds = (n - r.pos.seen) / std::max(p.img_per_s, 1e-9);
      rep.step(p);
      if (s + 1 < steps && stop_requested()) {
        save_last(r);
        // The other ranks end when rank 0 has saved (mpirun, stopping a job, ends all of its
        // processes once one ends).
        if (r.distributed()) r.comm->barrier();
        summary.interrupted = true;
        summary.stopped_epoch = int(e + 1);
        summary.stopped_step = s + 1;
        summary.epochs = int(r.epochs_done);
        note_best();
        summary.seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
        return summary;
      }
    }
    const double train_seconds = r.pos.seconds;
    // Evaluated after every eval_every-th epoch and the last (the weights are the same either way).
    const bool evaluated = (e + 1) % rc.eval_every == 0 || e + 1 == rc.epochs;
    EvalResult ev, val;
    if (evaluated) ev = eval(*r.data.test);
    if (evaluated && validate) val = eval(*r.data.val);

    EpochMetrics m;
    m.epoch = int(e + 1);
    m.train_loss = r.pos.loss_sum / r.pos.seen;
    m.train_acc = double(r.pos.correct) / r.pos.seen;
    if (evaluated && validate) {
      m.val_loss = val.loss;
      m.val_acc = val.accuracy;
    }
    if (evaluated) {
      m.test_loss = ev.loss;
      m.test_acc = ev.accuracy;
    }
    m.lr = lr;
    m.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - start).count();
    m.img_per_s = r.pos.seen / std::max(train_seconds, 1e-9);
    m.data_share = r.pos.data_seconds / std::max(train_seconds, 1e-9);
    m.wait_share = r.pos.wait_seconds / std::max(train_seconds, 1e-9);
    r.epochs_done = e + 1;
    r.pos = EpochPosition{};
    if (evaluated && validate && val.accuracy > r.best_acc) {
      r.best_acc = val.accuracy;
      r.best_test_acc = ev.accuracy;
      r.best_epoch = m.epoch;
      std::map<std::string, std::string> extra = checkpoint_extra(r, m.epoch);
      extra["val_acc"] = exact(val.accuracy);
      extra["test_acc"] = exact(ev.accuracy);
      if (r.writer()) save_model(path_in(r, kBest), *r.model, model_meta(r), extra);
    }
    // The metrics line before the checkpoint: a crash between the two leaves a line that resume
    // drops (it is later than the checkpoint) and writes again, never a missing line.
    append_metrics(r, m);
    save_last(r);
    rep.epoch(m, rc.epochs);
    if (evaluated) summary.final_test_acc = ev.accuracy;
    if (e + 1 < rc.epochs && stop_requested()) {
      if (r.distributed()) r.comm->barrier();  // (saved above, as after every epoch)
      summary.interrupted = true;
      summary.stopped_epoch = int(e + 1);
      summary.stopped_step = int(steps);
      break;
    }
  }
  note_best();
  summary.epochs = int(r.epochs_done);
  summary.seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
  return summary;
}

// Keeps the metrics lines of epochs up to `epochs` (a crash may have left later ones, or the
// checkpoint may be older than the last line). The file is replaced atomically, and only when a
// line goes: truncating it in place lost every line to a kill between the truncation and the
// write (seen once in the SIGKILL test, tests/test_reliability.cpp).
void truncate_metrics(const Run& r, int64_t epochs) {
  const std::string path = path_in(r, kMetrics);
  std::ifstream in(path);
  std::string kept, line;
  bool dropped = false;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).at("epoch").get<int64_t>() <= epochs) {
        kept += line + "\n";
        continue;
      }
    } catch (const nlohmann::json::exception&) {
      // A torn last line from a crash: dropped.
    }
    dropped = true;
  }
  in.close();
  if (dropped) write_file_atomically(path, kept);
}

}  // namespace

std::string existing_run_file(const std::string& dir) {
  for (const char* f : {kLast, kLastTrain, kMetrics, kBest}) {
    std::error_code ec;  // an unreadable path (a link loop): no run file, and the write says why
    if (fs::exists(fs::path(dir) / f, ec)) return f;
  }
  return "";
}

void check_no_run(const std::string& dir) {
  const std::string existing = existing_run_file(dir);
  if (existing.empty()) return;
  std::error_code ec;
  const bool resumable = fs::exists(fs::path(dir) / kLastTrain, ec);
  throw Error("'" + dir + "' already holds a training run (" + existing + "); " +
              (resumable ? "continue it with `resume` " + dir + " or choose another `out_dir`"
               : existing == kBest
                   ? "choose another `out_dir` (or move the checkpoint away)"
                   : "it stopped before its first save and cannot be resumed: remove its files, or "
                     "choose another `out_dir`"));
}

std::string run_data_dir(const std::string& run_dir) {
  const std::string state = (fs::path(run_dir) / kLastTrain).string();
  std::error_code ec;
  if (!fs::is_regular_file(state, ec)) return "";
  const SafetensorsReader file(state);
  return TrainState::from_metadata(file.metadata(), state).data_dir;
}

namespace {

// The writer locks the run directory, so that a second process given the same directory is
// refused before it writes there, even while the first has not yet saved anything. With `create`
// it makes the directory first; without, a directory that does not exist yet is left for a later
// call (a failed start leaves nothing behind) and one that does is locked now, before the data
// and the model are loaded. A new run (`fresh`) then looks again for a run there: one may have
// ended between the first look and the lock. Every rank takes part and gets rank 0's outcome, so
// that all stop together when it fails.
void claim_run_dir(Run& r, bool fresh, bool create, TrainReporter& reporter) {
  std::string failure;
  std::exception_ptr error;
  if (r.writer() && !r.lock) {
    try {
      if (create) {
        std::error_code ec;
        fs::create_directories(r.dir, ec);
        VIT_CHECK(!ec && fs::is_directory(r.dir, ec),
                  "cannot create the output directory '" + r.dir + "': " + ec.message());
      }
      std::error_code ec;
      if (create || fs::is_directory(r.dir, ec)) {
        r.lock = std::make_unique<DirLock>(r.dir);
        if (!r.lock->unsupported().empty()) {
          reporter.message("note: '" + r.dir + "' cannot be locked on its file system (" +
                           r.lock->unsupported() +
                           "); make sure no other run trains in the same directory");
        }
        if (fresh) check_no_run(r.dir);
      }
    } catch (const std::exception& e) {  // any failure, so that the others are not left waiting
      failure = e.what();
      error = std::current_exception();
    }
  }
  if (!r.distributed()) {
    if (error) std::rethrow_exception(error);
    return;
  }
  r.comm->broadcast(failure);
  if (!failure.empty()) throw EveryRankError(failure);
}

}  // namespace

TrainSummary train(const Config& config, const Recipe& recipe, const TrainOptions& options,
                   TrainReporter& reporter) {
  config.validate();
  recipe.validate();
  VIT_CHECK(!options.out_dir.empty(), "an output directory is needed (`out_dir`)");
  Run r;
  r.dir = options.out_dir;
  r.data_spec = options.data;
  r.data_dir = options.data_dir;
  r.cache_dir = options.cache_dir;
  r.skip_bad_images = options.skip_bad_images;
  r.config = config;
  r.recipe = recipe;
  r.comm = options.comm;
  check_no_run(r.dir);
  // Every rank has looked before rank 0 writes anything there. A directory that exists is locked
  // now, before the data and the model are loaded.
  if (r.distributed()) r.comm->barrier();
  claim_run_dir(r, /*fresh=*/true, /*create=*/false, reporter);
  check_memory(config, recipe.batch_size);
  // Everything that can fail on the user's input (data, sizes, memory) before the run directory
  // exists: a failed start leaves nothing behind.
  const LoadedModel* init = options.init;
  if (init) {
    Config same = init->meta.config;
    same.num_classes = config.num_classes;
    same.image_size = config.image_size;
    VIT_CHECK(same.to_json() == config.to_json(),
              "a fine-tuned model keeps its pretrained model's shape but for the classes and the "
              "image size: " +
                  init->meta.config.to_json() + " (asked for " + config.to_json() + ")");
  }
  try {
    open_data(r, reporter);
  } catch (const Stopped&) {
    return stopped_before_training(r);
  }
  r.norm = init ? init->meta.normalize
           : recipe.normalize == Normalization::kData
               ? compute_normalization(*r.data.train)
               : Normalization::preset(recipe.normalize, config.channels);
  r.model = std::make_unique<Model>(config);
  r.model->init(recipe.seed, {.scheme = recipe.init,
                              .qkv_std = recipe.qkv_init_std,
                              .sincos_pos = recipe.pos_init_sincos});
  if (init) {
    // Every parameter of the same name and shape; a head of another class count, or a backbone's
    // placeholder head, stays as drawn.
    const Model& from = init->model;
    const bool headless = init->metadata.count("headless") > 0;
    int copied = 0;
    const int g_old = init->meta.config.grid(), g_new = config.grid();
    for (const ParamInfo& p : r.model->params()) {
      for (const ParamInfo& q : from.params()) {
        if (q.name != p.name) continue;
        if (headless && is_head_param(p.name)) continue;
        if (q.shape == p.shape) {
          std::copy_n(from.param_data() + q.offset, p.numel, r.model->param_data() + p.offset);
          ++copied;
        } else if (p.name == "pos_embed" && g_old != g_new) {
          // Another image size: the grid resampled as timm does (resample_abs_pos_embed).
          // The prefix tokens' rows (none with no_embed_class) kept.
          resample_pos_embed(from.param_data() + q.offset, config.pos_rows() - config.num_patches(),
                             g_old, g_new, config.dim, r.model->param_data() + p.offset);
          ++copied;
          reporter.message("fine-tuning: pos_embed resampled from a " + std::to_string(g_old) +
                           "x" + std::to_string(g_old) + " grid of patches to " +
                           std::to_string(g_new) + "x" + std::to_string(g_new));
        }
      }
    }
    reporter.message("fine-tuning: " + std::to_string(copied) + " of " +
                     std::to_string(r.model->params().size()) +
                     " tensors from the pretrained model, its normalisation" +
                     (headless || init->meta.config.num_classes != config.num_classes
                          ? "; a new head for " + std::to_string(config.num_classes) + " classes"
                          : ""));
  }
  make_step(r, reporter, /*resuming=*/false);
  claim_run_dir(r, /*fresh=*/true, /*create=*/true, reporter);
  if (r.writer()) remove_interrupted_writes(r.dir);  // a killed run's, as resume removes them
  note_skipped(r, reporter);
  if (recipe.batch_size > r.data.train->size()) {
    reporter.message("note: the batch (" + std::to_string(recipe.batch_size) +
                     ") is larger than the " + std::to_string(r.data.train->size()) +
                     " training images; each step takes all of them");
  }
  reporter.message("model: " + config.to_json());
  reporter.message("recipe: " + r.recipe.to_json());  // as make_step may have set micro_batch
  reporter.message("training on " + options.data + ": " + std::to_string(r.data.train->size()) +
                   " train / " +
                   (r.data.val ? std::to_string(r.data.val->size()) + " validation / " : "") +
                   std::to_string(r.data.test->size()) + " test images, " +
                   std::to_string(r.model->num_params()) + " parameters, run directory " + r.dir +
                   (r.distributed() ? ", " + std::to_string(r.comm->size()) + " ranks" : ""));
  return run_epochs(r, reporter);
}

TrainSummary resume(const std::string& run_dir, int epochs, const std::string& data_dir,
                    TrainReporter& reporter, const std::string& cache_dir, Comm* comm,
                    std::optional<Dtype> dtype) {
  Run r;
  r.dir = run_dir;
  const std::string state = path_in(r, kLastTrain);
  r.comm = comm;
  // The lock first: a run still in its first epoch there is named (pid, host) as in use.
  claim_run_dir(r, /*fresh=*/false, /*create=*/false, reporter);
  VIT_CHECK(fs::exists(state), "'" + run_dir + "' holds no run to resume (no " + kLastTrain +
                                   "; training writes it after the first epoch)");
  if (r.writer()) remove_interrupted_writes(run_dir);
  SafetensorsReader file(state);
  static_cast<TrainState&>(r) = TrainState::from_metadata(file.metadata(), state);
  LoadedModel loaded = load_model(file, "optimizer.");
  if (epochs > 0) {
    // Fewer epochs than planned would change the learning-rate schedule the finished epochs
    // followed (the cosine's length): the result would match neither run.
    VIT_CHECK(epochs >= r.recipe.epochs,
              "'" + run_dir + "' was planned for " + epochs_text(r.recipe.epochs) +
                  "; resuming it with fewer (" + std::to_string(epochs) +
                  ") would change the learning-rate schedule its epochs followed. Resume it as "
                  "planned (or with more `epochs`), or start a new run with the `epochs` you want");
    r.recipe.epochs = epochs;
    r.recipe.validate();
  }
  if (dtype && *dtype != r.recipe.dtype) {
    reporter.message(std::string("training in ") + dtype_name(*dtype) +
                     " from here on (until now " + dtype_name(r.recipe.dtype) + ")");
    r.recipe.dtype = *dtype;
  }
  if (!data_dir.empty()) r.data_dir = data_dir;
  r.cache_dir = cache_dir;
  r.config = loaded.meta.config;
  r.norm = loaded.meta.normalize;

  try {
    open_data(r, reporter);
  } catch (const Stopped&) {
    return stopped_before_training(r);
  }
  note_skipped(r, reporter);
  const int64_t steps_per_epoch = (r.data.train->size() + step_batch(r) - 1) / step_batch(r);
  VIT_CHECK(r.pos.step >= 0 && r.pos.step < steps_per_epoch &&
                r.step == r.epochs_done * steps_per_epoch + r.pos.step,
            "'" + state + "' does not fit the dataset '" + r.data_spec +
                "' (its step counts disagree with the number of training images)");
  r.model = std::make_unique<Model>(std::move(loaded.model));
  make_step(r, reporter, /*resuming=*/true);
  for (const ParamInfo& p : r.model->params()) {
    if (!p.trainable) continue;
    file.read_f32(kMoment1 + p.name, r.opt->exp_avg() + p.offset, p.numel);
    file.read_f32(kMoment2 + p.name, r.opt->exp_avg_sq() + p.offset, p.numel);
  }
  r.opt->set_step_count(r.optimizer_step);
  if (r.writer()) truncate_metrics(r, r.epochs_done);
  if (r.epochs_done >= r.recipe.epochs) {
    reporter.message("'" + run_dir + "' has finished its " + epochs_text(r.recipe.epochs) +
                     "; set `epochs` higher to train longer");
  } else {
    reporter.message("resuming " + run_dir + " at epoch " + std::to_string(r.epochs_done + 1) +
                     " of " + std::to_string(r.recipe.epochs) + ", step " +
                     std::to_string(r.pos.step + 1) + " of " + std::to_string(steps_per_epoch));
  }
  return run_epochs(r, reporter);
}

}  // namespace vit

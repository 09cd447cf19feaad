// The training step: one batch's gradients, computed a micro-batch at a time (gradient
// accumulation), the micro-batches run in parallel, one per thread, where there are enough of them
// (batch_gradients); and vit::TrainStep, those gradients, the clip and the optimizer's update: the
// one step the trainer, `vit bench` and the tests run. Mixed batches (Mixup / CutMix) train on
// lam of each image's label and 1 - lam of its partner's. In a distributed run (vit::Comm) each
// rank computes its share of the micro-batches and the ranks sum them in micro-batch order.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "core/parallel.hpp"
#include "model/executor.hpp"
#include "ops/ops.hpp"
#include "vit/classify.hpp"
#include "vit/dist.hpp"
#include "vit/error.hpp"
#include "vit/optim.hpp"
#include "vit/threads.hpp"
#include "vit/train.hpp"

namespace vit {

namespace {

// The context of a whole-buffer op (no scratch) run by the calling thread: all of the threads
// outside a parallel region, the calling one inside (a lane's).
ops::Context ops_context() {
  return ops::Context{omp_in_parallel() ? 1 : num_threads()};
}

// How many of logits [B, K] have their largest logit at their label.
int64_t count_correct(const float* logits, const int32_t* labels, int B, int K) {
  int64_t correct = 0;
  for (int j = 0; j < B; ++j) {
    correct += argmax(logits + int64_t(j) * K, K) == labels[j];
  }
  return correct;
}

// The mean loss of logits [b, K] against labels, or with labels2 the mixed targets' (lam of labels,
// 1 - lam of labels2: lam CE(labels) + (1 - lam) CE(labels2), the soft-target cross-entropy of
// timm's Mixup, being linear in the target); its gradient times `scale` into d. probs: [b, K].
double loss_and_gradient(const ops::Context& ctx, float* probs, float* d, const float* logits,
                         const int32_t* labels, const int32_t* labels2, float lam, int b, int K,
                         float smoothing, float scale) {
  const double loss = ops::cross_entropy_forward(ctx, probs, logits, labels, b, K, smoothing);
  if (!labels2) {
    ops::cross_entropy_backward(ctx, d, probs, labels, b, K, smoothing, scale);
    return loss;
  }
  const double loss2 = ops::cross_entropy_forward(ctx, probs, logits, labels2, b, K, smoothing);
  ops::cross_entropy_backward(ctx, d, probs, labels, b, K, smoothing, lam * scale);
  thread_local std::vector<float> other;
  other.resize(size_t(b) * size_t(K));
  ops::cross_entropy_backward(ctx, other.data(), probs, labels2, b, K, smoothing,
                              (1.0f - lam) * scale);
  for (size_t i = 0; i < other.size(); ++i) d[i] += other[i];
  return lam * loss + (1.0 - lam) * loss2;
}

}  // namespace

BatchStats batch_gradients(Model& model, const float* images, const int32_t* labels, int B,
                           float smoothing, const int32_t* keep, int num_keep, float* probs,
                           float* dlogits, int micro_batch, const int32_t* labels2, float lam,
                           Comm* comm, const float* drop_path) {
  if (labels2) {
    VIT_CHECK(lam >= 0.0f && lam <= 1.0f, "batch_gradients: lam must be in [0, 1]");
    ops::check_loss_inputs(labels2, B, model.config().num_classes, smoothing);
  }
  const Config& c = model.config();
  VIT_CHECK(B >= 1, "batch_gradients: batch must be at least 1 (got " + std::to_string(B) + ")");
  const int K = c.num_classes;
  // (A bad num_keep is Model::forward's to report.)
  const int N = std::max(1, keep ? c.num_prefix_tokens() + num_keep : c.num_tokens());
  const int per = micro_batch_images(c, B, N, micro_batch);
  const int parts = micro_batch_count(B, N, per);
  const int64_t pixels = int64_t(c.channels) * c.image_size * c.image_size;
  BatchStats stats;
  const bool distributed = comm && comm->distributed();
  if (parts == 1 && !distributed) {  // one piece: straight into the gradient arena
    model.zero_grad();
    const float* logits = model.forward(images, B, keep, num_keep, drop_path);
    stats.loss = loss_and_gradient(ops::Context{}, probs, dlogits, logits, labels, labels2, lam, B,
                                   K, smoothing, 1.0f);
    model.backward(dlogits);
    stats.correct = count_correct(logits, labels, B, K);
    return stats;
  }

  // Each micro-batch's parameter gradients go to a buffer of their own (on one rank the first's to
  // the gradient arena itself), which is then added to the gradient arena, the micro-batches in
  // their order: the batch's gradient is ((g_0 + g_1) + g_2) + ..., the same bits whichever
  // thread ran which micro-batch, and whatever the thread count. Every check is made here, before
  // the parallel region, which an exception must not leave.
  ops::check_loss_inputs(labels, B, K, smoothing);
  VIT_CHECK(model.max_batch() > 0, "batch_gradients: call enable_training(max_batch) first");
  // Whole rounds of micro-batches run one per thread, each thread on its own lane, a thread
  // taking the next micro-batch when it finishes one (a thread slowed down by another process
  // takes fewer), into one of a few gradient buffers; what is left runs on lane 0, a micro-batch
  // at a time with every op split over the threads (plan_lanes).
  // A distributed run: this rank's micro-batches (part_owners), each into a buffer of its own
  // that its OrderedSum sends on as soon as it is done.
  std::vector<int> owner, mine;
  if (distributed) {
    owner = part_owners(parts, comm->size());
    for (int i = 0; i < parts; ++i) {
      if (owner[size_t(i)] == comm->rank()) mine.push_back(i);
    }
  }
  const int threads = num_threads();
  const int tasks = distributed ? int(mine.size()) : parts;
  const LanePlan plan = plan_lanes(tasks, threads);
  lanes::enable(model, plan.lanes, micro_batch_largest(B, parts),
                distributed ? std::max(tasks, 1) : plan.buffers);
  const int64_t drop_floats = 2 * int64_t(c.depth);  // per image
  for (int i = 0; i < parts; ++i) {
    const int b0 = micro_batch_start(B, parts, i), bc = micro_batch_start(B, parts, i + 1) - b0;
    lanes::check_forward(model, 0, bc, keep ? keep + int64_t(b0) * num_keep : nullptr, num_keep,
                         drop_path ? drop_path + int64_t(b0) * drop_floats : nullptr);
  }
  // Each micro-batch's loss and correct count (the calling thread's buffers, grown once: the
  // pointers, not the thread_local names, are what the other threads may use).
  thread_local std::vector<double> loss_buffer;
  thread_local std::vector<int64_t> correct_buffer;
  loss_buffer.resize(size_t(parts));
  correct_buffer.resize(size_t(parts));
  double* losses = loss_buffer.data();
  int64_t* correct = correct_buffer.data();
  const size_t floats = model.arena_floats();
  float* total = model.grad_data();

  // ready: told as the backward finishes the gradients from an offset on (a distributed step).
  // On one rank, micro-batch 0's gradients go straight into the gradient arena (total): folded
  // first, they were a copy of their buffer, and the later micro-batches are only added to it once
  // micro-batch 0 is done (run_on_lanes_ordered folds in order).
  auto run = [&](int lane, int buffer, int i, const lanes::GradsReady& ready = nullptr) {
    const int b0 = micro_batch_start(B, parts, i), bc = micro_batch_start(B, parts, i + 1) - b0;
    float* grads = !distributed && i == 0 ? total : lanes::grad_buffer(model, buffer);
    const float* logits = lanes::forward(
        model, lane, images + b0 * pixels, bc, keep ? keep + int64_t(b0) * num_keep : nullptr,
        num_keep, drop_path ? drop_path + int64_t(b0) * drop_floats : nullptr);
    float* p = probs + int64_t(b0) * K;
    float* d = dlogits + int64_t(b0) * K;
    const int32_t* y = labels + b0;
    const ops::Context serial;  // a micro-batch's logits: too few for threads
    // The gradient of (bc / B) x the micro-batch's mean loss: its share of the batch's mean.
    losses[i] = loss_and_gradient(serial, p, d, logits, y, labels2 ? labels2 + b0 : nullptr, lam,
                                  bc, K, smoothing, float(bc) / float(B));
    lanes::backward(model, lane, d, grads, ready, /*zero_first=*/true);
    correct[i] = count_correct(logits, y, bc, K);
  };
  // total += micro-batch i's gradients (split over the threads when called outside a region);
  // micro-batch 0's are there already.
  auto fold = [&](int buffer, int i) {
    if (i > 0) {
      ops::add_into(ops_context(), total, lanes::grad_buffer(model, buffer), int64_t(floats),
                    /*copy=*/false);
    }
  };
  if (distributed) {
    // The sums of each batch shape (the last batch of an epoch may be cut into fewer parts),
    // made once: their receive buffers are allocated with them. Buckets of whole blocks, each
    // of at least 256 KiB a rank, unless the model is smaller: each bucket costs every rank
    // 2 (N - 1) messages, each about 10 us to start (vit_mpi_pingpong), and a message of 256 KiB
    // takes 6x that to travel at 34 Gb/s (loopback TCP here), 20x at 10 Gb/s. (With 32 KiB a
    // rank, tiny28 went in 6 buckets on 2 ranks: 1643 img/s against 1715 in one bucket, means of
    // 5 alternated epochs, within this machine's noise but no gain.)
    thread_local std::map<std::pair<int, int64_t>, std::unique_ptr<Comm::OrderedSum>> sums;
    std::unique_ptr<Comm::OrderedSum>& sum = sums[{parts, int64_t(floats)}];
    if (!sum) {
      const int64_t least = 65536 * int64_t(comm->size());
      sum =
          comm->ordered_sum(int64_t(floats), owner,
                            gradient_buckets(lanes::ready_offsets(model), int64_t(floats), least));
    }
    sum->begin(total);
    Comm::OrderedSum* s = sum.get();
    run_on_lanes(tasks, threads, [&](int lane, int j) {
      const int i = mine[size_t(j)];
      float* grads = lanes::grad_buffer(model, j);
      run(lane, j, i, [&](size_t from) { s->ready(i, grads, int64_t(from)); });
      s->contribute(i, grads);
    });
    sum->finish();
    // Every micro-batch's loss and correct count, on every rank (the ranks' parts are contiguous
    // runs, so rank order is part order).
    std::vector<int> counts(size_t(comm->size()), 0);
    for (int o : owner) counts[size_t(o)] += 2;
    std::vector<double> local, all(size_t(2 * parts));
    for (int i : mine) local.insert(local.end(), {losses[i], double(correct[i])});
    comm->all_gather(local.data(), counts, all.data());
    for (int i = 0; i < parts; ++i) {
      losses[i] = all[size_t(2 * i)];
      correct[i] = int64_t(all[size_t(2 * i + 1)]);
    }
  } else {
    // In the solo micro-batches each thread's ops run serially, with no barrier between them
    // (tiny28 at batch 128 trained at 1765 img/s in pieces of 8 so, against 1640 with every op of
    // pieces of 20 split over the threads: means of 5 alternated runs, docs/PERFORMANCE.md).
    run_on_lanes_ordered(parts, threads, run, fold);
  }
  for (int i = 0; i < parts; ++i) {
    const int bc = micro_batch_start(B, parts, i + 1) - micro_batch_start(B, parts, i);
    stats.loss += losses[i] * bc / B;
    stats.correct += correct[i];
  }
  return stats;
}

AdamWOptions optimizer_options(const Recipe& r) {
  AdamWOptions o;
  o.lr = r.lr;
  o.beta1 = r.beta1;
  o.beta2 = r.beta2;
  o.weight_decay = r.weight_decay;
  o.decoupled = r.optimizer == "adamw";
  o.layer_decay = r.layer_decay;
  return o;
}

TrainStep::TrainStep(Model& model, const Recipe& recipe, int max_batch, int micro_batch, Comm* comm)
    : model_(model),
      smoothing_(recipe.label_smoothing),
      clip_grad_(recipe.clip_grad),
      max_batch_(max_batch),
      micro_batch_(micro_batch),
      comm_(comm) {
  VIT_CHECK(max_batch >= 1,
            "TrainStep: max_batch must be at least 1 (got " + std::to_string(max_batch) + ")");
  model.enable_training(max_batch);
  model.freeze_backbone(recipe.freeze_backbone);  // before the optimizer takes the trainable set
  model.set_training_dtype(recipe.dtype);
  opt_ = std::make_unique<AdamW>(model, optimizer_options(recipe));
  const size_t n = size_t(max_batch) * size_t(model.config().num_classes);
  probs_.resize(n);
  dlogits_.resize(n);
  reversed_.resize(size_t(max_batch));
}

TrainStep::~TrainStep() = default;

StepStats TrainStep::run(const float* images, const int32_t* labels, int B, float lr,
                         const int32_t* keep, int num_keep, float lam, const float* drop_path) {
  VIT_CHECK(B >= 1 && B <= max_batch_, "TrainStep: a batch of " + std::to_string(B) +
                                           " images, but the step was made for 1 to " +
                                           std::to_string(max_batch_));
  StepStats s;
  const bool mixed = lam < 1.0f;
  if (mixed) std::reverse_copy(labels, labels + B, reversed_.begin());
  static_cast<BatchStats&>(s) = batch_gradients(
      model_, images, labels, B, smoothing_, keep, num_keep, probs_.data(), dlogits_.data(),
      micro_batch_, mixed ? reversed_.data() : nullptr, lam, comm_, drop_path);
  s.grad_norm = clip_grad_norm(model_, clip_grad_);
  if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm)) return s;
  opt_->step(lr);
  s.updated = true;
  return s;
}

}  // namespace vit

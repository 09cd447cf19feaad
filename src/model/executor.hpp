// The CPU executor's side of a Model, kept out of the public headers: micro-batch sizing (how a
// batch is cut so that each piece's activations stay in a core's cache) and lanes (sets of
// training activations, so that several threads each run a micro-batch's forward and backward at
// once). Used by batch_gradients (src/train/step.cpp), Model::predict and the benchmark.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "ops/ops.hpp"
#include "vit/model.hpp"

namespace vit {

// The stem's convolution (Config::stem_channels) on B images as ops::ConvGeom: at every position
// (its G() x G() outputs a side are the stem's output), or with patch dropout (keep: num_keep
// patches an image) at the kept patches' alone.
ops::ConvGeom stem_geom(const Config& c, int B, const int32_t* keep = nullptr, int num_keep = 0);

// Images per micro-batch for batches of B images whose blocks see N tokens each: as many as keep
// the widest activation (qkv or the MLP's hidden layer) near 512 KiB, a quarter of a core's L2 here
// (a micro-batch runs on one core); all B where that is under 256 tokens (ViT-Ti's 197 tokens x
// 768 exceed it for one image, and its large GEMMs gain nothing from it). Model::predict and
// training (batch_gradients in train.hpp) run a batch through the model a micro-batch at a time,
// so that what an op (and, in training, the micro-batch's backward) reads was written moments
// before and is still cached. requested > 0 asks for at most that many images instead (at most
// B); it must not be negative.
int micro_batch_images(const Config& config, int B, int N, int requested = 0);
// How many micro-batches of at most `per` images a batch of B images of N tokens is cut into:
// where there are several, rounded up to a multiple of 4 (else of 2) if every piece keeps at least
// 256 tokens (our GEMM kernels' least), so that two or four threads running them one each get the
// same number and batches of 2^k images equal pieces (batch_gradients; tiny28 at batch 128: 16
// pieces of 8 trained 2.4% faster than 14 of 9 or 10).
int micro_batch_count(int B, int N, int per);
// The first image of micro-batch i (of `parts`) when B images are cut into micro-batches of even
// sizes: micro-batch i holds images [micro_batch_start(B, parts, i), ...(i + 1)).
inline int micro_batch_start(int B, int parts, int i) {
  return int(int64_t(B) * i / parts);
}
// The most images in one of those micro-batches.
inline int micro_batch_largest(int B, int parts) {
  return (B + parts - 1) / parts;
}

namespace lanes {

// `lanes` more sets of training activations, each for batches of up to max_batch images, and
// grad_buffers gradient buffers (arena_floats() floats each, the gradient arena's layout) for the
// micro-batches' parameter gradients. Grows (reallocating) when asked for more; call
// model.enable_training() first. Training in bf16 (Model::set_training_dtype), it also converts
// the weights for the step's products: call it once a step, before the step's forwards.
void enable(Model& model, int lanes, int max_batch, int grad_buffers);
float* grad_buffer(Model& model, int i);
// forward()'s checks for a lane (vit::Error when one fails). forward skips them, so that it can
// run inside an OpenMP region, which an exception must not leave: check first.
void check_forward(const Model& model, int lane, int B, const int32_t* keep, int num_keep,
                   const float* drop_path = nullptr);
// Model::forward() and backward() on lane `lane` (one thread each may use its own lane at a
// time), backward accumulating the parameter gradients into grads, or (zero_first) writing them
// there, the previous contents ignored; backward differentiates the lane's last forward.
const float* forward(Model& model, int lane, const float* images, int B,
                     const int32_t* keep = nullptr, int num_keep = 0,
                     const float* drop_path = nullptr);
// ready (optional) is told, as the backward goes, that the gradients from offset `from` to the
// arena's end are final: the backward finishes the parameters from the last in the arena to the
// first (the heads and the final norm, then each block from the last, then the embeddings), and
// calls it after the heads and after each block (a distributed step sends those while the
// backward goes on).
using GradsReady = std::function<void(size_t from)>;
void backward(Model& model, int lane, const float* dlogits, float* grads,
              const GradsReady& ready = nullptr, bool zero_first = false);
// The offsets backward passes to `ready`, in the order it passes them (descending).
std::vector<size_t> ready_offsets(const Model& model);

}  // namespace lanes

namespace detail {
// The one door from the executor into a Model's implementation (src/model/vit.cpp).
struct ModelAccess {
  static ModelImpl& impl(Model& m) { return *m.impl_; }
  static const ModelImpl& impl(const Model& m) { return *m.impl_; }
};
}  // namespace detail

}  // namespace vit

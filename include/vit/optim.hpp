// Optimisation: AdamW over a model's parameter arena (weight decay masked per tensor), and global
// gradient-norm clipping.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "vit/model.hpp"

namespace vit {

class Arena;  // src/core/arena.hpp

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  // Decoupled weight decay (Loshchilov & Hutter), applied only to tensors whose ParamInfo::decay
  // is set: the matrix weights, never biases, LayerNorm parameters, cls_token or pos_embed.
  float weight_decay = 0.0f;
  // true: AdamW (decay applied to the weights); false: Adam with L2 (decay added to the
  // gradients, torch.optim.Adam's weight_decay).
  bool decoupled = true;
  // Layer-wise learning-rate decay (BEiT; timm's param_groups_layer_decay) with the model's depth
  // L: a tensor of layer id i steps at lr * layer_decay^(L + 1 - i), where the embeddings
  // (cls_token, dist_token, reg_token, pos_embed, patch_embed) are layer 0, blocks.j layer j + 1,
  // the LayerNorms named norm* (norm, norm_pre: timm's regex ^norm) layer L with the last block,
  // and the rest (head, head_dist, fc_norm) layer L + 1. 1: every tensor at lr.
  float layer_decay = 1.0f;

  void validate() const;  // vit::Error naming the bad field
};

class AdamW {
 public:
  // Allocates the moment buffers (m and v, each the size of the parameter arena, zero) in an
  // arena of their own.
  AdamW(Model& model, const AdamWOptions& options);
  // The learning-rate scale of each of the model's parameters (params() order) under
  // layer_decay (AdamWOptions).
  static std::vector<float> lr_scales(const Model& model, float layer_decay);
  ~AdamW();

  // One update of every trainable parameter from the model's gradients, at learning rate lr
  // (the schedule's value for this step). Increments step_count() first (bias correction uses
  // the 1-based step).
  void step(float lr);
  void step() { step(options_.lr); }

  const AdamWOptions& options() const { return options_; }
  int64_t step_count() const { return step_; }
  void set_step_count(int64_t t) { step_ = t; }
  // Moment buffers, laid out like Model::param_data() (for checkpoints).
  float* exp_avg();
  float* exp_avg_sq();
  size_t size() const { return floats_; }

 private:
  Model& model_;
  AdamWOptions options_;
  int64_t step_ = 0;
  size_t floats_ = 0;               // of each moment: the parameter arena's
  std::unique_ptr<Arena> moments_;  // m at 0, v at v_offset_
  size_t v_offset_ = 0;
  // The trainable tensors cut into pieces the threads take one at a time in step().
  struct Piece {
    size_t offset;
    int64_t numel;
    bool decay;
    float lr_scale;  // layer_decay's
  };
  std::vector<Piece> pieces_;
};

// Computes the global L2 norm of all gradients (double accumulation, thread-count independent)
// and, when max_norm > 0 and the norm exceeds it, scales every gradient by
// max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_. Returns the norm before clipping
// (NaN or inf when a gradient is not finite; gradients are then left as they are).
double clip_grad_norm(Model& model, float max_norm);

}  // namespace vit

// AdamW over the parameter arena, tensor by tensor (so decay can be masked per tensor), and
// global gradient-norm clipping.
#include "vit/optim.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/arena.hpp"
#include "ops/ops.hpp"
#include "vit/error.hpp"
#include "vit/threads.hpp"

namespace vit {

void AdamWOptions::validate() const {
  auto ok = [](float v, float lo, float hi) { return std::isfinite(v) && v >= lo && v < hi; };
  VIT_CHECK(ok(lr, 0.0f, 1e3f), "lr must be >= 0 and finite (got " + std::to_string(lr) + ")");
  VIT_CHECK(ok(beta1, 0.0f, 1.0f), "beta1 must be in [0, 1) (got " + std::to_string(beta1) + ")");
  VIT_CHECK(ok(beta2, 0.0f, 1.0f), "beta2 must be in [0, 1) (got " + std::to_string(beta2) + ")");
  VIT_CHECK(ok(eps, 0.0f, 1.0f) && eps > 0.0f,
            "eps must be in (0, 1) (got " + std::to_string(eps) + ")");
  VIT_CHECK(ok(weight_decay, 0.0f, 1e3f),
            "weight_decay must be >= 0 and finite (got " + std::to_string(weight_decay) + ")");
  VIT_CHECK(std::isfinite(layer_decay) && layer_decay > 0.0f && layer_decay <= 1.0f,
            "layer_decay must be in (0, 1] (got " + std::to_string(layer_decay) + ")");
}

AdamW::AdamW(Model& model, const AdamWOptions& options)
    : model_(model),
      options_(options),
      floats_(model.arena_floats()),
      moments_(std::make_unique<Arena>()) {
  options_.validate();
  moments_->add(floats_);
  v_offset_ = moments_->add(floats_);
  moments_->allocate();  // zero-filled
  // The update in pieces of at most kPiece floats of one tensor each, for one parallel region
  // per step (a region per tensor was some 80 a step for tiny28, each ending in a barrier that
  // waits for the slowest thread: a timeslice where another process shares a core).
  constexpr int64_t kPiece = 1 << 14;
  const std::vector<float> scales = lr_scales(model, options_.layer_decay);
  for (size_t t = 0; t < model.params().size(); ++t) {
    const ParamInfo& info = model.params()[t];
    if (!info.trainable) continue;
    for (int64_t i = 0; i < info.numel; i += kPiece) {
      pieces_.push_back(
          {info.offset + size_t(i), std::min(kPiece, info.numel - i), info.decay, scales[t]});
    }
  }
}

std::vector<float> AdamW::lr_scales(const Model& model, float layer_decay) {
  const int L = model.config().depth;
  std::vector<float> scales;
  for (const ParamInfo& p : model.params()) {
    const std::string& n = p.name;
    int id = L + 1;  // head, head_dist, fc_norm
    if (n == "cls_token" || n == "dist_token" || n == "reg_token" || n == "pos_embed" ||
        n.starts_with("patch_embed.")) {
      id = 0;
    } else if (n.starts_with("blocks.")) {
      id = std::stoi(n.substr(7)) + 1;
    } else if (n.starts_with("norm")) {
      id = L;
    }
    scales.push_back(layer_decay == 1.0f ? 1.0f : float(std::pow(double(layer_decay), L + 1 - id)));
  }
  return scales;
}

AdamW::~AdamW() = default;

float* AdamW::exp_avg() {
  return moments_->data();
}

float* AdamW::exp_avg_sq() {
  return moments_->at(v_offset_);
}

void AdamW::step(float lr) {
  VIT_CHECK(std::isfinite(lr) && lr >= 0.0f,
            "AdamW: learning rate must be >= 0 and finite (got " + std::to_string(lr) + ")");
  ++step_;
  float* p = model_.param_data();
  const float* g = model_.grad_data();
  float* m = exp_avg();
  float* v = exp_avg_sq();
  const int count = int(pieces_.size());
  // Each element's update depends on that element alone: the same bits however the pieces are
  // shared out. Dynamic: a thread that another process holds off its core takes fewer.
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
  for (int k = 0; k < count; ++k) {
    const Piece& s = pieces_[size_t(k)];
    // One thread per piece: this region shares the pieces out.
    ops::adamw_update(ops::Context{}, p + s.offset, m + s.offset, v + s.offset, g + s.offset,
                      s.numel, lr * s.lr_scale, options_.beta1, options_.beta2, options_.eps,
                      s.decay ? options_.weight_decay : 0.0f, options_.decoupled, step_);
  }
}

double clip_grad_norm(Model& model, float max_norm) {
  // Padding and non-trainable gradients are zero, so one pass over the arena is the global norm.
  float* g = model.grad_data();
  const int64_t n = int64_t(model.arena_floats());
  const ops::Context ctx{num_threads()};  // no scratch: neither op needs any
  const double norm = std::sqrt(ops::sum_squares(ctx, g, n));
  if (max_norm > 0.0f && std::isfinite(norm)) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) ops::scale_inplace(ctx, g, n, float(coef));
  }
  return norm;
}

}  // namespace vit

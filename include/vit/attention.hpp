// Where a ViT looks: maps over the patch grid of the attention that the classified token pays to
// each patch (attention rollout, the last block's attention, each head of it), computed from the
// attention probabilities of one forward (Model::forward_attention), and drawn as heat maps over
// the image (src/report/picture.cpp).
#pragma once

#include <string>
#include <vector>

#include "vit/config.hpp"

namespace vit {

enum class AttentionMethod {
  // Abnar & Zuidema (2020): per block, the heads' mean A_l; the residual path counted as half of
  // each block's mixing, A'_l = (A_l + I) / 2 (rows still sum to 1); then the product
  // A'_L ... A'_1, whose row of the classified token says how much of each input token reached it.
  kRollout,
  kLast,   // the last block's attention, the heads' mean
  kHeads,  // the last block's attention, one map per head
};

// "rollout", "last", "heads"; and back (vit::Error naming the choices otherwise).
const char* attention_method_name(AttentionMethod m);
AttentionMethod parse_attention_method(const std::string& name);

struct AttentionMaps {
  int grid = 0;  // patches per side: each map is grid x grid, row-major
  // The share of the image's side the patches cover, from its top-left corner: grid * patch /
  // image size, below 1 where the patch does not divide the image (Config::grid).
  double extent = 1.0;
  // Whose attention: the class token's (pool cls), or, for a model that averages its patch
  // tokens (pool mean, with or without a class token), the mean over their rows.
  bool class_token = true;
  // One map (rollout, last) or one per head (heads): the attention on each patch token (the prefix
  // tokens' share left out, so a map sums to at most 1).
  std::vector<std::vector<double>> maps;
};

// What the maps read of one image's attention probabilities, kept block by block as a forward
// makes them (Model::forward_attention), so that a large model never holds every block's heads
// at once (DINOv2-L at 518 pixels: 24 x 16 x 1374^2 floats, 2.9 GB; kept here, 0.3 GB).
struct AttentionProbs {
  int depth = 0, heads = 0, tokens = 0;  // L, H, N
  std::vector<float> mean;  // [L, N, N]: each block's heads' mean (in double, then rounded)
  std::vector<float> last;  // [H, N, N]: the last block's, head by head
  // Room for a model of this shape (config.num_tokens() tokens).
  explicit AttentionProbs(const Config& config);
  AttentionProbs() = default;
  // Whether it has room for this model's shape (its blocks, heads and tokens).
  bool fits(const Config& config) const;
  // Keeps block l's probabilities att [H, N, N] (row-major: head, query token, key token; each
  // row a softmax).
  void add_block(int l, const float* att);
};

// The maps of one image from its probabilities (computed in double).
AttentionMaps attention_maps(const Config& config, const AttentionProbs& probs,
                             AttentionMethod method);
// The same from every block's att [L, H, N, N] at once.
AttentionMaps attention_maps(const Config& config, const float* att, AttentionMethod method);

}  // namespace vit

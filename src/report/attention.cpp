// Attention maps from a forward's attention probabilities: rollout, the last block's, its heads'.
#include "vit/attention.hpp"

#include <algorithm>
#include <string>

#include "vit/error.hpp"

namespace vit {

const char* attention_method_name(AttentionMethod m) {
  switch (m) {
    case AttentionMethod::kRollout:
      return "rollout";
    case AttentionMethod::kLast:
      return "last";
    case AttentionMethod::kHeads:
      return "heads";
  }
  return "?";
}

AttentionMethod parse_attention_method(const std::string& name) {
  for (AttentionMethod m :
       {AttentionMethod::kRollout, AttentionMethod::kLast, AttentionMethod::kHeads}) {
    if (name == attention_method_name(m)) return m;
  }
  throw Error("attention method '" + name + "': choose rollout, last or heads");
}

AttentionProbs::AttentionProbs(const Config& c)
    : depth(c.depth), heads(c.heads), tokens(c.num_tokens()) {
  const size_t nn = size_t(tokens) * size_t(tokens);
  mean.assign(size_t(depth) * nn, 0.0f);
  last.assign(size_t(heads) * nn, 0.0f);
}

bool AttentionProbs::fits(const Config& c) const {
  return depth == c.depth && heads == c.heads && tokens == c.num_tokens();
}

void AttentionProbs::add_block(int l, const float* att) {
  VIT_CHECK(l >= 0 && l < depth, "AttentionProbs: block " + std::to_string(l) +
                                     " is outside the model's " + std::to_string(depth));
  const int64_t nn = int64_t(tokens) * tokens;
  std::vector<double> sum(static_cast<size_t>(tokens));  // one query row's, over the heads in order
  for (int i = 0; i < tokens; ++i) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int h = 0; h < heads; ++h) {
      const float* row = att + h * nn + int64_t(i) * tokens;
      for (int j = 0; j < tokens; ++j) sum[size_t(j)] += row[j];
    }
    float* m = mean.data() + l * nn + int64_t(i) * tokens;
    for (int j = 0; j < tokens; ++j) m[j] = float(sum[size_t(j)] / heads);
  }
  if (l == depth - 1) std::copy_n(att, heads * nn, last.data());
}

AttentionMaps attention_maps(const Config& c, const float* att, AttentionMethod method) {
  AttentionProbs probs(c);
  const int64_t per_block = int64_t(c.heads) * c.num_tokens() * c.num_tokens();
  for (int l = 0; l < c.depth; ++l) probs.add_block(l, att + l * per_block);
  return attention_maps(c, probs, method);
}

AttentionMaps attention_maps(const Config& c, const AttentionProbs& probs, AttentionMethod method) {
  const int L = c.depth, H = c.heads, N = c.num_tokens(), F0 = c.num_prefix_tokens();
  const int Np = c.num_patches();
  VIT_CHECK(L >= 1, "attention_maps: the model has no blocks");
  VIT_CHECK(probs.fits(c),
            "attention_maps: the probabilities are of another shape than the model's (" +
                std::to_string(probs.depth) + " blocks, " + std::to_string(probs.heads) +
                " heads, " + std::to_string(probs.tokens) + " tokens)");
  AttentionMaps out;
  out.grid = c.grid();
  out.extent = double(c.grid() * c.patch_size) / c.image_size;
  out.class_token = c.pool == Pool::kCls;  // what the head reads: the class token, or the mean
  // The query: a row vector over the tokens, e_0 (the class token) or the patch rows' mean.
  std::vector<double> query(size_t(N), 0.0);
  if (out.class_token) {
    query[0] = 1.0;
  } else {
    for (int i = F0; i < N; ++i) query[size_t(i)] = 1.0 / Np;
  }
  // v A for A [N, N] (a block's heads' mean, or one head of the last block), plus (v + v A) / 2
  // with the residual.
  auto times = [&](const std::vector<double>& v, const float* a, bool residual) {
    std::vector<double> r(size_t(N), 0.0);
    for (int i = 0; i < N; ++i) {
      const double vi = v[size_t(i)];
      if (vi == 0) continue;
      const float* row = a + int64_t(i) * N;
      for (int j = 0; j < N; ++j) r[size_t(j)] += vi * double(row[j]);
    }
    if (residual) {
      for (int j = 0; j < N; ++j) r[size_t(j)] = 0.5 * (r[size_t(j)] + v[size_t(j)]);
    }
    return r;
  };
  const int64_t nn = int64_t(N) * N;
  auto patches = [&](const std::vector<double>& v) {
    return std::vector<double>(v.begin() + F0, v.end());
  };
  switch (method) {
    case AttentionMethod::kRollout: {
      // Row q of A'_L ... A'_1: the query through the blocks from the last to the first.
      std::vector<double> v = query;
      for (int l = L - 1; l >= 0; --l) v = times(v, probs.mean.data() + l * nn, true);
      out.maps.push_back(patches(v));
      break;
    }
    case AttentionMethod::kLast:
      out.maps.push_back(patches(times(query, probs.mean.data() + (L - 1) * nn, false)));
      break;
    case AttentionMethod::kHeads:
      for (int h = 0; h < H; ++h)
        out.maps.push_back(patches(times(query, probs.last.data() + h * nn, false)));
      break;
  }
  return out;
}

}  // namespace vit

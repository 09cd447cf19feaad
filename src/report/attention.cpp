// Attention maps from a forward's attention probabilities: rollout, the last block's, its heads'.
#include "vit/attention.hpp"

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

AttentionMaps attention_maps(const Config& c, const float* att, AttentionMethod method) {
  const int L = c.depth, H = c.heads, N = c.num_tokens(), F0 = c.num_prefix_tokens();
  const int Np = c.num_patches();
  VIT_CHECK(L >= 1, "attention_maps: the model has no blocks");
  AttentionMaps out;
  out.grid = c.grid();
  out.class_token = c.pool == Pool::kCls;  // what the head reads: the class token, or the mean
  // The query: a row vector over the tokens, e_0 (the class token) or the patch rows' mean.
  std::vector<double> query(size_t(N), 0.0);
  if (out.class_token) {
    query[0] = 1.0;
  } else {
    for (int i = F0; i < N; ++i) query[size_t(i)] = 1.0 / Np;
  }
  auto at = [&](int l, int h, int i, int j) {
    return double(att[((int64_t(l) * H + h) * N + i) * N + j]);
  };
  // v A for A the heads' mean of block l (head: only that one, when >= 0), plus (v + v A) / 2
  // with the residual.
  auto times = [&](const std::vector<double>& v, int l, int head, bool residual) {
    std::vector<double> r(size_t(N), 0.0);
    const int h0 = head >= 0 ? head : 0, h1 = head >= 0 ? head + 1 : H;
    const double w = 1.0 / (h1 - h0);
    for (int i = 0; i < N; ++i) {
      const double vi = v[size_t(i)] * w;
      if (vi == 0) continue;
      for (int h = h0; h < h1; ++h) {
        for (int j = 0; j < N; ++j) r[size_t(j)] += vi * at(l, h, i, j);
      }
    }
    if (residual) {
      for (int j = 0; j < N; ++j) r[size_t(j)] = 0.5 * (r[size_t(j)] + v[size_t(j)]);
    }
    return r;
  };
  auto patches = [&](const std::vector<double>& v) {
    return std::vector<double>(v.begin() + F0, v.end());
  };
  switch (method) {
    case AttentionMethod::kRollout: {
      // Row q of A'_L ... A'_1: the query through the blocks from the last to the first.
      std::vector<double> v = query;
      for (int l = L - 1; l >= 0; --l) v = times(v, l, -1, true);
      out.maps.push_back(patches(v));
      break;
    }
    case AttentionMethod::kLast:
      out.maps.push_back(patches(times(query, L - 1, -1, false)));
      break;
    case AttentionMethod::kHeads:
      for (int h = 0; h < H; ++h) out.maps.push_back(patches(times(query, L - 1, h, false)));
      break;
  }
  return out;
}

}  // namespace vit

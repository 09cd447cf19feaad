// safetensors reading (full header validation, on-demand tensor reads converted to fp32) and
// atomic F32 writing.
#include "vit/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/atomic_file.hpp"
#include "vit/error.hpp"
#include "vit/tensor.hpp"

namespace vit {
namespace {

// The format stores little-endian numbers; F32 data is copied straight between file and memory.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

// ordered_json keeps the header's key order, so zero-sized tensors that share an offset stay in
// the order the file lists them.
using Json = nlohmann::ordered_json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr size_t kChunkBytes = size_t{1} << 20;    // conversion buffer: bounded, not per-tensor
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1},      {DType::kU8, "U8", 1},          {DType::kI8, "I8", 1},
    {DType::kF8E5M2, "F8_E5M2", 1}, {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kI16, "I16", 2},
    {DType::kU16, "U16", 2},        {DType::kF16, "F16", 2},        {DType::kBF16, "BF16", 2},
    {DType::kI32, "I32", 4},        {DType::kU32, "U32", 4},        {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},        {DType::kI64, "I64", 8},        {DType::kU64, "U64", 8},
};

const DTypeEntry& dtype_entry(DType t) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == t) return e;
  }
  throw Error("unknown DType value " + std::to_string(static_cast<int>(t)));
}

std::optional<DType> parse_dtype(const std::string& name) {
  for (const DTypeEntry& e : kDTypes) {
    if (name == e.name) return e.dtype;
  }
  return std::nullopt;
}

std::string in_quotes(const std::string& s) {
  return "'" + s + "'";
}

std::string offsets_to_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// A JSON value for an error message, cut short so a huge array cannot flood the terminal.
std::string short_dump(const Json& value) {
  std::string s = value.dump();
  constexpr size_t kMaxChars = 80;
  if (s.size() > kMaxChars) s = s.substr(0, kMaxChars) + "...";
  return s;
}

// Overflow-safe multiply: false (and *out untouched) when a * b exceeds `limit`.
bool multiply_within(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  if (a != 0 && b > limit / a) return false;
  *out = a * b;
  return true;
}

// Element count of `shape`, or nullopt when it (or any partial product) exceeds int64, the type
// read_f32 and TensorView use for counts.
std::optional<uint64_t> checked_numel(const std::vector<int64_t>& shape) {
  constexpr auto kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || !multiply_within(n, static_cast<uint64_t>(d), kLimit, &n)) return std::nullopt;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Reading

// The errno of a call that just failed (0 if it did not), read at once: building an error message
// allocates, and any library call may overwrite errno.
int error_if(bool failed) {
  if (!failed) return 0;
  return errno != 0 ? errno : EIO;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what);
}

[[noreturn]] void fail_errno(const std::string& path, const std::string& what, int error) {
  fail(path, what + ": " + std::strerror(error));
}

// A read-only POSIX file, closed on scope exit. pread lets each read name its own offset, so
// nothing depends on a shared file position.
class InputFile {
 public:
  explicit InputFile(const std::string& path)
      : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (const int error = error_if(fd_ < 0)) fail_errno(path_, "cannot open", error);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const {
    struct stat st {};
    if (const int error = error_if(::fstat(fd_, &st) != 0)) fail_errno(path_, "cannot stat", error);
    if (!S_ISREG(st.st_mode)) fail(path_, "not a regular file");
    return static_cast<uint64_t>(st.st_size);
  }

  // Reads exactly n bytes at `offset`; a short read means the file shrank after validation.
  void read_exact(uint64_t offset, void* dst, size_t n, const std::string& what) const {
    auto* out = static_cast<unsigned char*>(dst);
    size_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
      if (const int error = error_if(got < 0)) {
        if (error == EINTR) continue;
        fail_errno(path_, "reading " + what + " failed", error);
      }
      if (got == 0) {
        fail(path_, "short read of " + what + ": got " + std::to_string(done) + " of " +
                        std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                        "; the file was truncated or replaced after it was opened");
      }
      done += static_cast<size_t>(got);
    }
  }

 private:
  std::string path_;
  int fd_;
};

// What a file that is not safetensors looks like, from its first bytes (n of them): " (it looks
// like ...)" for formats people pass by mistake, else "".
std::string looks_like(const unsigned char* b, size_t n) {
  auto starts = [&](const char* magic, size_t len) {
    return n >= len && std::memcmp(b, magic, len) == 0;
  };
  if (starts("\x89PNG", 4)) return " (it looks like a PNG image)";
  if (starts("\xFF\xD8\xFF", 3)) return " (it looks like a JPEG image)";
  if (starts("\x1F\x8B", 2)) return " (it looks like a gzip file)";
  if (starts("PK\x03\x04", 4)) {
    return " (it looks like a zip archive, as PyTorch's torch.save writes .pt/.pth/.bin files: "
           "convert it with safetensors.torch.save_file)";
  }
  if (starts("\x80", 1)) return " (it looks like a Python pickle, as older torch.save files are)";
  return "";
}

uint64_t read_header_length(const std::string& path, const InputFile& file, uint64_t file_size) {
  if (file_size == 0) fail(path, "empty file (0 bytes); not a safetensors file");
  unsigned char bytes[9] = {};
  const size_t head = size_t(std::min<uint64_t>(file_size, sizeof bytes));
  file.read_exact(0, bytes, head, "the header length");
  if (file_size < 8) {
    fail(path, "file is " + std::to_string(file_size) +
                   " bytes, too short for the 8-byte header length; not a safetensors file" +
                   looks_like(bytes, head));
  }
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | bytes[i];

  if (length == 0) fail(path, "header length is 0; a safetensors header is at least '{}'");
  // A safetensors file is an 8-byte length and then a JSON object: anything else is another kind
  // of file, not a damaged safetensors one.
  const bool plausible = length <= file_size - 8 && head == 9 && bytes[8] == '{';
  if (!plausible && !looks_like(bytes, head).empty()) {
    fail(path, "not a safetensors file" + looks_like(bytes, head));
  }
  if (length > kMaxHeaderBytes) {
    fail(path, "header length " + std::to_string(length) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) +
                   " bytes; not a safetensors file, or a corrupt one");
  }
  if (length > file_size - 8) {
    fail(path, "header length " + std::to_string(length) + " extends beyond the end of the file (" +
                   std::to_string(file_size - 8) + " bytes follow the length field)");
  }
  return length;
}

// Parses the header text, rejecting duplicate keys: nlohmann::json would silently keep only the
// last one, hiding a corrupt or malicious header.
Json parse_header_json(const std::string& path, const std::string& text) {
  std::vector<std::set<std::string>> keys_per_open_object;
  std::string duplicate;
  bool duplicate_is_tensor_name = false;
  const Json::parser_callback_t watch_keys = [&](int depth, Json::parse_event_t event,
                                                 Json& parsed) {
    if (event == Json::parse_event_t::object_start) keys_per_open_object.emplace_back();
    if (event == Json::parse_event_t::object_end) keys_per_open_object.pop_back();
    if (event == Json::parse_event_t::key && duplicate.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!keys_per_open_object.back().insert(key).second) {
        duplicate = key;
        duplicate_is_tensor_name = (depth == 1);
      }
    }
    return true;
  };

  Json header;
  try {
    header = Json::parse(text, watch_keys);
  } catch (const Json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) {
    fail(path, std::string("header must be a JSON object, got a JSON ") + header.type_name());
  }
  if (!duplicate.empty()) {
    fail(path, duplicate_is_tensor_name
                   ? "duplicate tensor name " + in_quotes(duplicate)
                   : "duplicate key " + in_quotes(duplicate) + " in the header");
  }
  return header;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const Json& value) {
  if (!value.is_object()) {
    fail(path, std::string(kMetadataKey) + " must be a JSON object of strings, got a JSON " +
                   value.type_name());
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      fail(path, std::string(kMetadataKey) + " value for key " + in_quotes(key) +
                     " is not a string: " + short_dump(item));
    }
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

// A JSON number that is a non-negative integer (nlohmann stores those as unsigned).
std::optional<uint64_t> as_non_negative_integer(const Json& value) {
  if (!value.is_number_unsigned()) return std::nullopt;
  return value.get<uint64_t>();
}

constexpr const char* kEntryFields[] = {"dtype", "shape", "data_offsets"};

bool is_entry_field(const std::string& key) {
  return std::find(std::begin(kEntryFields), std::end(kEntryFields), key) != std::end(kEntryFields);
}

void check_entry_fields(const std::string& path, const std::string& name, const Json& entry) {
  if (!entry.is_object()) {
    fail(path, "entry for tensor " + in_quotes(name) + " must be a JSON object, got " +
                   short_dump(entry));
  }
  for (const auto& item : entry.items()) {
    if (!is_entry_field(item.key())) {
      fail(path, "tensor " + in_quotes(name) + " has unexpected field " + in_quotes(item.key()) +
                     " (expected dtype, shape, data_offsets)");
    }
  }
  for (const char* field : kEntryFields) {
    if (!entry.contains(field)) {
      fail(path, "tensor " + in_quotes(name) + " is missing field " + in_quotes(field));
    }
  }
}

DType parse_entry_dtype(const std::string& path, const std::string& name, const Json& value) {
  if (!value.is_string()) {
    fail(path, "tensor " + in_quotes(name) + " has dtype " + short_dump(value) +
                   ", which is not a string");
  }
  const std::optional<DType> dtype = parse_dtype(value.get<std::string>());
  if (!dtype) {
    fail(path, "tensor " + in_quotes(name) + " has unknown dtype " + value.dump() +
                   " (known: BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64)");
  }
  return *dtype;
}

std::vector<int64_t> parse_entry_shape(const std::string& path, const std::string& name,
                                       const Json& value) {
  // Built only on failure: dumping JSON for every valid tensor would be wasted work.
  const auto bad = [&] { return "tensor " + in_quotes(name) + " has shape " + short_dump(value); };
  if (!value.is_array()) fail(path, bad() + ", which is not a list of non-negative integers");
  std::vector<int64_t> shape;
  for (const Json& dim : value) {
    const std::optional<uint64_t> d = as_non_negative_integer(dim);
    if (!d) fail(path, bad() + ": dimensions must be non-negative integers");
    if (*d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(path, bad() + ": dimension " + std::to_string(*d) + " does not fit in int64");
    }
    shape.push_back(static_cast<int64_t>(*d));
  }
  return shape;
}

void parse_entry_offsets(const std::string& path, const std::string& name, const Json& value,
                         TensorInfo* info) {
  const auto bad = [&] {
    return "tensor " + in_quotes(name) + " has data_offsets " + short_dump(value);
  };
  const std::string expected = ", which is not two non-negative integers [begin, end]";
  if (!value.is_array() || value.size() != 2) fail(path, bad() + expected);
  const std::optional<uint64_t> begin = as_non_negative_integer(value[0]);
  const std::optional<uint64_t> end = as_non_negative_integer(value[1]);
  if (!begin || !end) fail(path, bad() + expected);
  if (*begin > *end) fail(path, bad() + " with begin > end");
  info->begin = *begin;
  info->end = *end;
}

// The tensor's byte size must follow from dtype and shape, and its bytes lie in the data section.
void check_entry_size(const std::string& path, const TensorInfo& t, uint64_t data_size) {
  const auto what = [&] {
    return "tensor " + in_quotes(t.name) + " with dtype " + to_string(t.dtype) + " and shape " +
           shape_to_string(t.shape);
  };
  const std::optional<uint64_t> numel = checked_numel(t.shape);
  uint64_t bytes = 0;
  if (!numel) fail(path, what() + ": element count overflows int64");
  if (!multiply_within(*numel, dtype_size(t.dtype), std::numeric_limits<uint64_t>::max(), &bytes)) {
    fail(path, what() + ": byte size overflows uint64");
  }
  if (bytes != t.end - t.begin) {
    fail(path, "tensor " + in_quotes(t.name) + " has data_offsets " +
                   offsets_to_string(t.begin, t.end) + " (" + std::to_string(t.end - t.begin) +
                   " bytes) but dtype " + to_string(t.dtype) + " and shape " +
                   shape_to_string(t.shape) + " need " + std::to_string(bytes) + " bytes");
  }
  if (t.end > data_size) {
    fail(path, "tensor " + in_quotes(t.name) + " has data_offsets " +
                   offsets_to_string(t.begin, t.end) + ", beyond the end of the data section (" +
                   std::to_string(data_size) + " bytes)");
  }
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const Json& entry,
                       uint64_t data_size) {
  check_entry_fields(path, name, entry);
  TensorInfo info;
  info.name = name;
  info.dtype = parse_entry_dtype(path, name, entry["dtype"]);
  info.shape = parse_entry_shape(path, name, entry["shape"]);
  parse_entry_offsets(path, name, entry["data_offsets"], &info);
  check_entry_size(path, info, data_size);
  return info;
}

std::string describe(const TensorInfo& t) {
  return "tensor " + in_quotes(t.name) + " (data_offsets " + offsets_to_string(t.begin, t.end) +
         ")";
}

// `tensors` is sorted by offset; each must start where the previous ended, so the data section is
// covered exactly once with no unindexed bytes (which could hide data or signal corruption).
void check_layout(const std::string& path, const std::vector<TensorInfo>& tensors,
                  uint64_t data_size) {
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.begin < covered) fail(path, describe(t) + " overlaps " + describe(*previous));
    if (t.begin > covered) {
      const std::string hole = "hole of " + std::to_string(t.begin - covered) + " bytes";
      if (previous == nullptr) {
        fail(path, hole + " at the start of the data section: the first " + describe(t) +
                       " does not begin at 0");
      }
      fail(path, hole + " between " + describe(*previous) + " and " + describe(t));
    }
    covered = t.end;
    previous = &t;
  }
  if (covered != data_size) {
    fail(path, "the data section is " + std::to_string(data_size) +
                   " bytes but the tensors cover " + std::to_string(covered) + "; " +
                   std::to_string(data_size - covered) + " trailing bytes belong to no tensor");
  }
}

// IEEE 754 binary16 -> binary32; every half value, subnormals included, is exact in fp32.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1F) {  // inf (mantissa 0) or NaN (payload kept)
    return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  }
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

// bfloat16 is the upper half of an fp32.
float bfloat16_to_float(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

// double -> float with IEEE round-to-nearest overflow to +-inf. A plain cast of a finite double
// beyond the float range is undefined behavior in C++, so those values are handled explicitly.
float double_to_float(double d) {
  // Halfway between FLT_MAX and 2^128: at or above it, round-to-nearest-even gives infinity.
  const double overflow_threshold = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);
  if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max()) {
    const float big = std::fabs(d) >= overflow_threshold ? std::numeric_limits<float>::infinity()
                                                         : std::numeric_limits<float>::max();
    return d < 0 ? -big : big;
  }
  return static_cast<float>(d);
}

template <typename Raw>
Raw load(const unsigned char* p) {
  Raw value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

// Reads `count` elements of type Raw starting at `offset` through a bounded buffer, converting
// each with `convert`, so a large tensor never needs a second full-size copy.
template <typename Raw, typename Convert>
void read_converted(const InputFile& file, uint64_t offset, float* dst, size_t count,
                    const std::string& what, Convert convert) {
  const size_t per_chunk = kChunkBytes / sizeof(Raw);
  std::vector<unsigned char> chunk(std::min(count, per_chunk) * sizeof(Raw));
  for (size_t done = 0; done < count;) {
    const size_t n = std::min(per_chunk, count - done);
    file.read_exact(offset + done * sizeof(Raw), chunk.data(), n * sizeof(Raw), what);
    for (size_t i = 0; i < n; ++i)
      dst[done + i] = convert(load<Raw>(chunk.data() + i * sizeof(Raw)));
    done += n;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

[[noreturn]] void fail_write(const std::string& path, const std::string& what) {
  throw Error("cannot write " + in_quotes(path) + ": " + what);
}

// Validates the tensors and returns the header JSON, padded with spaces so the data section
// starts 8-byte aligned (as the reference implementation does).
std::string build_header(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    if (t.name == kMetadataKey) fail_write(path, "tensor name '__metadata__' is reserved");
    if (!names.insert(t.name).second)
      fail_write(path, "duplicate tensor name " + in_quotes(t.name));
    if (std::any_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d < 0; })) {
      fail_write(path, "tensor " + in_quotes(t.name) + " has a negative dimension in shape " +
                           shape_to_string(t.shape));
    }
    const std::optional<uint64_t> numel = checked_numel(t.shape);
    if (!numel || *numel > std::numeric_limits<uint64_t>::max() / sizeof(float) - offset) {
      fail_write(path, "tensor " + in_quotes(t.name) + " with shape " + shape_to_string(t.shape) +
                           " is too large (size overflows)");
    }
    if (t.data == nullptr && *numel != 0) {
      fail_write(path, "tensor " + in_quotes(t.name) + " has " + std::to_string(*numel) +
                           " elements but a null data pointer");
    }
    const uint64_t end = offset + *numel * sizeof(float);
    header[t.name] = {
        {"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", Json::array({offset, end})}};
    offset = end;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    fail_write(path, std::string("tensor names and metadata must be valid UTF-8: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + size is then a multiple of 8
  return text;
}

}  // namespace

const char* to_string(DType t) {
  return dtype_entry(t).name;
}

size_t dtype_size(DType t) {
  return dtype_entry(t).size;
}

int64_t TensorInfo::numel() const {
  // Unsigned arithmetic cannot overflow into UB; the reader has checked the product fits int64.
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return static_cast<int64_t>(n);
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  const InputFile file(path_);
  const uint64_t file_size = file.size();
  const uint64_t header_length = read_header_length(path_, file, file_size);
  data_start_ = 8 + header_length;
  const uint64_t data_size = file_size - data_start_;

  std::string text(header_length, '\0');
  file.read_exact(8, text.data(), text.size(), "the header");
  const Json header = parse_header_json(path_, text);

  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      metadata_ = parse_metadata(path_, entry);
    } else {
      tensors_.push_back(parse_entry(path_, name, entry, data_size));
    }
  }
  // Sorted by data offset (= file layout order); stable, so zero-sized tensors sharing an offset
  // keep their header order.
  std::stable_sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_layout(path_, tensors_, data_size);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

bool SafetensorsReader::contains(const std::string& name) const {
  return index_.count(name) != 0;
}

const TensorInfo& SafetensorsReader::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    fail(path_, "no tensor named " + in_quotes(name) + " (the file has " +
                    std::to_string(tensors_.size()) + " tensors)");
  }
  return tensors_[it->second];
}

void SafetensorsReader::read_f32(const std::string& name, float* dst, int64_t count) const {
  const TensorInfo& t = info(name);
  const std::string what = "tensor " + in_quotes(name);
  const bool convertible = t.dtype == DType::kF32 || t.dtype == DType::kF16 ||
                           t.dtype == DType::kBF16 || t.dtype == DType::kF64;
  if (!convertible) {
    fail(path_, what + " has dtype " + to_string(t.dtype) +
                    ", which cannot be read as fp32 (supported: F32, F16, BF16, F64)");
  }
  if (count != t.numel()) {
    fail(path_, what + " has " + std::to_string(t.numel()) + " elements (shape " +
                    shape_to_string(t.shape) + ") but the destination holds " +
                    std::to_string(count));
  }
  if (count == 0) return;
  if (dst == nullptr) fail(path_, "null destination for " + what);

  const InputFile file(path_);
  const uint64_t offset = data_start_ + t.begin;
  const auto n = static_cast<size_t>(count);
  switch (t.dtype) {
    case DType::kF32:
      file.read_exact(offset, dst, n * sizeof(float), what);
      break;
    case DType::kF16:
      read_converted<uint16_t>(file, offset, dst, n, what, half_to_float);
      break;
    case DType::kBF16:
      read_converted<uint16_t>(file, offset, dst, n, what, bfloat16_to_float);
      break;
    default:  // kF64, the last convertible dtype
      read_converted<double>(file, offset, dst, n, what, double_to_float);
      break;
  }
}

std::vector<float> SafetensorsReader::read_f32(const std::string& name) const {
  std::vector<float> values(static_cast<size_t>(info(name).numel()));
  read_f32(name, values.data(), static_cast<int64_t>(values.size()));
  return values;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = build_header(path, tensors, metadata);
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(header.size() >> (8 * i));

  AtomicFileWriter out(path);
  out.write(length, sizeof length);
  out.write(header.data(), header.size());
  for (const TensorToWrite& t : tensors) {
    out.write(t.data, static_cast<size_t>(*checked_numel(t.shape)) * sizeof(float));
  }
  out.commit();
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  write_atomically(path, bytes.data(), bytes.size());
}

void remove_interrupted_writes(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.rfind(kAtomicTempInfix);
    if (at == std::string::npos || at == 0) continue;
    const std::string pid = name.substr(at + std::strlen(kAtomicTempInfix));
    if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos) {
      std::error_code ignored;
      std::filesystem::remove(entry.path(), ignored);
    }
  }
}

}  // namespace vit

// Tests for the safetensors reader and writer: round trips, dtype conversion, atomic writes, and
// one test per kind of corrupt file, each checking that the error names the actual problem.
#include "vit/safetensors.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "vit/error.hpp"

namespace vit {
namespace {

namespace fs = std::filesystem;

// The 8-byte little-endian header length that starts every safetensors file.
std::string le64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return bytes;
}

// The raw in-memory bytes of `values` (the tests, like the library, assume a little-endian host).
template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

// Runs `action`, expecting a vit::Error whose message contains every phrase.
template <typename Action>
testing::AssertionResult ThrowsErrorWith(Action action, const std::vector<std::string>& phrases) {
  try {
    action();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& phrase : phrases) {
      if (message.find(phrase) == std::string::npos) {
        return testing::AssertionFailure()
               << "error message \"" << message << "\" lacks \"" << phrase << "\"";
      }
    }
    return testing::AssertionSuccess();
  }
  return testing::AssertionFailure() << "no vit::Error was thrown";
}

class SafetensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* test = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("vit_safetensors_test_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write_raw(const std::string& bytes, const std::string& name = "t.safetensors") {
    const std::string file = path(name);
    std::ofstream(file, std::ios::binary) << bytes;
    return file;
  }

  // Writes a hand-built file and expects opening it to fail with `phrase` and the path.
  testing::AssertionResult OpenFailsWith(const std::string& bytes, const std::string& phrase) {
    const std::string file = write_raw(bytes, "bad.safetensors");
    return ThrowsErrorWith([&] { SafetensorsReader reader(file); }, {phrase, file});
  }
  testing::AssertionResult HeaderFailsWith(const std::string& header, const std::string& data,
                                           const std::string& phrase) {
    return OpenFailsWith(safetensors_bytes(header, data), phrase);
  }

  bool has_temp_files() const {
    for (const fs::directory_entry& e : fs::directory_iterator(dir_)) {
      if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
    }
    return false;
  }

  fs::path dir_;
};

// ------------------------------------------------------------------------------------------------
// Round trips through the writer

TEST_F(SafetensorsTest, RoundTripPreservesBitsShapesAndMetadata) {
  std::vector<float> weight(24);
  for (size_t i = 0; i < weight.size(); ++i) weight[i] = 0.25f * static_cast<float>(i) - 3.0f;
  weight[0] = -0.0f;
  weight[1] = std::numeric_limits<float>::infinity();
  weight[2] = std::numeric_limits<float>::denorm_min();
  weight[3] = std::numeric_limits<float>::max();
  weight[4] = std::bit_cast<float>(0x7FC01234u);  // NaN with a payload
  const std::vector<float> scalar = {42.5f};
  const std::vector<float> bias = {1.0f, -1.0f, 0.5f};
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"note", "Grüße \"quoted\" \\ back\\slash ✓ 日本語\nnew line"},
      {"empty", ""}};

  const std::string file = path("model.safetensors");
  write_safetensors(file,
                    {{"blocks.0.weight", {2, 3, 4}, weight.data()},
                     {"empty", {0, 3}, nullptr},
                     {"scalar", {1}, scalar.data()},
                     {"bias", {3}, bias.data()},
                     {"rank0", {}, scalar.data()}},
                    metadata);

  const SafetensorsReader reader(file);
  EXPECT_EQ(reader.path(), file);
  EXPECT_EQ(reader.metadata(), metadata);
  ASSERT_EQ(reader.tensors().size(), 5u);
  const std::vector<std::string> expected_order = {"blocks.0.weight", "empty", "scalar", "bias",
                                                   "rank0"};
  for (size_t i = 0; i < expected_order.size(); ++i) {
    EXPECT_EQ(reader.tensors()[i].name, expected_order[i]);
    EXPECT_EQ(reader.tensors()[i].dtype, DType::kF32);
  }
  EXPECT_EQ(reader.info("blocks.0.weight").shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(reader.info("empty").shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(reader.info("scalar").shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(reader.info("rank0").shape, (std::vector<int64_t>{}));
  EXPECT_EQ(reader.info("empty").numel(), 0);
  EXPECT_EQ(reader.info("rank0").numel(), 1);
  EXPECT_EQ(reader.info("blocks.0.weight").begin, 0u);
  EXPECT_EQ(reader.info("blocks.0.weight").end, 96u);
  EXPECT_EQ(reader.info("empty").begin, 96u);
  EXPECT_EQ(reader.info("empty").end, 96u);
  EXPECT_TRUE(reader.contains("bias"));
  EXPECT_FALSE(reader.contains("missing"));

  const std::vector<float> weight_back = reader.read_f32("blocks.0.weight");
  ASSERT_EQ(weight_back.size(), weight.size());
  for (size_t i = 0; i < weight.size(); ++i) {
    EXPECT_TRUE(same_bits(weight_back[i], weight[i])) << "element " << i;
  }
  EXPECT_TRUE(reader.read_f32("empty").empty());
  EXPECT_EQ(reader.read_f32("scalar"), scalar);
  EXPECT_EQ(reader.read_f32("bias"), bias);
  float rank0 = 0.0f;
  reader.read_f32("rank0", &rank0, 1);
  EXPECT_EQ(rank0, 42.5f);
}

TEST_F(SafetensorsTest, WriterPadsHeaderSoDataStartsAligned) {
  const std::vector<float> v = {1.0f, 2.0f, 3.0f};
  for (const std::string name :
       {"a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"}) {
    const std::string file = path(name + ".safetensors");
    write_safetensors(file, {{name, {3}, v.data()}});
    const std::string bytes = read_whole_file(file);
    ASSERT_GE(bytes.size(), 8u);
    uint64_t length = 0;
    for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
    EXPECT_EQ((8 + length) % 8, 0u) << name;
    EXPECT_EQ(bytes.size(), 8 + length + 12) << name;
    const std::string header = bytes.substr(8, length);
    const size_t close = header.rfind('}');
    ASSERT_NE(close, std::string::npos);
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << name;
    EXPECT_EQ(header.find("__metadata__"), std::string::npos) << "empty metadata is omitted";
    EXPECT_EQ(SafetensorsReader(file).read_f32(name), v);
  }
}

TEST_F(SafetensorsTest, WriterKeepsGivenTensorOrder) {
  const std::vector<float> v = {1.0f};
  const std::string file = path("order.safetensors");
  write_safetensors(file, {{"z", {1}, v.data()}, {"a", {1}, v.data()}, {"m", {1}, v.data()}},
                    {{"k", "v"}});
  const std::string header = read_whole_file(file);
  EXPECT_LT(header.find("__metadata__"), header.find("\"z\""));
  EXPECT_LT(header.find("\"z\""), header.find("\"a\""));
  EXPECT_LT(header.find("\"a\""), header.find("\"m\""));
  const SafetensorsReader reader(file);
  ASSERT_EQ(reader.tensors().size(), 3u);
  EXPECT_EQ(reader.tensors()[0].name, "z");
  EXPECT_EQ(reader.tensors()[1].name, "a");
  EXPECT_EQ(reader.tensors()[2].name, "m");
}

// ------------------------------------------------------------------------------------------------
// Hand-built files that are valid

TEST_F(SafetensorsTest, TensorsAreSortedByDataOffset) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("c":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})";
  const std::string file = write_raw(safetensors_bytes(header, raw_bytes<float>({2.0f, 1.0f})));
  const SafetensorsReader reader(file);
  ASSERT_EQ(reader.tensors().size(), 3u);
  EXPECT_EQ(reader.tensors()[0].name, "b");
  EXPECT_EQ(reader.tensors()[1].name, "a");
  EXPECT_EQ(reader.tensors()[2].name, "c");
  EXPECT_EQ(reader.read_f32("a"), std::vector<float>{1.0f});
  EXPECT_EQ(reader.read_f32("b"), std::vector<float>{2.0f});
}

TEST_F(SafetensorsTest, AcceptsEmptyHeaderAndPaddedHeader) {
  EXPECT_TRUE(SafetensorsReader(write_raw(safetensors_bytes("{}", ""))).tensors().empty());
  const std::string padded = R"({"__metadata__":{"a":"b"}})" + std::string(6, ' ');
  const SafetensorsReader reader(write_raw(safetensors_bytes(padded, ""), "padded.safetensors"));
  EXPECT_EQ(reader.metadata().at("a"), "b");
}

TEST_F(SafetensorsTest, AcceptsZeroSizedTensorsAtAnyOffset) {
  const std::string header = R"({"start":{"dtype":"F16","shape":[0],"data_offsets":[0,0]},)"
                             R"("x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("middle":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]},)"
                             R"("y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                             R"("end":{"dtype":"F32","shape":[0,5],"data_offsets":[8,8]}})";
  const SafetensorsReader reader(
      write_raw(safetensors_bytes(header, raw_bytes<float>({1.0f, 2.0f}))));
  EXPECT_EQ(reader.tensors().size(), 5u);
  EXPECT_EQ(reader.read_f32("y"), std::vector<float>{2.0f});
  EXPECT_TRUE(reader.read_f32("end").empty());
}

// ------------------------------------------------------------------------------------------------
// Conversion to fp32

TEST_F(SafetensorsTest, ReadsF16IncludingSubnormalsInfAndNan) {
  const std::vector<uint16_t> halves = {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x03FF,
                                        0x0400, 0x7C00, 0xFC00, 0x8000, 0x7E00};
  const std::string header = R"({"h":{"dtype":"F16","shape":[10],"data_offsets":[0,20]}})";
  const SafetensorsReader reader(write_raw(safetensors_bytes(header, raw_bytes(halves))));
  const std::vector<float> v = reader.read_f32("h");
  ASSERT_EQ(v.size(), 10u);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.5f);
  EXPECT_EQ(v[2], 65504.0f);
  EXPECT_EQ(v[3], std::ldexp(1.0f, -24));  // smallest subnormal half
  EXPECT_EQ(v[4], std::ldexp(1023.0f, -24));
  EXPECT_EQ(v[5], std::ldexp(1.0f, -14));  // smallest normal half
  EXPECT_EQ(v[6], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[7], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[8], 0.0f);
  EXPECT_TRUE(std::signbit(v[8]));
  EXPECT_TRUE(std::isnan(v[9]));
}

TEST_F(SafetensorsTest, ReadsBF16AsUpperHalfOfFp32) {
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC020, 0x3DCD, 0x7F80, 0xFF80, 0x0001, 0x7FC0};
  const std::string header = R"({"b":{"dtype":"BF16","shape":[7],"data_offsets":[0,14]}})";
  const SafetensorsReader reader(write_raw(safetensors_bytes(header, raw_bytes(bf16))));
  const std::vector<float> v = reader.read_f32("b");
  ASSERT_EQ(v.size(), 7u);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.5f);
  EXPECT_EQ(std::bit_cast<uint32_t>(v[2]), 0x3DCD0000u);  // 0.1 rounded to bf16
  EXPECT_EQ(v[2], 0.10009765625f);
  EXPECT_EQ(v[3], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[4], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(std::bit_cast<uint32_t>(v[5]), 0x00010000u);  // an fp32 subnormal
  EXPECT_TRUE(std::isnan(v[6]));
}

TEST_F(SafetensorsTest, ReadsF64NarrowedToFp32) {
  // FLT_MAX is 2^128 - 2^104; values below the midpoint 2^128 - 2^103 round down to it, and the
  // midpoint itself rounds (to even) up to infinity.
  const double midpoint = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);
  const double below_midpoint = midpoint - std::ldexp(1.0, 90);
  const std::vector<double> doubles = {1.0,
                                       -2.5,
                                       0.1,
                                       65504.0,
                                       1e300,
                                       -1e300,
                                       std::ldexp(1.0, -149),
                                       below_midpoint,
                                       std::numeric_limits<double>::quiet_NaN(),
                                       -midpoint};
  const std::string header = R"({"d":{"dtype":"F64","shape":[2,5],"data_offsets":[0,80]}})";
  const SafetensorsReader reader(write_raw(safetensors_bytes(header, raw_bytes(doubles))));
  std::vector<float> v(10);
  reader.read_f32("d", v.data(), 10);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.5f);
  EXPECT_EQ(v[2], 0.1f);
  EXPECT_EQ(v[3], 65504.0f);
  EXPECT_EQ(v[4], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[5], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[6], std::numeric_limits<float>::denorm_min());
  EXPECT_EQ(v[7], std::numeric_limits<float>::max());
  EXPECT_TRUE(std::isnan(v[8]));
  EXPECT_EQ(v[9], -std::numeric_limits<float>::infinity());
}

// Tensors bigger than the reader's 1 MB conversion buffer are converted chunk by chunk.
TEST_F(SafetensorsTest, ConvertsTensorsLargerThanOneChunk) {
  const size_t n = 600'001;  // 1.2 MB of F16, 4.8 MB of F64
  const uint16_t half_cycle[] = {0x3C00, 0xC100, 0x7BFF, 0x0001};
  const float float_cycle[] = {1.0f, -2.5f, 65504.0f, std::ldexp(1.0f, -24)};
  std::vector<uint16_t> halves(n);
  std::vector<double> doubles(n);
  for (size_t i = 0; i < n; ++i) {
    halves[i] = half_cycle[i % 4];
    doubles[i] = static_cast<double>(i);
  }
  const uint64_t half_bytes = 2 * n, double_bytes = 8 * n;
  const std::string header = R"({"h":{"dtype":"F16","shape":[)" + std::to_string(n) +
                             R"(],"data_offsets":[0,)" + std::to_string(half_bytes) +
                             R"(]},"d":{"dtype":"F64","shape":[)" + std::to_string(n) +
                             R"(],"data_offsets":[)" + std::to_string(half_bytes) + "," +
                             std::to_string(half_bytes + double_bytes) + "]}}";
  const SafetensorsReader reader(
      write_raw(safetensors_bytes(header, raw_bytes(halves) + raw_bytes(doubles))));
  const std::vector<float> h = reader.read_f32("h");
  const std::vector<float> d = reader.read_f32("d");
  ASSERT_EQ(h.size(), n);
  ASSERT_EQ(d.size(), n);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(h[i], float_cycle[i % 4]) << "element " << i;
    ASSERT_EQ(d[i], static_cast<float>(i)) << "element " << i;
  }
}

// ------------------------------------------------------------------------------------------------
// Corrupt files: each must fail with an error that names the file and the actual problem

constexpr char kOneF32[] = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";

TEST_F(SafetensorsTest, RejectsMissingFile) {
  const std::string file = path("does_not_exist.safetensors");
  EXPECT_TRUE(ThrowsErrorWith([&] { SafetensorsReader reader(file); },
                              {file, "cannot open", "No such file"}));
}

TEST_F(SafetensorsTest, RejectsFileShorterThan8Bytes) {
  EXPECT_TRUE(OpenFailsWith("", "empty file (0 bytes)"));
  EXPECT_TRUE(OpenFailsWith(std::string("\x02\x00\x00", 3), "3 bytes, too short"));
}

// Files of other kinds that users pass as --model get named as what they are, not as a safetensors
// file with an absurd header length.
TEST_F(SafetensorsTest, NamesOtherFileKinds) {
  const std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", 16);
  EXPECT_TRUE(OpenFailsWith(png, "not a safetensors file (it looks like a PNG image)"));
  EXPECT_TRUE(OpenFailsWith(std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00", 11),
                            "not a safetensors file (it looks like a JPEG image)"));
  EXPECT_TRUE(OpenFailsWith(std::string("PK\x03\x04\x14\x00\x00\x00\x08\x00", 10),
                            "zip archive, as PyTorch's torch.save writes"));
  EXPECT_TRUE(OpenFailsWith(std::string("\x80\x02}q\x00", 5), "too short"));
  EXPECT_TRUE(OpenFailsWith(std::string("\x80\x02}q\x00(X\x05\x00\x00\x00", 12),
                            "it looks like a Python pickle"));
}

TEST_F(SafetensorsTest, RejectsZeroHeaderLength) {
  EXPECT_TRUE(OpenFailsWith(le64(0) + "{}", "header length is 0"));
}

TEST_F(SafetensorsTest, RejectsHugeHeaderLength) {
  EXPECT_TRUE(OpenFailsWith(le64(uint64_t{1} << 63) + "{}", "exceeds the limit"));
  EXPECT_TRUE(OpenFailsWith(le64(100'000'001) + "{}", "exceeds the limit"));
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEndOfFile) {
  EXPECT_TRUE(OpenFailsWith(le64(100) + "{}", "beyond the end of the file"));
}

TEST_F(SafetensorsTest, RejectsInvalidJson) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a": )", "", "not valid JSON"));
  EXPECT_TRUE(HeaderFailsWith("{} trailing", "", "not valid JSON"));
}

TEST_F(SafetensorsTest, RejectsInvalidUtf8InHeader) {
  EXPECT_TRUE(HeaderFailsWith("{\"\xff\":{}}", "", "not valid JSON"));
}

TEST_F(SafetensorsTest, RejectsJsonArrayInsteadOfObject) {
  EXPECT_TRUE(HeaderFailsWith("[]", "", "must be a JSON object, got a JSON array"));
}

TEST_F(SafetensorsTest, RejectsEntryThatIsNotAnObject) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":[1,2]})", "", "entry for tensor 'a' must be a JSON object"));
}

TEST_F(SafetensorsTest, RejectsMissingField) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[1]}})", std::string(4, '\0'),
                              "tensor 'a' is missing field 'data_offsets'"));
}

TEST_F(SafetensorsTest, RejectsExtraField) {
  EXPECT_TRUE(
      HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"strides":[1]}})",
                      std::string(4, '\0'), "tensor 'a' has unexpected field 'strides'"));
}

TEST_F(SafetensorsTest, RejectsDtypeThatIsNotAString) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})",
                              std::string(4, '\0'), "dtype 4, which is not a string"));
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})",
                              std::string(4, '\0'), "unknown dtype \"F33\""));
}

TEST_F(SafetensorsTest, RejectsShapeThatIsNotAList) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})",
                              std::string(4, '\0'), "not a list of non-negative integers"));
}

TEST_F(SafetensorsTest, RejectsNegativeShape) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,0]}})", "",
                              "shape [2,-1]: dimensions must be non-negative integers"));
}

TEST_F(SafetensorsTest, RejectsFractionalShape) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})",
                              std::string(4, '\0'), "dimensions must be non-negative integers"));
}

TEST_F(SafetensorsTest, RejectsShapeDimensionBeyondInt64) {
  EXPECT_TRUE(HeaderFailsWith(
      R"({"a":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})", "",
      "does not fit in int64"));
}

TEST_F(SafetensorsTest, RejectsShapeProductOverflow) {
  EXPECT_TRUE(HeaderFailsWith(
      R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,0]}})", "",
      "element count overflows"));
}

TEST_F(SafetensorsTest, RejectsByteSizeOverflow) {
  // 2^62 elements fit in int64, but 2^62 * 8 bytes does not fit in uint64.
  EXPECT_TRUE(
      HeaderFailsWith(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})",
                      "", "byte size overflows"));
}

TEST_F(SafetensorsTest, RejectsMalformedDataOffsets) {
  const std::string phrase = "not two non-negative integers";
  EXPECT_TRUE(
      HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0]}})", "", phrase));
  EXPECT_TRUE(
      HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0,0]}})", "", phrase));
  EXPECT_TRUE(
      HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[-4,0]}})", "", phrase));
  EXPECT_TRUE(
      HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":"0,0"}})", "", phrase));
}

TEST_F(SafetensorsTest, RejectsDataOffsetsWithBeginAfterEnd) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})",
                              std::string(8, '\0'), "[8,4] with begin > end"));
}

TEST_F(SafetensorsTest, RejectsSizeMismatch) {
  EXPECT_TRUE(HeaderFailsWith(
      R"({"head.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})",
      std::string(12, '\0'),
      "tensor 'head.weight' has data_offsets [0, 12] (12 bytes) but dtype F32 and shape [2, 3] "
      "need 24 bytes"));
}

TEST_F(SafetensorsTest, RejectsOffsetsBeyondDataSection) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                              std::string(8, '\0'),
                              "beyond the end of the data section (8 bytes)"));
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              std::string(12, '\0'), "tensor 'b' (data_offsets [4, 12]) overlaps"));
}

TEST_F(SafetensorsTest, RejectsZeroSizedTensorInsideAnother) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                              std::string(8, '\0'), "tensor 'z' (data_offsets [4, 4]) overlaps"));
}

TEST_F(SafetensorsTest, RejectsHoleBetweenTensors) {
  EXPECT_TRUE(
      HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                      std::string(12, '\0'),
                      "hole of 4 bytes between tensor 'a' (data_offsets [0, 4]) and tensor 'b'"));
}

TEST_F(SafetensorsTest, RejectsDataNotStartingAtZero) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              std::string(8, '\0'), "hole of 4 bytes at the start"));
}

TEST_F(SafetensorsTest, RejectsTrailingUnindexedBytes) {
  EXPECT_TRUE(HeaderFailsWith(kOneF32, std::string(7, '\0'), "3 trailing bytes"));
  EXPECT_TRUE(HeaderFailsWith("{}", std::string(2, '\0'), "2 trailing bytes"));
}

TEST_F(SafetensorsTest, RejectsDuplicateTensorNames) {
  EXPECT_TRUE(HeaderFailsWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              std::string(8, '\0'), "duplicate tensor name 'a'"));
}

TEST_F(SafetensorsTest, RejectsDuplicateKeyInsideEntry) {
  EXPECT_TRUE(
      HeaderFailsWith(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})",
                      std::string(4, '\0'), "duplicate key 'dtype'"));
}

TEST_F(SafetensorsTest, RejectsMetadataWithNonStringValue) {
  EXPECT_TRUE(HeaderFailsWith(R"({"__metadata__":{"ok":"yes","epoch":3}})", "",
                              "__metadata__ value for key 'epoch' is not a string: 3"));
}

TEST_F(SafetensorsTest, RejectsMetadataThatIsNotAnObject) {
  EXPECT_TRUE(HeaderFailsWith(R"({"__metadata__":["a"]})", "",
                              "__metadata__ must be a JSON object of strings"));
}

// ------------------------------------------------------------------------------------------------
// Reading tensors

TEST_F(SafetensorsTest, ReadF32RejectsWrongCount) {
  std::vector<float> v(6, 1.0f);
  const std::string file = path("m.safetensors");
  write_safetensors(file, {{"w", {2, 3}, v.data()}});
  const SafetensorsReader reader(file);
  std::vector<float> dst(5);
  EXPECT_TRUE(ThrowsErrorWith([&] { reader.read_f32("w", dst.data(), 5); },
                              {file, "tensor 'w' has 6 elements", "destination holds 5"}));
}

TEST_F(SafetensorsTest, ReadF32RejectsIntegerDtype) {
  const std::string header = R"({"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})";
  const std::string file = write_raw(safetensors_bytes(header, raw_bytes<int32_t>({1, 2})));
  const SafetensorsReader reader(file);
  EXPECT_EQ(reader.info("i").dtype, DType::kI32);
  std::vector<float> dst(2);
  EXPECT_TRUE(ThrowsErrorWith([&] { reader.read_f32("i", dst.data(), 2); },
                              {file, "tensor 'i' has dtype I32"}));
}

TEST_F(SafetensorsTest, MissingTensorNameIsAnError) {
  const std::string file = write_raw(safetensors_bytes(kOneF32, raw_bytes<float>({1.0f})));
  const SafetensorsReader reader(file);
  EXPECT_TRUE(ThrowsErrorWith([&] { reader.info("nope"); }, {file, "no tensor named 'nope'"}));
  EXPECT_TRUE(ThrowsErrorWith([&] { reader.read_f32("nope"); }, {file, "no tensor named 'nope'"}));
}

TEST_F(SafetensorsTest, FileTruncatedAfterOpeningIsAnError) {
  const std::vector<float> v(100, 3.0f);
  const std::string file = path("shrinks.safetensors");
  write_safetensors(file, {{"w", {100}, v.data()}});
  const SafetensorsReader reader(file);
  fs::resize_file(file, fs::file_size(file) - 40);
  EXPECT_TRUE(ThrowsErrorWith([&] { reader.read_f32("w"); }, {file, "short read", "truncated"}));
}

TEST(SafetensorsDTypeTest, NamesAndSizes) {
  EXPECT_STREQ(to_string(DType::kF8E5M2), "F8_E5M2");
  EXPECT_STREQ(to_string(DType::kBF16), "BF16");
  EXPECT_EQ(dtype_size(DType::kBool), 1u);
  EXPECT_EQ(dtype_size(DType::kF16), 2u);
  EXPECT_EQ(dtype_size(DType::kU32), 4u);
  EXPECT_EQ(dtype_size(DType::kI64), 8u);
}

// ------------------------------------------------------------------------------------------------
// Writer

TEST_F(SafetensorsTest, WriteIntoMissingDirectoryFails) {
  const std::vector<float> v = {1.0f};
  const std::string file = path("no/such/dir/model.safetensors");
  EXPECT_TRUE(ThrowsErrorWith(
      [&] {
        write_safetensors(file, {{"a", {1}, v.data()}});
      },
      {"cannot write '" + file + "'", "No such file or directory"}));
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(SafetensorsTest, SuccessfulWriteLeavesNoTempFile) {
  const std::vector<float> v = {1.0f, 2.0f};
  write_safetensors(path("m.safetensors"), {{"a", {2}, v.data()}});
  EXPECT_TRUE(fs::exists(path("m.safetensors")));
  EXPECT_FALSE(has_temp_files());
}

TEST_F(SafetensorsTest, RemoveInterruptedWritesRemovesOnlyWriterTempFiles) {
  for (const char* name : {"m.safetensors.tmp-123", "m.safetensors", "notes.tmp-x", ".tmp-7"}) {
    std::ofstream(path(name)) << "x";
  }
  remove_interrupted_writes(dir_.string());
  EXPECT_FALSE(fs::exists(path("m.safetensors.tmp-123")));
  EXPECT_TRUE(fs::exists(path("m.safetensors")));
  EXPECT_TRUE(fs::exists(path("notes.tmp-x")));  // not <file>.tmp-<pid>
  EXPECT_TRUE(fs::exists(path(".tmp-7")));       // no file name before the suffix
}

TEST_F(SafetensorsTest, OverwriteReplacesExistingFile) {
  const std::vector<float> first = {1.0f, 2.0f, 3.0f};
  const std::vector<float> second = {9.0f};
  const std::string file = path("m.safetensors");
  write_safetensors(file, {{"a", {3}, first.data()}, {"b", {1}, second.data()}}, {{"v", "1"}});
  write_safetensors(file, {{"c", {1}, second.data()}});
  const SafetensorsReader reader(file);
  ASSERT_EQ(reader.tensors().size(), 1u);
  EXPECT_EQ(reader.tensors()[0].name, "c");
  EXPECT_EQ(reader.read_f32("c"), second);
  EXPECT_TRUE(reader.metadata().empty());
  EXPECT_FALSE(has_temp_files());
}

TEST_F(SafetensorsTest, FailedRenameRemovesTempFile) {
  // A non-empty directory where the file should go makes the final rename fail.
  const std::string target = path("taken");
  fs::create_directories(fs::path(target) / "child");
  const std::vector<float> v = {1.0f};
  EXPECT_TRUE(ThrowsErrorWith(
      [&] {
        write_safetensors(target, {{"a", {1}, v.data()}});
      },
      {"cannot write '" + target + "'", "renaming"}));
  EXPECT_FALSE(has_temp_files());
  EXPECT_TRUE(fs::is_directory(target));
}

TEST_F(SafetensorsTest, WriterRejectsInvalidTensors) {
  const std::vector<float> v = {1.0f, 2.0f};
  const std::string file = path("bad.safetensors");
  EXPECT_TRUE(ThrowsErrorWith(
      [&] {
        write_safetensors(file, {{"a", {1}, v.data()}, {"a", {1}, v.data()}});
      },
      {file, "duplicate tensor name 'a'"}));
  EXPECT_TRUE(ThrowsErrorWith(
      [&] {
        write_safetensors(file, {{"a", {2, -1}, v.data()}});
      },
      {file, "negative dimension"}));
  EXPECT_TRUE(ThrowsErrorWith(
      [&] {
        write_safetensors(file, {{"a", {2}, nullptr}});
      },
      {file, "null data pointer"}));
  EXPECT_TRUE(ThrowsErrorWith(
      [&] {
        write_safetensors(file, {{"__metadata__", {2}, v.data()}});
      },
      {file, "reserved"}));
  EXPECT_TRUE(ThrowsErrorWith(
      [&] {
        write_safetensors(file, {{"a", {2}, v.data()}}, {{"k", "bad \xff utf8"}});
      },
      {file, "UTF-8"}));
  EXPECT_FALSE(fs::exists(file));
  EXPECT_FALSE(has_temp_files());
}

}  // namespace
}  // namespace vit

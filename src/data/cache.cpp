// The folder datasets' image cache (data/cache.hpp). A file is the images' pixels, each [C, h, w],
// one after another; an index of (offset, width, height, label) per image as int64; the reasons
// for the files left out (length-prefixed); then a 64-byte trailer: "VITCACHE", version, channels,
// size, key, counts and where the index starts. Written front to back through one temporary file
// that is renamed into place only when whole; read by mapping it and checking every number the
// trailer and index give against the file's size before anything is read through them.
#include "data/cache.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "vit/error.hpp"

namespace vit::data {
namespace {

constexpr char kMagic[8] = {'V', 'I', 'T', 'C', 'A', 'C', 'H', 'E'};
constexpr uint32_t kVersion = 1;

struct Trailer {
  char magic[8];
  uint32_t version, channels, size, reserved;
  uint64_t key, images, errors, pixel_bytes, index_offset;
};
static_assert(sizeof(Trailer) == 64, "the trailer is 64 bytes");

// Temporary files of this cache file whose writer (the pid after the infix) is no longer running.
void remove_abandoned_builds(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const std::string prefix = p.filename().string() + kAtomicTempInfix;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(p.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with(prefix)) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(pid_t(std::stol(pid)), 0) == 0 || errno == EPERM) continue;  // still running
    std::error_code ignored;
    fs::remove(e.path(), ignored);
  }
}

}  // namespace

std::string cache_file(const std::string& dir, const std::string& prefix, uint64_t key) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)key);
  return (std::filesystem::path(dir) / (prefix + "-" + hex + ".vitcache")).string();
}

uint64_t fnv1a(const std::string& bytes, uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::shared_ptr<ImageList> open_cache(const std::string& path, uint64_t key, int channels, int size,
                                      std::vector<std::string>* errors) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < int64_t(sizeof(Trailer))) {
    ::close(fd);
    return nullptr;
  }
  const uint64_t file_size = uint64_t(st.st_size);
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return nullptr;
  std::shared_ptr<const uint8_t> bytes(
      static_cast<const uint8_t*>(map),
      [file_size](const uint8_t* p) { ::munmap(const_cast<uint8_t*>(p), file_size); });
  Trailer t;
  std::memcpy(&t, bytes.get() + file_size - sizeof(Trailer), sizeof t);
  const uint64_t body = file_size - sizeof(Trailer);
  // Every count bounded by the file before it is multiplied or used.
  if (std::memcmp(t.magic, kMagic, 8) != 0 || t.version != kVersion || t.key != key ||
      t.channels != uint32_t(channels) || t.size != uint32_t(size) || t.images > body / 32 ||
      t.pixel_bytes > body || t.index_offset != (t.pixel_bytes + 7) / 8 * 8 ||
      t.index_offset + 32 * t.images > body || t.errors > body) {
    return nullptr;
  }
  auto list = std::make_shared<ImageList>();
  list->channels = channels;
  list->image_size = size;
  const uint8_t* index = bytes.get() + t.index_offset;
  for (uint64_t i = 0; i < t.images; ++i) {
    int64_t row[4];
    std::memcpy(row, index + 32 * i, sizeof row);
    const int64_t offset = row[0], w = row[1], h = row[2], label = row[3];
    if (w < 1 || h < 1 || w > kMaxStoredSide || h > kMaxStoredSide || offset < 0 ||
        uint64_t(offset) + uint64_t(channels * w * h) > t.pixel_bytes || label < 0 ||
        label > INT32_MAX) {
      return nullptr;
    }
    list->offsets.push_back(offset);
    list->widths.push_back(int32_t(w));
    list->heights.push_back(int32_t(h));
    list->labels.push_back(int32_t(label));
  }
  uint64_t at = t.index_offset + 32 * t.images;
  std::vector<std::string> reasons;
  for (uint64_t e = 0; e < t.errors; ++e) {
    uint32_t n = 0;
    if (at + 4 > body) return nullptr;
    std::memcpy(&n, bytes.get() + at, 4);
    if (at + 4 + n > body) return nullptr;
    reasons.emplace_back(reinterpret_cast<const char*>(bytes.get() + at + 4), n);
    at += 4 + n;
  }
  if (at != body) return nullptr;
  list->storage = std::move(bytes);
  if (errors) *errors = std::move(reasons);
  return list;
}

CacheWriter::CacheWriter(const std::string& path, uint64_t key, int channels, int size)
    : file_((remove_abandoned_builds(path), path)), key_(key), channels_(channels), size_(size) {}

void CacheWriter::add(const uint8_t* planar, int w, int h, int32_t label) {
  const uint64_t n = uint64_t(channels_) * uint64_t(w) * uint64_t(h);
  file_.write(planar, n);
  index_.insert(index_.end(), {int64_t(bytes_), w, h, label});
  bytes_ += n;
}

void CacheWriter::add_error(const std::string& reason) {
  errors_.push_back(reason);
}

void CacheWriter::commit() {
  const uint64_t pad = (8 - bytes_ % 8) % 8;
  const char zeros[8] = {};
  file_.write(zeros, pad);
  file_.write(index_.data(), index_.size() * sizeof(int64_t));
  for (const std::string& e : errors_) {
    const uint32_t n = uint32_t(e.size());
    file_.write(&n, 4);
    file_.write(e.data(), n);
  }
  Trailer t{};
  std::memcpy(t.magic, kMagic, 8);
  t.version = kVersion;
  t.channels = uint32_t(channels_);
  t.size = uint32_t(size_);
  t.key = key_;
  t.images = index_.size() / 4;
  t.errors = errors_.size();
  t.pixel_bytes = bytes_;
  t.index_offset = bytes_ + pad;
  file_.write(&t, sizeof t);
  file_.commit();
}

}  // namespace vit::data

// The image cache of folder datasets: a split's images, decoded and resized once, in one file that
// later runs map into memory (so a dataset larger than RAM works), found by a key over the files'
// names, sizes and modification times and the preprocessing, so that a changed file or setting
// makes a new one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/atomic_file.hpp"
#include "vit/dataset.hpp"

namespace vit::data {

// The longest side a split's stored (resized) image may have, in memory or in a cache file: a
// file whose aspect would make it longer (an 8192 x 1 strip with its shorter side resized to 146)
// is refused as unreadable, naming it.
constexpr int kMaxStoredSide = 1 << 16;

// One file of the cache: <dir>/<prefix>-<key as 16 hex digits>.vitcache.
std::string cache_file(const std::string& dir, const std::string& prefix, uint64_t key);

// 64-bit FNV-1a of bytes: the key of a description that names everything the cached pixels
// depend on.
uint64_t fnv1a(const std::string& bytes, uint64_t h = 0xcbf29ce484222325ull);

// The cached split at `path` when the file is complete and was written for `key`, `channels` and
// `size` (its pixels mapped, read-only), with the reasons the files it left out could not be read;
// null when there is no such file or it is not a valid cache for them (then it is rebuilt).
std::shared_ptr<ImageList> open_cache(const std::string& path, uint64_t key, int channels, int size,
                                      std::vector<std::string>* errors);

// Writes a cache file: images appended in order, then the reasons for the files left out;
// commit() makes it whole at once (a temporary file renamed over it), so a run killed while
// building leaves no file that open_cache would take. Temporary files of builds whose process is
// gone are removed when a new build of the same file starts.
class CacheWriter {
 public:
  CacheWriter(const std::string& path, uint64_t key, int channels, int size);
  void add(const uint8_t* planar, int w, int h, int32_t label);  // [channels, h, w]
  void add_error(const std::string& reason);
  void commit();

 private:
  AtomicFileWriter file_;
  uint64_t key_;
  int channels_, size_;
  uint64_t bytes_ = 0;
  std::vector<int64_t> index_;  // per image: offset, width, height, label
  std::vector<std::string> errors_;
};

}  // namespace vit::data

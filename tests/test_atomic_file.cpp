// The crash-safe file writer (src/core/atomic_file.hpp) that safetensors files, checkpoints and
// the MNIST conversion all go through: a file is replaced whole or not at all, and no temporary
// file outlives a failed write.
#include "core/atomic_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "idx_writer.hpp"
#include "test_util.hpp"
#include "vit/error.hpp"

namespace vit::test {
namespace {

namespace fs = std::filesystem;

int temp_files(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    n += e.path().filename().string().find(kAtomicTempInfix) != std::string::npos;
  }
  return n;
}

TEST(AtomicFile, ReplacesWholeOrNotAtAll) {
  TempDir dir("atomic");
  const std::string path = dir / "f.bin";
  write_atomically(path, "old", 3);
  EXPECT_EQ(file_bytes(path), "old");
  {
    AtomicFileWriter w(path);
    w.write("new, never committed", 20);
    EXPECT_EQ(temp_files(dir.path), 1);
    EXPECT_EQ(file_bytes(path), "old");  // the real name is untouched while writing
  }  // destroyed without commit(): the temporary file goes, the old file stays
  EXPECT_EQ(temp_files(dir.path), 0);
  EXPECT_EQ(file_bytes(path), "old");
  {
    AtomicFileWriter w(path);
    w.write("ne", 2);
    w.write("w", 1);
    w.write(nullptr, 0);
    w.commit();
  }
  EXPECT_EQ(file_bytes(path), "new");
  EXPECT_EQ(temp_files(dir.path), 0);
  write_atomically(path, "", 0);  // an empty file is a file
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(file_bytes(path), "");
}

TEST(AtomicFile, FailuresNameTheFileAndTheStep) {
  TempDir dir("atomic-fail");
  try {
    write_atomically(dir / "missing/f.bin", "x", 1);
    FAIL() << "wrote into a directory that does not exist";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot write '" + (dir / "missing/f.bin") + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cannot create"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace vit::test

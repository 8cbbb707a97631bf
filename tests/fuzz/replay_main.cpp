// SPDX-License-Identifier: Apache-2.0
// Corpus replayer linked into every fuzz target when TC_FUZZ is off, so that plain ctest runs
// each corpus as a regression test (STYLE.md 3.8, Envoy's rule). Usage: <target> PATH...
// where each PATH is a corpus directory (every regular file in it, sorted) or a single file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

// The entry points of a libFuzzer target: each defines the first, optionally the second.
extern "C" int LLVMFuzzerTestOneInput(  // NOLINT(readability-identifier-naming)
    const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(  // NOLINT(readability-identifier-naming)
    int* argc, char*** argv);

namespace {

bool run_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  // A copy in its own allocation, so that ASan catches reads past the end.
  std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) {
    LLVMFuzzerInitialize(&argc, &argv);
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  std::size_t ran = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path root(argv[i]);
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(root, ec)) {
      for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
        if (entry.is_regular_file(ec)) {
          files.push_back(entry.path());
        }
      }
      std::sort(files.begin(), files.end());
    } else if (std::filesystem::is_regular_file(root, ec)) {
      files.push_back(root);
    }
    if (files.empty()) {
      std::fprintf(stderr, "%s: no corpus files\n", root.c_str());
      return 1;
    }
    for (const auto& file : files) {
      if (!run_file(file)) {
        return 1;
      }
      ++ran;
    }
  }
  std::printf("replayed %zu inputs\n", ran);
  return 0;
}

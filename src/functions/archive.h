// tar.gz packing and safe unpacking for deploys (PUT /admin/functions/{name},
// `aifn deploy DIR`), with libarchive. Extraction never writes outside the
// destination: absolute paths, ".." components, and symbolic or hard links
// that point outside it are refused, as are device files and FIFOs, and the
// total size and entry count are bounded. Stateless functions: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace aifn::functions {

struct ExtractLimits {
  std::uint64_t max_total_bytes = 256ull * 1024 * 1024;  // sum of file sizes
  std::uint64_t max_entries = 10'000;
};

// Unpacks a gzip-compressed tar held in memory into `dest_dir` (which must
// exist and be empty). Errors are bad_request (malformed or unsafe archive,
// message names the entry) or payload_too_large (limits). On error the
// caller deletes dest_dir; nothing outside it was touched.
Expected<void> extract_tar_gz(std::string_view archive, const std::string& dest_dir,
                              const ExtractLimits& limits = {});

// Packs the regular files, folders and (relative, inside) symlinks under
// `dir` into a tar.gz in memory, paths relative to `dir`. Skips node_modules/.cache and .git.
Expected<std::string> create_tar_gz(const std::string& dir);

}  // namespace aifn::functions

#pragma once
// "The cubin from the DB's cache, else NVRTC, then into the cache": the one path by which the
// tuner's first launch and the engine get a kernel's cubin (the tuner's compile pipeline batches
// its misses, under the same cubin_cache_key).
#include <string>
#include <vector>

#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

struct CubinLookup {
  bool ok = false;  // false: NVRTC refused the source (log says why)
  std::vector<char> cubin;
  bool from_cache = false;
  std::string log;
};

// An unreadable cache entry costs only a compile; with `store`, a compiled cubin is stored, and a
// store that fails (a full disk, a read-only or locked file) does not stop the caller: the next
// process compiles again.
CubinLookup cached_or_compiled(db::TuningDb& db, const std::string& source, const std::string& arch,
                               bool store);

}  // namespace deconvtune::tuner

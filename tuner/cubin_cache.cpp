#include "tuner/cubin_cache.hpp"

#include <optional>
#include <utility>

#include "codegen/generator.hpp"
#include "gpu/nvrtc_compiler.hpp"

namespace deconvtune::tuner {

CubinLookup cached_or_compiled(db::TuningDb& db, const std::string& source, const std::string& arch,
                               bool store) {
  CompileOptions options;
  options.arch = arch;
  const std::string key = cubin_cache_key(source, options);
  CubinLookup lookup;
  try {
    if (std::optional<std::vector<char>> cached = db.cached_cubin(key)) {
      lookup.ok = true;
      lookup.from_cache = true;
      lookup.cubin = std::move(*cached);
      return lookup;
    }
  } catch (const db::DbError&) {
    // Compiled again below.
  }
  CompileResult compiled = compile_cuda(source, options);
  lookup.ok = compiled.ok;
  lookup.log = std::move(compiled.log);
  lookup.cubin = std::move(compiled.cubin);
  if (lookup.ok && store) {
    try {
      db.store_cubin(key, lookup.cubin, generator_version());
    } catch (const db::DbError&) {
    }
  }
  return lookup;
}

}  // namespace deconvtune::tuner

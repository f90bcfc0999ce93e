// tuner/cubin_cache: the engine's and the tuner's one path to a kernel's cubin. NVRTC runs on the
// CPU, so every branch is tested here: a miss compiles and stores, a hit returns the stored bytes,
// a source that does not compile stores nothing, and a DB that cannot be written costs nothing
// but the cache.
#include <gtest/gtest.h>

#include <filesystem>

#include "gpu/nvrtc_compiler.hpp"
#include "tests/db_test_support.hpp"
#include "tuner/cubin_cache.hpp"

namespace deconvtune::tuner {
namespace {

using db::TuningDb;
using db::testing::TempDir;

constexpr const char* kSource = "extern \"C\" __global__ void k(float* y) { y[0] = 1.0f; }\n";

TEST(CubinCache, AMissCompilesAndStoresAHitReturnsTheStoredBytes) {
  TempDir dir;
  TuningDb db(dir.file("cache.db"));
  const CubinLookup first = cached_or_compiled(db, kSource, "sm_90", /*store=*/true);
  ASSERT_TRUE(first.ok) << first.log;
  EXPECT_FALSE(first.from_cache);
  EXPECT_FALSE(first.cubin.empty());
  EXPECT_EQ(db.cubin_cache_stats().entries, 1);
  const CubinLookup again = cached_or_compiled(db, kSource, "sm_90", /*store=*/true);
  ASSERT_TRUE(again.ok);
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(again.cubin, first.cubin);
  // Another arch is another key.
  const CubinLookup other = cached_or_compiled(db, kSource, "sm_80", /*store=*/false);
  ASSERT_TRUE(other.ok) << other.log;
  EXPECT_FALSE(other.from_cache);
  EXPECT_EQ(db.cubin_cache_stats().entries, 1) << "store=false stores nothing";
}

TEST(CubinCache, ASourceThatDoesNotCompileStoresNothingAndCarriesTheLog) {
  TempDir dir;
  TuningDb db(dir.file("cache.db"));
  const CubinLookup broken =
      cached_or_compiled(db, "__global__ void k() { undeclared(); }", "sm_90", true);
  EXPECT_FALSE(broken.ok);
  EXPECT_NE(broken.log.find("undeclared"), std::string::npos) << broken.log;
  EXPECT_TRUE(broken.cubin.empty());
  EXPECT_EQ(db.cubin_cache_stats().entries, 0);
}

TEST(CubinCache, AReadOnlyDbCostsOnlyTheCache) {
  TempDir dir;
  const std::string path = dir.file("cache.db");
  { TuningDb create(path); }
  TuningDb read_only(path, /*read_only=*/true);
  const CubinLookup lookup = cached_or_compiled(read_only, kSource, "sm_90", /*store=*/true);
  ASSERT_TRUE(lookup.ok) << lookup.log;
  EXPECT_FALSE(lookup.cubin.empty());
  EXPECT_EQ(TuningDb(path).cubin_cache_stats().entries, 0);
}

}  // namespace
}  // namespace deconvtune::tuner

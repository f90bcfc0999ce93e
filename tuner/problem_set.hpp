#pragma once
// Many problems for one tuning run: a problems file (one problem per line, as --problem takes), and
// the stable partition of a problem list into shards for tuning across machines (`--shard i/n`,
// i from 0: a Slurm array task id or a Kubernetes indexed Job's completion index).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/problem.hpp"

namespace deconvtune::tuner {

struct Shard {
  int index = 0;  // 0 <= index < count
  int count = 1;
};

// "i/n"; throws std::invalid_argument saying what is wrong.
Shard parse_shard(std::string_view text);

// The shard a problem key belongs to: sha256(key) mod n. Depends only on the key and n, so every
// machine computes the same partition whatever order its problems file lists them in.
int shard_of(const std::string& problem_key, int shard_count);

// The problems of `problems` in `shard`, in their order.
std::vector<Problem> select_shard(const std::vector<Problem>& problems, const Shard& shard);

// Reads a problems file: one problem per line as --problem takes it (inline JSON, `seed`, or a
// JSON file's path, relative to the problems file's folder); blank lines and lines starting with
// '#' are skipped. `precision`, when set, overrides each problem's. A problem listed twice (same
// key) is kept once. Throws std::invalid_argument "FILE:LINE: reason" for the first bad line, and
// for a file that is not a regular file or is larger than kMaxProblemsFileBytes.
constexpr size_t kMaxProblemsFileBytes = 64 << 20;
std::vector<Problem> read_problems_file(const std::string& path,
                                        std::optional<Precision> precision = std::nullopt);

}  // namespace deconvtune::tuner

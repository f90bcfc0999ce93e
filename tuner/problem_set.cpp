#include "tuner/problem_set.hpp"

#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include "codegen/sha256.hpp"

namespace deconvtune::tuner {
namespace {

int parse_int(std::string_view text, const char* what, std::string_view whole) {
  int value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    throw std::invalid_argument(
        fmt::format("--shard '{}': {} '{}' is not a whole number", whole, what, text));
  }
  return value;
}

}  // namespace

Shard parse_shard(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    throw std::invalid_argument(
        fmt::format("--shard '{}': expected i/n, e.g. 0/4 (shard i of n, i from 0)", text));
  }
  Shard shard;
  shard.index = parse_int(text.substr(0, slash), "the index", text);
  shard.count = parse_int(text.substr(slash + 1), "the count", text);
  if (shard.count < 1) {
    throw std::invalid_argument(fmt::format("--shard '{}': the count must be at least 1", text));
  }
  if (shard.index < 0 || shard.index >= shard.count) {
    throw std::invalid_argument(fmt::format(
        "--shard '{}': the index must be in [0, {}] (shards count from 0)", text, shard.count - 1));
  }
  return shard;
}

int shard_of(const std::string& problem_key, int shard_count) {
  if (shard_count < 1) throw std::invalid_argument("shard_of: shard_count must be at least 1");
  return static_cast<int>(sha256_prefix64(problem_key) % static_cast<uint64_t>(shard_count));
}

std::vector<Problem> select_shard(const std::vector<Problem>& problems, const Shard& shard) {
  std::vector<Problem> selected;
  for (const Problem& problem : problems) {
    if (shard_of(problem.key(), shard.count) == shard.index) selected.push_back(problem);
  }
  return selected;
}

std::vector<Problem> read_problems_file(const std::string& path,
                                        std::optional<Precision> precision) {
  // Only a regular file, and a bounded one: a FIFO would block forever, /dev/zero never ends.
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (!error && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
    throw std::invalid_argument(
        fmt::format("{}: the problems file is not a regular file", printable(path)));
  }
  if (!error && std::filesystem::exists(status) &&
      std::filesystem::file_size(path, error) > kMaxProblemsFileBytes) {
    throw std::invalid_argument(fmt::format("{}: the problems file is larger than {} bytes",
                                            printable(path), kMaxProblemsFileBytes));
  }
  std::ifstream file(path);
  if (!file) {
    throw std::invalid_argument(fmt::format("{}: cannot open the problems file", printable(path)));
  }
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::vector<Problem> problems;
  std::set<std::string> keys;
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::string spec = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    // A relative file name means relative to the problems file, not to the working folder.
    if (spec.front() != '{' && spec != "seed" && std::filesystem::path(spec).is_relative()) {
      spec = (folder / spec).string();
    }
    try {
      Problem problem = Problem::from_argument(spec);
      if (precision) problem.precision = *precision;
      if (keys.insert(problem.key()).second) problems.push_back(problem);
    } catch (const std::exception& e) {
      throw std::invalid_argument(fmt::format("{}:{}: {}", path, number, e.what()));
    }
  }
  if (file.bad()) throw std::invalid_argument(fmt::format("{}: read error", path));
  if (problems.empty())
    throw std::invalid_argument(fmt::format("{}: no problems in the file", path));
  return problems;
}

}  // namespace deconvtune::tuner

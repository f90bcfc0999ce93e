#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "codegen/generator.hpp"
#include "codegen/problem.hpp"
#include "codegen/search_space.hpp"
#include "fuzz/fuzz_support.hpp"

namespace deconvtune::fuzz {
namespace {

// The problem, or nullopt when it was refused with a ProblemError (the documented refusal).
// Anything else escapes to the harness as a finding.
std::optional<Problem> parse(std::string_view argument, std::string* refusal) {
  try {
    return Problem::from_argument(argument);
  } catch (const ProblemError& e) {
    *refusal = e.what();
    const std::string named = e.field() == ProblemError::kWholeSpec
                                  ? std::string("problem: ")
                                  : "problem field '" + e.field() + "': ";
    require(refusal->rfind(named, 0) == 0, "a refusal that does not name its field: " + *refusal);
    return std::nullopt;
  }
}

void check_accepted(const Problem& problem) {
  problem.validate();
  const std::string key = problem.key();
  const nlohmann::json spec = problem.to_json();
  const Problem again = Problem::from_json(spec);
  require(again.key() == key, "to_json does not round-trip: " + key + " vs " + again.key());
  require(again.to_json() == spec, "to_json is not canonical for " + key);
  require(Problem::from_argument(spec.dump()).key() == key, "inline JSON of to_json differs");
  constexpr int64_t kMaxElements = int64_t{1} << 46;  // the limit validate() promises
  for (int64_t elements : {problem.x_elements(), problem.w_elements(), problem.y_elements()}) {
    require(elements > 0 && elements <= kMaxElements,
            fmt::format("{} elements in a tensor of {}", elements, key));
  }
  require(problem.multiply_adds() >= 0, "negative multiply-add count for " + key);
  // What `run` and `inspect` do next with a problem from the command line.
  const Config config = default_config(problem);
  const std::string why = why_illegal(problem, config, DeviceLimits{});
  require(why.empty(), "the default config " + config.name() + " is illegal: " + why);
  require(!generate_kernel(problem, config).source.empty(), "empty kernel source for " + key);
}

}  // namespace

void problem_target(std::string_view data) {
  static ScratchFile scratch("problem.json");
  const std::string text(data);
  std::string file_refusal, inline_refusal;
  // A file named by the argument; its contents go through the same JSON parser.
  const std::optional<Problem> from_file = parse(scratch.write(text).string(), &file_refusal);
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    const std::optional<Problem> from_inline = parse(text, &inline_refusal);
    require(from_inline.has_value() == from_file.has_value(),
            "inline JSON and the same JSON in a file disagree: '" + inline_refusal + "' vs '" +
                file_refusal + "'");
    if (from_inline) require(from_inline->key() == from_file->key(), "inline and file keys differ");
  }
  if (from_file) check_accepted(*from_file);
}

}  // namespace deconvtune::fuzz

#include "codegen/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "codegen/search_space.hpp"

namespace deconvtune {

std::string_view to_string(Family family) {
  switch (family) {
    case Family::kDirect:
      return "direct";
    case Family::kPgemm:
      return "pgemm";
    case Family::kWsgemm:
      return "wsgemm";
    case Family::kFault:
      return "fault";
  }
  return "?";
}

std::string_view to_string(MathMode math) {
  switch (math) {
    case MathMode::kFfma:
      return "ffma";
    case MathMode::kTf32:
      return "tf32";
    case MathMode::k3xTf32:
      return "3xtf32";
  }
  return "?";
}

std::string_view to_string(MishVariant mish) {
  return mish == MishVariant::kExact ? "exact" : "fast";
}

int Config::param(std::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  throw std::out_of_range(fmt::format("config has no parameter '{}'", name));
}

std::string Config::name() const {
  std::string out = fmt::format("{}_{}", to_string(family), to_string(math));
  for (const auto& [key, value] : params) out += fmt::format("_{}{}", key, value);
  return out + fmt::format("_mish{}", to_string(mish));
}

nlohmann::json Config::to_json() const {
  nlohmann::json params_json = nlohmann::json::object();
  for (const auto& [key, value] : params) params_json[key] = value;
  return {{"name", name()},
          {"family", to_string(family)},
          {"math", to_string(math)},
          {"params", params_json},
          {"mish", to_string(mish)}};
}

bool may_win(std::string_view config_name) {
  // The family is the first part of a name (Config::name()).
  const std::string_view family = config_name.substr(0, config_name.find('_'));
  for (const FamilySpec& spec : test_only_families()) {
    if (family == to_string(spec.family)) return false;
  }
  return true;
}

Config Config::from_name(std::string_view name) {
  std::vector<std::string> tokens;
  for (size_t start = 0;;) {
    size_t end = name.find('_', start);
    tokens.emplace_back(name.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  auto fail = [&](const std::string& why) {
    return std::invalid_argument(fmt::format("config name '{}': {}", name, why));
  };
  const FamilySpec* spec = nullptr;
  for (const FamilySpec& candidate : families()) {
    if (tokens[0] == to_string(candidate.family)) spec = &candidate;
  }
  for (const FamilySpec& candidate : test_only_families()) {
    if (tokens[0] == to_string(candidate.family)) spec = &candidate;
  }
  if (spec == nullptr) throw fail(fmt::format("unknown family '{}'", tokens[0]));
  if (tokens.size() != spec->params.size() + 3) {
    throw fail(fmt::format("a {} config has {} parts: family, math, {} parameters, mish variant",
                           tokens[0], spec->params.size() + 3, spec->params.size()));
  }
  Config config;
  config.family = spec->family;
  auto math = std::find_if(spec->maths.begin(), spec->maths.end(),
                           [&](MathMode m) { return tokens[1] == to_string(m); });
  if (math == spec->maths.end()) {
    throw fail(fmt::format("family {} has no math mode '{}'", tokens[0], tokens[1]));
  }
  config.math = *math;
  for (size_t i = 0; i < spec->params.size(); ++i) {
    const ParamSpec& param = spec->params[i];
    const std::string& token = tokens[i + 2];
    size_t digits = token.find_first_of("0123456789");
    if (token.substr(0, digits) != param.name || digits == std::string::npos ||
        !std::all_of(token.begin() + digits, token.end(), ::isdigit) || token.size() - digits > 6) {
      throw fail(fmt::format("part {} must be {}<value> ({}), got '{}'", i + 3, param.name,
                             param.meaning, token));
    }
    int value = std::stoi(token.substr(digits));
    if (std::find(param.values.begin(), param.values.end(), value) == param.values.end()) {
      throw fail(fmt::format("{} = {} is not one of the family's values", param.name, value));
    }
    config.params.emplace_back(param.name, value);
  }
  const std::string& mish = tokens.back();
  if (mish == "mishexact") {
    config.mish = MishVariant::kExact;
  } else if (mish == "mishfast") {
    config.mish = MishVariant::kFast;
  } else {
    throw fail(fmt::format("the last part must be mishexact or mishfast, got '{}'", mish));
  }
  return config;
}

}  // namespace deconvtune

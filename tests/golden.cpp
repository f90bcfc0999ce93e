#include "tests/golden.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace deconvtune::testing {

namespace {
// The build's path, unless the tests run elsewhere (the GPU machine gets a copy of the checkout).
std::string golden_dir() {
  const char* override_dir = std::getenv("DECONVTUNE_GOLDEN_DIR");
  return override_dir ? override_dir : DECONVTUNE_GOLDEN_DIR;
}
}  // namespace

std::vector<std::string> golden_names() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(golden_dir())) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Golden load_golden(const std::string& name) {
  std::ifstream file(golden_dir() + "/" + name + ".json");
  if (!file) throw std::runtime_error("cannot open golden " + name);
  nlohmann::json data = nlohmann::json::parse(file);
  Golden golden;
  golden.name = data.at("name").get<std::string>();
  golden.problem = Problem::from_json(data.at("problem"));
  golden.x = data.at("x").get<std::vector<double>>();
  golden.weight = data.at("weight").get<std::vector<double>>();
  golden.bias = data.at("bias").get<std::vector<double>>();
  golden.y = data.at("y").get<std::vector<double>>();
  return golden;
}

}  // namespace deconvtune::testing

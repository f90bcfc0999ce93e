#include "codegen/templates.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace deconvtune::templates {

std::string_view find(const std::string& name) {
  auto found = all().find(name);
  if (found == all().end()) {
    throw std::out_of_range(fmt::format("template '{}' is not embedded in this build", name));
  }
  return found->second;
}

}  // namespace deconvtune::templates

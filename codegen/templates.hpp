#pragma once
// The kernel templates under templates/, embedded into the library at build time.
#include <map>
#include <string>
#include <string_view>

namespace deconvtune::templates {

// Every embedded template, by file name (e.g. "direct.cuh").
const std::map<std::string, std::string_view>& all();

// The named template's text; throws std::out_of_range naming the file when it is not embedded.
std::string_view find(const std::string& name);

}  // namespace deconvtune::templates

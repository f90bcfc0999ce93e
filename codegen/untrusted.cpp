#include "codegen/untrusted.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

namespace deconvtune {

std::string printable(std::string_view text, size_t max_chars) {
  std::string result;
  for (char c : text) {
    if (result.size() >= max_chars) return result + "...";
    if (c >= 0x20 && c <= 0x7e) {
      result += c;
    } else {
      result += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  return result;
}

int json_nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

nlohmann::json parse_untrusted_json(std::string_view text, int max_nesting) {
  using json = nlohmann::json;
  if (json_nesting_depth(text) > max_nesting) {
    throw UntrustedJsonError(fmt::format("JSON nested deeper than {} levels", max_nesting));
  }
  // The keys seen so far in each object being parsed, innermost last.
  std::vector<std::set<std::string>> open_objects;
  auto refuse_duplicates = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.back().insert(parsed.get<std::string>()).second) {
          throw UntrustedJsonError(fmt::format("duplicate key '{}' in a JSON object",
                                               printable(parsed.get<std::string>())));
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text, refuse_duplicates);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
    throw UntrustedJsonError(fmt::format("malformed JSON: {}", printable(e.what(), 300)));
  }
}

}  // namespace deconvtune

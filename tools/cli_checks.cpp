#include "tools/cli_checks.hpp"

#include <cmath>
#include <exception>

namespace deconvtune::tools {

CLI::Validator finite_seconds(const std::string& option) {
  return CLI::Validator(
      [option](std::string& text) -> std::string {
        size_t used = 0;
        double value = -1;
        try {
          value = std::stod(text, &used);
        } catch (const std::exception&) {
        }
        if (used != text.size() || !std::isfinite(value) || value < 0 || value > 7 * 24 * 3600.0)
          return option + " must be a number of seconds from 0 to a week, got '" + text + "'";
        return {};
      },
      "SECONDS");
}

CLI::Validator tuning_db_path() {
  return CLI::Validator(
      [](std::string& path) -> std::string {
        if (path.empty())
          return "--db is empty: name the DB file, or leave --db out for the default";
        if (path == ":memory:") return "--db :memory: would keep nothing: name a file";
        if (path.rfind("file:", 0) == 0) {
          return "--db takes a file's path, not a SQLite URI ('" + path.substr(0, 80) + "')";
        }
        return {};
      },
      "PATH");
}

}  // namespace deconvtune::tools

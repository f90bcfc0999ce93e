#pragma once
// Reading text that comes from outside (problem specs, problems files, imports, worker messages,
// DB rows): checked before it is parsed, and quoted safely when a message shows it.
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace deconvtune {

// For quoting untrusted text in a message: bytes outside printable ASCII as \xNN (no terminal
// escape reaches the screen), cut after `max_chars` with "..." (a 10 MB value is not echoed whole).
std::string printable(std::string_view text, size_t max_chars = 120);

// The deepest nesting of arrays and objects in JSON text (strings skipped), without parsing it:
// untrusted text is checked first, since nlohmann's parser and every walk over a parsed document
// (dump, from_json) recurse per level, and a deep enough document overflows the stack.
int json_nesting_depth(std::string_view text);

// Untrusted JSON text that cannot be parsed as a document of its kind.
class UntrustedJsonError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Parses JSON text nested at most `max_nesting` deep in which no object repeats a key (nlohmann
// keeps the last of them silently, so two readers of one document could disagree on it). Throws
// UntrustedJsonError: "JSON nested deeper than N levels", "duplicate key 'k'", "malformed JSON:
// ...".
nlohmann::json parse_untrusted_json(std::string_view text, int max_nesting);

}  // namespace deconvtune

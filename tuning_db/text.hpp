#pragma once
// Internal to tuning_db/: checks and repairs of text that comes from outside (imports, compiler
// logs), so that everything stored is valid UTF-8 and every message quoting it is readable.
#include <string>
#include <string_view>

namespace deconvtune::db::text {

bool is_valid_utf8(std::string_view text);
// Invalid UTF-8 sequences replaced by U+FFFD; valid text unchanged.
std::string sanitize_utf8(std::string_view text);
// At most `max_bytes` (at least 64), cut at a character boundary with a note of what was cut.
std::string truncate_utf8(std::string_view text, size_t max_bytes);
bool is_printable_ascii(std::string_view text);  // bytes 0x20..0x7e only
// For quoting untrusted text in a message: non-printable bytes as \xNN, cut at 120 characters.
std::string printable(std::string_view text);
// "YYYY-MM-DDTHH:MM:SSZ" or with 1 to 9 fraction digits before the Z, each field in range.
bool is_utc_timestamp(std::string_view text);

}  // namespace deconvtune::db::text

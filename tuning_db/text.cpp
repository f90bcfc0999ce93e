#include "tuning_db/text.hpp"

#include <fmt/format.h>

#include "codegen/untrusted.hpp"

namespace deconvtune::db::text {

namespace {

// Length of the valid UTF-8 sequence at text[i], or 0 when it is not one (overlongs, surrogates
// and code points past U+10FFFF are invalid, as RFC 3629 says).
size_t utf8_sequence(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return length;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t length = utf8_sequence(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

std::string sanitize_utf8(std::string_view text) {
  std::string result;
  result.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t length = utf8_sequence(text, i);
    if (length == 0) {
      result += "\xef\xbf\xbd";
      ++i;
    } else {
      result.append(text.substr(i, length));
      i += length;
    }
  }
  return result;
}

std::string truncate_utf8(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::string note = fmt::format(" [... {} bytes cut]", text.size());
  size_t keep = max_bytes > note.size() + 4 ? max_bytes - note.size() - 4 : 0;
  // Back up to the start of a character (continuation bytes are 10xxxxxx).
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xc0) == 0x80) --keep;
  return std::string(text.substr(0, keep)) + note;
}

bool is_printable_ascii(std::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::string printable(std::string_view text) { return deconvtune::printable(text, 120); }

bool is_utc_timestamp(std::string_view text) {
  // 2026-11-24T18:37:05[.123456]Z
  if (text.size() < 20 || text.size() > 30 || text.back() != 'Z') return false;
  auto digits = [&](size_t at, size_t count, int low, int high) {
    int value = 0;
    for (size_t k = at; k < at + count; ++k) {
      if (text[k] < '0' || text[k] > '9') return false;
      value = value * 10 + (text[k] - '0');
    }
    return value >= low && value <= high;
  };
  if (!digits(0, 4, 1970, 9999) || text[4] != '-' || !digits(5, 2, 1, 12) || text[7] != '-' ||
      !digits(8, 2, 1, 31) || text[10] != 'T' || !digits(11, 2, 0, 23) || text[13] != ':' ||
      !digits(14, 2, 0, 59) || text[16] != ':' || !digits(17, 2, 0, 60)) {
    return false;
  }
  std::string_view rest = text.substr(19, text.size() - 20);
  if (rest.empty()) return true;
  if (rest[0] != '.' || rest.size() < 2 || rest.size() > 10) return false;
  for (char c : rest.substr(1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace deconvtune::db::text

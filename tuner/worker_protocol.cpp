#include "tuner/worker_protocol.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <limits>

namespace deconvtune::tuner {
namespace {

using nlohmann::json;

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const json& field(const json& message, const char* name, json::value_t type) {
  auto found = message.find(name);
  if (found == message.end()) throw ProtocolError(fmt::format("message lacks field '{}'", name));
  const bool number_ok = type == json::value_t::number_float && found->is_number();
  const bool integer_ok =
      type == json::value_t::number_unsigned && found->is_number_integer() && *found >= 0;
  if (found->type() != type && !number_ok && !integer_ok) {
    throw ProtocolError(
        fmt::format("field '{}' has the wrong type ({})", name, found->type_name()));
  }
  return *found;
}

// JSON has no NaN or infinity: a non-finite value travels as null (a wrong kernel's error may be
// NaN) and reads back as NaN.
json finite_or_null(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

double number(const json& message, const char* name) {
  if (auto found = message.find(name); found != message.end() && found->is_null()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return field(message, name, json::value_t::number_float).get<double>();
}
int integer(const json& message, const char* name) {
  const json& value = field(message, name, json::value_t::number_float);
  if (!value.is_number_integer())
    throw ProtocolError(fmt::format("field '{}' is not an integer", name));
  return value.get<int>();
}
std::string text(const json& message, const char* name) {
  return field(message, name, json::value_t::string).get<std::string>();
}
bool flag(const json& message, const char* name) {
  return field(message, name, json::value_t::boolean).get<bool>();
}

void expect_type(const json& message, std::string_view type) {
  if (text(message, "type") != type) {
    throw ProtocolError(
        fmt::format("expected a '{}' message, got '{}'", type, text(message, "type")));
  }
}

}  // namespace

Disposition parse_status(std::string_view text) {
  try {
    return deconvtune::parse_disposition(text);
  } catch (const std::invalid_argument& e) {
    throw ProtocolError(fmt::format("field 'status': {}", e.what()));
  }
}

json to_json(const TrialRequest& request) {
  return {{"type", "trial"},
          {"problem", request.problem.to_json()},
          {"config", request.config_name},
          {"cubin", base64_encode(request.cubin)},
          {"options",
           {{"warmup_runs", request.options.warmup_runs},
            {"timed_runs", request.options.timed_runs},
            {"flush_l2", request.options.flush_l2},
            {"time_it", request.options.time_it}}},
          {"input_seed", request.input_seed}};
}

TrialRequest trial_request_from_json(const json& message) {
  expect_type(message, "trial");
  TrialRequest request;
  try {
    request.problem = Problem::from_json(field(message, "problem", json::value_t::object));
  } catch (const std::invalid_argument& e) {
    throw ProtocolError(fmt::format("field 'problem': {}", e.what()));
  }
  request.config_name = text(message, "config");
  request.cubin = base64_decode(text(message, "cubin"));
  const json& options = field(message, "options", json::value_t::object);
  request.options.warmup_runs = integer(options, "warmup_runs");
  request.options.timed_runs = integer(options, "timed_runs");
  request.options.flush_l2 = flag(options, "flush_l2");
  request.options.time_it = flag(options, "time_it");
  if (request.options.warmup_runs < 0 || request.options.timed_runs < 1) {
    throw ProtocolError("options: warmup_runs must be >= 0 and timed_runs >= 1");
  }
  request.input_seed = field(message, "input_seed", json::value_t::number_unsigned).get<uint64_t>();
  return request;
}

TrialReply failed_reply(std::string config_name, Disposition status, std::string reason) {
  TrialReply reply;
  reply.config_name = std::move(config_name);
  reply.status = status;
  reply.reason = std::move(reason);
  return reply;
}

json to_json(const TrialReply& reply) {
  return {{"type", "result"},
          {"config", reply.config_name},
          {"status", to_string(reply.status)},
          {"reason", reply.reason},
          {"median_ms", finite_or_null(reply.median_ms)},
          {"min_ms", finite_or_null(reply.min_ms)},
          {"max_ms", finite_or_null(reply.max_ms)},
          {"runs", reply.runs},
          {"max_error", finite_or_null(reply.max_error)},
          {"error_bound", finite_or_null(reply.error_bound)},
          {"registers", reply.registers},
          {"context_lost", reply.context_lost}};
}

TrialReply trial_reply_from_json(const json& message) {
  expect_type(message, "result");
  TrialReply reply;
  reply.config_name = text(message, "config");
  reply.status = parse_status(text(message, "status"));
  reply.reason = text(message, "reason");
  reply.median_ms = number(message, "median_ms");
  reply.min_ms = number(message, "min_ms");
  reply.max_ms = number(message, "max_ms");
  reply.runs = integer(message, "runs");
  reply.max_error = number(message, "max_error");
  reply.error_bound = number(message, "error_bound");
  reply.registers = integer(message, "registers");
  reply.context_lost = flag(message, "context_lost");
  return reply;
}

json parse_message(std::string_view line) {
  // A trial request nests 3 deep (its problem's pairs); the other end may be a broken process.
  constexpr int kMaxMessageNesting = 8;
  json message;
  try {
    message = parse_untrusted_json(line, kMaxMessageNesting);
  } catch (const UntrustedJsonError& e) {
    throw ProtocolError(
        fmt::format("not a JSON object ({}): '{}'", e.what(), printable(line, 200)));
  }
  if (!message.is_object()) {
    throw ProtocolError(fmt::format("not a JSON object: '{}'", printable(line, 200)));
  }
  text(message, "type");
  return message;
}

std::string base64_encode(const std::vector<char>& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t chunk = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) chunk |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) chunk |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(chunk >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[chunk & 63] : '=';
  }
  return out;
}

std::vector<char> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) throw ProtocolError("base64: length is not a multiple of 4");
  std::array<int, 256> value;
  value.fill(-1);
  for (size_t i = 0; i < kAlphabet.size(); ++i) value[static_cast<uint8_t>(kAlphabet[i])] = int(i);
  std::vector<char> out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int padding = 0;
    uint32_t chunk = 0;
    for (size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      int v = 0;
      if (c == '=' && last && j >= 2) {
        ++padding;
      } else if (padding > 0 || (v = value[static_cast<uint8_t>(c)]) < 0) {
        throw ProtocolError(fmt::format("base64: bad character at offset {}", i + j));
      }
      chunk = chunk << 6 | static_cast<uint32_t>(v);
    }
    out.push_back(static_cast<char>(chunk >> 16));
    if (padding < 2) out.push_back(static_cast<char>(chunk >> 8 & 0xFF));
    if (padding < 1) out.push_back(static_cast<char>(chunk & 0xFF));
  }
  return out;
}

}  // namespace deconvtune::tuner

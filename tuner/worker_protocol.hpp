#pragma once
// The tuner <-> worker protocol: one JSON object per line over the worker's stdin and stdout.
//
// Tuner -> worker, one request per candidate:
//   {"type":"trial", "problem":{...Problem::to_json()}, "config":"<name>", "cubin":"<base64>",
//    "options":{"warmup_runs":3,"timed_runs":20,"flush_l2":true,"time_it":true}, "input_seed":1}
// Worker -> tuner, in this order:
//   {"type":"ready"}                      the context and the problem's verifier exist
//   {"type":"verified","ms":<wall ms>}    only when the output verified; timing starts
//   {"type":"result", ...TrialReply}      always last; after a result with "context_lost":true the
//                                         worker exits (its CUDA context is unusable)
// The tuner sets a deadline on each step and kills the worker when one passes (kTimedOut). Every
// field is checked when read; a malformed message raises ProtocolError naming the field.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/problem.hpp"
#include "trial/benchmark.hpp"
#include "trial/measurement.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrialRequest {
  Problem problem;
  std::string config_name;
  std::vector<char> cubin;  // empty in simulate mode
  TrialOptions options;
  uint64_t input_seed = 1;
};

// The trial's measurement (registers: from the loaded function's attributes) and what the
// protocol adds to it.
struct TrialReply : TrialMeasurement {
  int runs = 0;
  double error_bound = 0;
  bool context_lost = false;  // the worker exits after sending this reply
};

// The reply for a trial that ended without a measurement: its config, how it ended and why. Both
// halves of the protocol build their failures with it.
TrialReply failed_reply(std::string config_name, Disposition status, std::string reason);

nlohmann::json to_json(const TrialRequest& request);
TrialRequest trial_request_from_json(const nlohmann::json& message);
nlohmann::json to_json(const TrialReply& reply);
TrialReply trial_reply_from_json(const nlohmann::json& message);

// Parses one line; throws ProtocolError for text that is not a JSON object with a string "type".
nlohmann::json parse_message(std::string_view line);

// deconvtune::parse_disposition (tuning_db.hpp), raising ProtocolError for an unknown word.
Disposition parse_status(std::string_view text);

std::string base64_encode(const std::vector<char>& bytes);
std::vector<char> base64_decode(std::string_view text);  // throws ProtocolError

}  // namespace deconvtune::tuner

#pragma once
// A Config: one point of a kernel family's variant space. Its name spells every parameter
// (`direct_ffma_t256_c4_mishexact`, `pgemm_tf32_bn64_rp2_cp64_wm4_wn4_st1_xs0_wg0_mishfast`), and
// Config::from_name(name) reads it back, so a name is a complete, portable description.
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace deconvtune {

// kFault is test-only (fault injection for the tuner's tests): never in an enumerated space.
enum class Family { kDirect, kPgemm, kWsgemm, kFault };
// How the convolution's products are computed: plain fp32 FFMA, TF32 tensor cores, or 3xTF32
// (each operand split into big + small TF32 parts: fp32 accuracy on tensor cores).
enum class MathMode { kFfma, kTf32, k3xTf32 };
enum class MishVariant { kExact, kFast };

std::string_view to_string(Family family);
std::string_view to_string(MathMode math);
std::string_view to_string(MishVariant mish);

struct Config {
  Family family = Family::kDirect;
  MathMode math = MathMode::kFfma;
  // The family's tunable integers, in the order its spec declares them (see search_space.hpp).
  std::vector<std::pair<std::string, int>> params;
  MishVariant mish = MishVariant::kExact;

  // Throws std::out_of_range naming the parameter when the config lacks it.
  int param(std::string_view name) const;
  std::string name() const;
  nlohmann::json to_json() const;
  bool operator==(const Config& other) const { return name() == other.name(); }

  // Parses a name; throws std::invalid_argument naming the bad part (unknown family, math mode,
  // parameter or value outside the family's declared values).
  static Config from_name(std::string_view name);
};

// Whether a config of this name may be a tuned winner (and so be served): never one of a test-only
// family (fault injection). The one rule the DB's writers and import, the heuristic and the engine
// apply. A name of no known family is not refused here: it never parses where it would be launched.
bool may_win(std::string_view config_name);

// Grid, block and dynamic shared memory of one launch.
struct LaunchGeometry {
  unsigned grid[3] = {1, 1, 1};
  unsigned block[3] = {1, 1, 1};
  unsigned shared_bytes = 0;
};

}  // namespace deconvtune

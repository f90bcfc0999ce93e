#include "codegen/search_space.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <map>
#include <stdexcept>
#include <tuple>

namespace deconvtune {
namespace {

unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

FamilySpec direct_family() {
  FamilySpec spec;
  spec.family = Family::kDirect;
  spec.template_file = "direct.cuh";
  spec.float32_nchw_only = false;
  spec.kernel_name = "deconv_direct";
  spec.maths = {MathMode::kFfma};
  spec.params = {
      {"t", "DT_THREADS", {128, 256}, "threads per block"},
      {"c", "DT_CO_PER_THREAD", {1, 2, 4, 8}, "output channels per thread"},
  };
  spec.why_illegal = [](const Problem& problem, const Config& config,
                        const DeviceLimits&) -> std::string {
    const int64_t co_per_group = problem.out_channels / problem.groups;
    const int c = config.param("c");
    // Wider than the group only repeats work; keep the one width that covers it.
    if (c > 1 && c / 2 >= co_per_group) {
      return fmt::format("c{} exceeds the {} output channels per group", c, co_per_group);
    }
    return {};
  };
  spec.launch = [](const Problem& problem, const Config& config, const DeviceLimits&) {
    const int threads = config.param("t");
    const int c = config.param("c");
    const int64_t co_tiles = (problem.out_channels / problem.groups + c - 1) / c;
    const int64_t items =
        problem.batch * problem.groups * co_tiles * problem.out_height() * problem.out_width();
    LaunchGeometry geometry;
    // The kernel strides over its work, so the grid may stop short of covering it in one pass.
    geometry.grid[0] = std::min<unsigned>(ceil_div(items, threads), 1u << 30);
    geometry.block[0] = static_cast<unsigned>(threads);
    return geometry;
  };
  return spec;
}

// The pgemm template's tile geometry, computed as templates/pgemm.cuh computes it (the loader
// checks the shared-memory figure against the kernel's own dt_shared_bytes).
struct TileGeometry {
  int64_t shared_bytes = 0;
  int64_t blocks = 0;     // output blocks per CO block
  int64_t co_blocks = 0;  // grid.y: groups x CO blocks per group
};

// The smallest and largest input shift over the taps, along one axis. Every tap k reaches exactly
// one phase, with shift -floor((k * dilation - pad) / stride), which falls as k grows: the extremes
// are the first and the last tap, so this is O(1) however large stride and kernel are.
std::pair<int64_t, int64_t> shift_range(int64_t stride, int64_t pad, int64_t kernel,
                                        int64_t dilation) {
  return {-floor_div((kernel - 1) * dilation - pad, stride), -floor_div(-pad, stride)};
}

TileGeometry tile_geometry(const Problem& p, const Config& c) {
  const int64_t bn = c.param("bn"), rp = c.param("rp"), cp = c.param("cp");
  const auto [h_lo, h_hi] = shift_range(p.stride.h, p.padding.h, p.kernel.h, p.dilation.h);
  const auto [w_lo, w_hi] = shift_range(p.stride.w, p.padding.w, p.kernel.w, p.dilation.w);
  const int64_t kb = (p.in_channels / p.groups + 15) / 16;
  // xs1 keeps a second (small-part) plane of every input tile.
  const int64_t planes = c.param("xs") == 1 ? 2 : 1;
  const int64_t x_tile = planes * kb * (rp + h_hi - h_lo) * (cp + w_hi - w_lo) * 16;
  const int64_t w_slice = p.kernel.h * p.kernel.w * kb * bn * 16;
  const int64_t th = p.stride.h * rp, tw = p.stride.w * cp;
  TileGeometry g;
  g.shared_bytes = 4 * (w_slice + c.param("st") * x_tile);
  g.blocks = p.batch * ((p.out_height() + th - 1) / th) * ((p.out_width() + tw - 1) / tw);
  g.co_blocks = p.groups * ((p.out_channels / p.groups + bn - 1) / bn);
  return g;
}

// Persistent CTAs: as many per SM as shared memory allows (at most 2), spread over the CO blocks.
LaunchGeometry persistent_launch(const TileGeometry& g, int threads, const DeviceLimits& device) {
  const int64_t per_sm = g.shared_bytes * 2 + 2048 <= device.max_shared_per_sm ? 2 : 1;
  const int64_t per_co_block = std::max<int64_t>(1, device.sm_count * per_sm / g.co_blocks);
  LaunchGeometry geometry;
  geometry.grid[0] = static_cast<unsigned>(std::min(g.blocks, per_co_block));
  geometry.grid[1] = static_cast<unsigned>(g.co_blocks);
  geometry.block[0] = static_cast<unsigned>(threads);
  geometry.shared_bytes = static_cast<unsigned>(g.shared_bytes);
  return geometry;
}

// The W slice of a CO block, in bytes (all taps, K padded to 16-channel blocks).
int64_t w_slice_bytes(const Problem& p, int64_t bn) {
  return 4 * p.kernel.h * p.kernel.w * ((p.in_channels / p.groups + 15) / 16) * bn * 16;
}

FamilySpec pgemm_family() {
  FamilySpec spec;
  spec.family = Family::kPgemm;
  spec.template_file = "pgemm.cuh";
  spec.kernel_name = "deconv_pgemm";
  spec.maths = {MathMode::kTf32, MathMode::k3xTf32};
  spec.params = {
      {"bn", "DT_BN", {16, 32, 64}, "output channels per CTA"},
      {"rp", "DT_RP", {1, 2, 4}, "output rows per phase in a block"},
      {"cp", "DT_CP", {32, 64}, "output columns per phase in a block"},
      {"wm", "DT_WM", {1, 2, 4}, "warps along the channels"},
      {"wn", "DT_WN", {2, 4}, "warps (warpgroups under wg1) along the pixels"},
      {"st", "DT_STAGES", {1, 2}, "input tiles in shared memory"},
      {"xs", "DT_XS", {0, 1}, "1: x split into big + small TF32 parts in shared memory"},
      {"wg", "DT_WG", {0, 1}, "1: warpgroup MMA (wgmma, sm_90a); 0: mma.sync"},
  };
  spec.why_illegal = [](const Problem& p, const Config& c,
                        const DeviceLimits& device) -> std::string {
    if (device.sm_major < 8) return "mma.sync TF32 needs sm_80 or newer";
    // 3xTF32 exists for fp32 accuracy; under tf32 it would only be slower.
    if (c.math == MathMode::k3xTf32 && p.precision == Precision::kTf32) return "3xtf32 under tf32";
    const int64_t co_per_group = p.out_channels / p.groups;
    const int bn = c.param("bn"), wm = c.param("wm"), wn = c.param("wn");
    if (c.param("wg") == 1) {
      // wgmma is sm_90a's alone; a warpgroup's 4 warps span the 64 rows of one wgmma.
      if (device.sm_major != 9 || device.sm_minor != 0) return "wgmma needs sm_90a";
      if (bn != 64 || wm != 4) return "wg1 needs bn64 and wm4 (one warpgroup spans 64 channels)";
      if (c.math == MathMode::k3xTf32 && c.param("xs") != 1)
        return "3xtf32 under wg1 needs xs1 (x's small part in shared memory)";
      // ptxas on the seed shape: 512 threads (wn4) spill under wgmma's live A fragments, and
      // past these accumulator counts 256 threads spill too.
      if (wn != 2) return "wg1 only with wn2 (two warpgroups)";
      const int64_t ni = c.param("rp") * c.param("cp") / 8 / wn;
      // 3xtf32 sums its corrections apart from the main products (so an Inf stays Inf).
      const bool lean = c.math == MathMode::kTf32 && c.param("xs") == 0;
      const int64_t limit = lean ? 96 : c.math == MathMode::k3xTf32 ? 24 : 48;
      if ((p.stride.w + 1) * ni * 4 > limit) return "wgmma accumulators would spill at 256 threads";
    } else if (wn != 4) {
      return "wn4 only under mma.sync (measured best)";
    }
    if (bn % (16 * wm) != 0) return fmt::format("bn{} does not split over {} warps", bn, wm);
    // Narrow CO blocks reload the input per block of 16 channels: only where W allows no wider.
    if (bn == 16 && w_slice_bytes(p, 32) <= device.max_shared_per_block / 2)
      return "bn16 where the bn32 W slice fits";
    if (wm == 1 && bn != 16) return "wm1 only for bn16";
    const int64_t pixels = c.param("rp") * c.param("cp");
    if (pixels % (8 * wn) != 0) return "pixels do not split over warps";
    if (bn > 32 && bn / 2 >= co_per_group)
      return fmt::format("bn{} exceeds the group's channels", bn);
    // Accumulators (every column phase) and one chunk's partial sums must stay in registers.
    const int64_t mi = bn / 16 / wm, ni = pixels / 8 / wn;
    const int64_t accumulators = (p.stride.w + 1) * mi * ni * 4;
    if (accumulators > 128)
      return fmt::format("{} accumulator registers would spill", accumulators);
    // 512 threads get at most 128 registers each: measured to spill past 64 accumulators.
    if (wm * wn == 16 && accumulators > 64)
      return fmt::format("{} accumulator registers would spill at 512 threads", accumulators);
    const TileGeometry g = tile_geometry(p, c);
    if (g.shared_bytes > device.max_shared_per_block) {
      return fmt::format("needs {} B of shared memory, the device has {}", g.shared_bytes,
                         device.max_shared_per_block);
    }
    return {};
  };
  spec.launch = [](const Problem& p, const Config& c, const DeviceLimits& device) {
    return persistent_launch(tile_geometry(p, c), 32 * c.param("wm") * c.param("wn"), device);
  };
  return spec;
}

// The wsgemm template's shared-memory layout (templates/wsgemm.cuh, Storage<R0>): 2 x stages
// mbarriers in the first 128 bytes, then the class's W slice, then the ring of input windows, the
// whole rounded up to 128 bytes; the largest class sets the launch's figure.
struct WsGeometry {
  int64_t shared_bytes = 0;
  int64_t units = 0;      // (image, phase row, block of cp phase columns)
  int64_t co_blocks = 0;  // grid.y: groups x blocks of 64 output channels per group
  int64_t classes = 1;    // grid.z: row phases with a CTA class of their own (rs1), else 1
  std::string why_not;    // nonempty: the config cannot serve the problem
};

constexpr int64_t kWsMaxKernel = 16;  // the template unrolls over every kernel row and column

// Elements of x per 16 bytes: a staged run (xl2, a row of a tensor map box) is a multiple of one.
int64_t staged_row_align(const Problem& p) { return 16 / p.element_bytes(); }

WsGeometry ws_geometry(const Problem& p, const Config& c) {
  WsGeometry g;
  const int64_t cp = c.param("cp"), stages = c.param("st");
  const int64_t rp = c.param("rp") * (c.param("coop") == 1 ? 2 : 1);  // phase rows per unit
  const bool row_classes = c.param("rs") == 1;
  // Channels per slot: all of them with W resident (kc0), else a streamed chunk of W and x.
  const int64_t kc = c.param("kc") > 0 ? c.param("kc") : (p.in_channels / p.groups + 7) / 8 * 8;
  const int64_t w_images = c.param("kc") > 0 ? stages : 1;
  const auto [w_lo, w_hi] = shift_range(p.stride.w, p.padding.w, p.kernel.w, p.dilation.w);
  const int64_t window_columns = cp + w_hi - w_lo;
  const int64_t qh = (p.out_height() + p.stride.h - 1) / p.stride.h;
  const int64_t qw = (p.out_width() + p.stride.w - 1) / p.stride.w;
  g.units = p.batch * ((qh + rp - 1) / rp) * ((qw + cp - 1) / cp);
  g.co_blocks = p.groups * ((p.out_channels / p.groups + 63) / 64);
  // Per class: kernel rows held and input rows spanned.
  std::vector<std::pair<int64_t, int64_t>> classes;  // (kernel rows, window rows)
  if (!row_classes) {
    const auto [h_lo, h_hi] = shift_range(p.stride.h, p.padding.h, p.kernel.h, p.dilation.h);
    classes.emplace_back(p.kernel.h, h_hi - h_lo + rp);
  } else {
    for (int64_t r = 0; r < p.stride.h; ++r) {
      int64_t rows = 0, lo = INT64_MAX, hi = INT64_MIN;
      for (int64_t kh = 0; kh < p.kernel.h; ++kh) {
        const int64_t offset = r + p.padding.h - kh * p.dilation.h;
        if (floor_mod(offset, p.stride.h) != 0) continue;
        ++rows;
        lo = std::min(lo, offset / p.stride.h);
        hi = std::max(hi, offset / p.stride.h);
      }
      if (rows == 0) {
        g.why_not = fmt::format("rs1: row phase {} has no kernel row", r);
        return g;
      }
      classes.emplace_back(rows, hi - lo + rp);
    }
    g.classes = p.stride.h;
  }
  auto round_up = [](int64_t bytes, int64_t unit) { return (bytes + unit - 1) / unit * unit; };
  int64_t box_rows = 0;  // staged windows: one tensor map box for every class
  for (const auto& [kernel_rows, window_rows] : classes) box_rows = std::max(box_rows, window_rows);
  // Staged NHWC windows: each 4-channel plane is one box of box_rows rows, 128-byte aligned.
  const bool plane_boxes = c.param("xl") == 2 && p.layout == Layout::kNhwc;
  for (const auto& [kernel_rows, window_rows] : classes) {
    const int64_t w_bytes = w_images * kernel_rows * p.kernel.w * kc * 64 * 4;
    // 3xtf32 keeps a small-part plane beside each window's big one.
    const int64_t parts = c.math == MathMode::k3xTf32 ? 2 : 1;
    const int64_t plane_pixels =
        plane_boxes ? round_up(box_rows * window_columns, 8) : window_rows * window_columns;
    const int64_t slot_bytes = parts * kc / 4 * plane_pixels * 16;
    int64_t bytes = round_up(128 + w_bytes + stages * slot_bytes, 128);
    if (c.param("xl") == 2 && !plane_boxes) {  // the staging ring: 32 channels in pieces
      const int64_t piece = kc % 16 == 0 ? 16 : 8;
      // The box starts on a 16-byte boundary, the window's first column (w_lo) into it.
      const int64_t row_align = staged_row_align(p);
      const int64_t run_elements = round_up(floor_mod(w_lo, row_align) + window_columns, row_align);
      bytes += 32 / piece * round_up(piece * box_rows * run_elements * p.element_bytes(), 128);
    }
    g.shared_bytes = std::max(g.shared_bytes, bytes);
  }
  return g;
}

// Why `c` cannot serve `p` on `device` under the Hopper family's rules; empty when it can.
std::string wsgemm_why_illegal(const Problem& p, const Config& c, const DeviceLimits& device) {
  if (device.sm_major != 9 || device.sm_minor != 0) return "wsgemm needs sm_90a (wgmma)";
  const bool nhwc = p.layout == Layout::kNhwc;
  if (p.dtype != DType::kFloat32) {
    // cp.async copies bytes and cannot widen them, nor can staged NHWC planes (the TMA engine
    // lands them in the slot as they are); 3xtf32 would add nothing to exact operands.
    if (nhwc && c.param("xl") != 1) return "16-bit NHWC x comes through registers (xl1)";
    if (c.param("xl") == 0) return "16-bit x comes through registers or staged (xl1, xl2)";
    if (c.math != MathMode::kTf32) return "16-bit tensors take tf32 math (exact on them)";
  }
  if (c.math == MathMode::k3xTf32 && p.precision == Precision::kTf32) return "3xtf32 under tf32";
  if (p.kernel.h > kWsMaxKernel || p.kernel.w > kWsMaxKernel)
    return fmt::format("wsgemm unrolls kernels up to {0}x{0}", kWsMaxKernel);
  const int64_t cp = c.param("cp");
  const bool row_classes = c.param("rs") == 1;
  if (row_classes && (p.stride.h == 1 || p.stride.h > 8)) return "rs1 needs a row stride of 2 to 8";
  // Measured wrong on the H200 for every k3 problem of the benchmark set (max |err| 0.2-0.4)
  // while rs0 and every tf32 config verify: excluded until the cause is found.
  if (row_classes && c.math == MathMode::k3xTf32) return "3xtf32 with rs1 is not verified";
  const int64_t qw = (p.out_width() + p.stride.w - 1) / p.stride.w;
  if (cp > 8 && cp / 2 >= qw) return fmt::format("cp{} is wider than the {} phase columns", cp, qw);
  // Narrow units re-read W and x per output and never won the H200 sweep (nor did cp128 or
  // six slots, which the space no longer lists): cp8 only where the phase is too narrow for 16.
  if (cp == 8 && qw > 8) return "cp8 only where cp16 is wider than the phase columns";
  // Every phase's 64 x cp accumulator tile stays in the consumer's registers (the kernel's
  // 168-register cap: 128 accumulators spill a little, more would spill a lot); 3xtf32 adds a
  // tap's partial sums and a phase's corrections.
  const int64_t phases = (row_classes ? 1 : p.stride.h) * p.stride.w;
  const int64_t accumulators =
      (c.param("rp") * phases + (c.math == MathMode::k3xTf32 ? 2 : 0)) * cp / 2;
  if (accumulators > 128)
    return fmt::format("{} accumulator registers per thread would spill", accumulators);
  const WsGeometry g = ws_geometry(p, c);
  if (!g.why_not.empty()) return g.why_not;
  const int64_t kc = c.param("kc");
  if (c.param("coop") == 1 && kc == 0) return "coop1 only with W streamed";
  if (c.param("xl") > 0 && c.math != MathMode::kTf32)
    return "x windows through registers or staged are measured under tf32 only";
  if (c.param("xl") == 2 && nhwc) {
    // Each plane is a box of 4 channels: 16 bytes, at a 16-byte boundary of every pixel.
    if ((p.in_channels / p.groups) % 4 != 0) {
      return fmt::format("xl2 in NHWC needs the channels per group to be a multiple of 4, not {}",
                         p.in_channels / p.groups);
    }
  } else if (c.param("xl") == 2) {
    // The tensor map of x has rows of 16-byte multiples.
    if (p.width % staged_row_align(p) != 0)
      return fmt::format("xl2 needs the width to be a multiple of {} (16-byte rows), not {}",
                         staged_row_align(p), p.width);
  }
  if (c.param("mc") > 1 && (kc == 0 || c.param("coop") == 0))
    return "clusters share streamed W chunks of cooperative units only (kc > 0, coop1)";
  if (kc > 0) {
    if (c.math != MathMode::kTf32) return "W streams under tf32 only";
    if (kc >= p.in_channels / p.groups) return fmt::format("kc{} holds every channel", kc);
    // Streaming re-reads W for every unit: only where the slice cannot stay resident even
    // beside the smallest ring (two slots of cp16 rp1 windows).
    const std::map<std::string, int> smallest_resident = {
        {"cp", 16}, {"rp", 1}, {"st", 2}, {"kc", 0}, {"coop", 0}, {"mc", 1}, {"xl", 0}};
    Config resident = c;
    for (auto& [name, value] : resident.params) {
      if (auto it = smallest_resident.find(name); it != smallest_resident.end()) value = it->second;
    }
    if (ws_geometry(p, resident).shared_bytes <= device.max_shared_per_block)
      return "W fits resident (kc0)";
  }
  if (g.shared_bytes > device.max_shared_per_block) {
    return fmt::format("needs {} B of shared memory ({}), the device has {}", g.shared_bytes,
                       kc > 0 ? "W streamed" : "W resident", device.max_shared_per_block);
  }
  return {};
}

FamilySpec wsgemm_family() {
  FamilySpec spec;
  spec.family = Family::kWsgemm;
  spec.template_file = "wsgemm.cuh";
  spec.kernel_name = "deconv_wsgemm";
  spec.maths = {MathMode::kTf32, MathMode::k3xTf32};
  spec.params = {
      {"cp", "DT_CP", {8, 16, 32, 64}, "phase columns per unit (the wgmma N)"},
      {"rp", "DT_RP", {1, 2}, "consecutive phase rows per unit (sharing their input rows)"},
      {"st", "DT_STAGES", {2, 3, 4}, "slots of the input ring"},
      {"rs", "DT_RS", {0, 1}, "1: one row phase per CTA, holding only its taps"},
      {"kc", "DT_KC", {0, 16, 32}, "input channels per slot with W streamed; 0: W resident"},
      {"coop", "DT_COOP", {0, 1}, "1: both consumers share each unit's slots (rp rows each)"},
      {"mc", "DT_MC", {1, 2}, "CTAs per cluster sharing each streamed W chunk (multicast)"},
      {"xl",
       "DT_XL",
       {0, 1, 2},
       "x windows: 0 cp.async, rounded in place; 1 through registers; 2 rows by bulk copy, staged"},
  };
  spec.float32_nchw_only = false;  // 16-bit NCHW too (wsgemm_why_illegal)
  spec.why_illegal = wsgemm_why_illegal;
  spec.launch = [](const Problem& p, const Config& c, const DeviceLimits& device) {
    const WsGeometry g = ws_geometry(p, c);
    LaunchGeometry geometry;
    // Persistent: one CTA per SM (the W slice fills shared memory), spread over the CO blocks
    // and row classes.
    // Clusters (mc2) take whole pairs of CTAs.
    const int64_t cluster = c.param("mc");
    const int64_t ctas = std::min(g.units, device.sm_count / (g.co_blocks * g.classes));
    geometry.grid[0] = static_cast<unsigned>(std::max(cluster, ctas / cluster * cluster));
    geometry.grid[1] = static_cast<unsigned>(g.co_blocks);
    geometry.grid[2] = static_cast<unsigned>(g.classes);
    geometry.block[0] = 384;
    geometry.shared_bytes = static_cast<unsigned>(g.shared_bytes);
    return geometry;
  };
  return spec;
}

// TEST ONLY: kernels that fail on purpose (templates/fault_injection.cuh), one per fault kind.
FamilySpec fault_family() {
  FamilySpec spec;
  spec.family = Family::kFault;
  spec.template_file = "fault_injection.cuh";
  spec.kernel_name = "deconv_fault";
  spec.maths = {MathMode::kFfma};
  spec.params = {{"kind",
                  "DT_FAULT_KIND",
                  {0, 1, 2, 3, 4, 5},
                  "0 none, 1 compile error, 2 out-of-bounds write, 3 endless loop, 4 wrong answer, "
                  "5 write one past y"}};
  spec.why_illegal = [](const Problem&, const Config&, const DeviceLimits&) -> std::string {
    return {};
  };
  spec.launch = [](const Problem& problem, const Config&, const DeviceLimits&) {
    LaunchGeometry geometry;
    geometry.grid[0] = std::min<unsigned>(ceil_div(problem.y_elements(), 256), 1u << 20);
    geometry.block[0] = 256;
    return geometry;
  };
  return spec;
}

}  // namespace

const std::vector<FamilySpec>& test_only_families() {
  static const std::vector<FamilySpec> all = {fault_family()};
  return all;
}

const std::vector<FamilySpec>& families() {
  static const std::vector<FamilySpec> all = {wsgemm_family(), pgemm_family(), direct_family()};
  return all;
}

const FamilySpec& family_spec(Family family) {
  for (const FamilySpec& spec : families()) {
    if (spec.family == family) return spec;
  }
  for (const FamilySpec& spec : test_only_families()) {
    if (spec.family == family) return spec;
  }
  throw std::out_of_range(fmt::format("no family '{}'", to_string(family)));
}

bool math_meets(MathMode math, Precision precision, DType dtype) {
  // A 16-bit x and W are exact in TF32, so one TF32 product is their fp32 product.
  return precision == Precision::kTf32 || math != MathMode::kTf32 || dtype != DType::kFloat32;
}

std::string why_illegal(const Problem& problem, const Config& config, const DeviceLimits& device) {
  if (!math_meets(config.math, problem.precision, problem.dtype)) {
    return fmt::format("math {} cannot meet precision {}", to_string(config.math),
                       to_string(problem.precision));
  }
  if (config.mish == MishVariant::kFast) {
    if (!problem.epilogue.contains(EpilogueKind::kMish)) return "mishfast without mish";
    // The fast form's few-ulp error is inside the tf32 bound, not the fp32 one.
    if (problem.precision == Precision::kFp32) return "mishfast is outside the fp32 error bound";
  }
  const FamilySpec& spec = family_spec(config.family);
  if (spec.float32_nchw_only &&
      (problem.dtype != DType::kFloat32 || problem.layout != Layout::kNchw)) {
    return fmt::format("{} takes float32 NCHW only, not {} {}", to_string(config.family),
                       to_string(problem.dtype), to_string(problem.layout));
  }
  return spec.why_illegal(problem, config, device);
}

std::vector<Config> enumerate_space(const Problem& problem, const DeviceLimits& device) {
  std::vector<Config> space;
  for (const FamilySpec& spec : families()) {
    // The cartesian product of the declared values, first parameter slowest.
    std::vector<size_t> position(spec.params.size(), 0);
    for (MathMode math : spec.maths) {
      for (MishVariant mish : {MishVariant::kExact, MishVariant::kFast}) {
        std::fill(position.begin(), position.end(), 0);
        while (true) {
          Config config{spec.family, math, {}, mish};
          for (size_t i = 0; i < spec.params.size(); ++i) {
            config.params.emplace_back(spec.params[i].name, spec.params[i].values[position[i]]);
          }
          if (why_illegal(problem, config, device).empty()) space.push_back(std::move(config));
          size_t i = spec.params.size();
          while (i > 0 && ++position[i - 1] == spec.params[i - 1].values.size()) {
            position[--i] = 0;
          }
          if (i == 0) break;
        }
      }
    }
  }
  return space;
}

PointerAlignment pointer_alignment(const Problem& problem, const Config& config) {
  const int64_t element = problem.element_bytes();
  PointerAlignment alignment;
  alignment.x = config.family == Family::kWsgemm && config.param("xl") == 2 ? 16 : element;
  alignment.y = config.family == Family::kDirect ? element : 16;
  return alignment;
}

// Below this many output pixels per SM a problem has short strips (default_config).
constexpr int64_t kShortStripPixelsPerSm = 384;

Config default_config(const Problem& problem, const DeviceLimits& device) {
  std::vector<Config> space = enumerate_space(problem, device);
  // The Hopper family where it serves the problem, by the H200 runs of the benchmark set
  // (bench/results/2026-12-01-h200-wsgemm, -stream): every row phase per CTA before row classes,
  // units of 64 phase columns before 32 (wider units re-read less of x and W per output), two phase
  // rows per unit under stride 1 (where three input rows serve one output row), then 3 slots, then
  // 2, then deeper rings; the fast mish where the chain has one. W resident before W streamed;
  // streamed (wide_in, wide_512, k4s2_wide, k5s2_wide): consumers sharing each unit, 16-channel
  // chunks, two phase rows per consumer (one for kernels taller than 3); one row phase per CTA for
  // kernels taller than 3 (k4s2_wide 0.886 ms against 1.62 with every phase, k5s2_wide 0.252: half
  // the taps per slot leaves room for three slots) with units of 64 phase columns where they fit,
  // every row phase for k3 with 32; there staged windows where they fit (xl2), else x through
  // registers (xl1), elsewhere cp.async (see rank).
  // Short strips: so few output pixels per SM that each CTA gets one or two units. There what a
  // CTA does before its first unit (loading a resident W slice) and how many units share each
  // streamed chunk decide, not the per-unit rates the long-strip order below was measured on. The
  // decoder blocks of bench/problems_decoders.jsonl (62 and 248 pixels per SM) won streamed,
  // cooperative, every row phase per CTA, three slots, x through registers for units of 8 or 16
  // phase columns (H200, bench/results/2026-12-03-h200-decoders: dcgan0 0.036 ms against 0.075
  // for the long-strip pick, mixed1 0.024 against 0.063); k5s2_wide (496) keeps the long-strip
  // order, which measured faster there.
  const bool short_strips = problem.batch * problem.out_height() * problem.out_width() <
                            kShortStripPixelsPerSm * device.sm_count;
  auto short_strip_rank = [](const Config& c) {
    const int cp = c.param("cp"), st = c.param("st"), kc = c.param("kc");
    const int xl = c.param("xl"), xl_order = cp <= 16 ? (xl == 1 ? 0 : 1 + xl) : xl;
    return std::make_tuple(kc == 0, c.param("mc"), 1 - c.param("coop"),
                           st == 3   ? 0
                           : st == 2 ? 1
                                     : st,
                           c.param("rs"), kc == 16 ? 0 : 1, -cp, c.param("rp") == 2 ? 0 : 1,
                           c.mish == MishVariant::kFast ? 0 : 1, xl_order);
  };
  auto rank = [&problem](const Config& c) {
    const int cp = c.param("cp"), st = c.param("st"), kc = c.param("kc"), rs = c.param("rs");
    const bool tall = problem.kernel.h > 3;
    const int streamed_cp_order = cp == (rs == 1 ? 64 : 32) ? 0 : cp == 32 || cp == 64 ? 1 : 2;
    const int resident_cp_order = cp == 64 ? 0 : cp == 32 ? 1 : cp == 16 ? 2 : 3;
    // Two phase rows per unit under stride 1 and for streamed k3; one for taller streamed kernels,
    // whose staged windows grow by the kernel's rows (k4s2_wide 0.637 ms against 0.765 with two,
    // bench/results/2026-12-03-h200-tma).
    const int rp_order =
        c.param("rp") == (problem.stride.h == 1 || (kc > 0 && !tall) ? 2 : 1) ? 0 : 1;
    const int st_order = st == 3 ? 0 : st == 2 ? 1 : st;
    const int rs_order = kc > 0 && tall ? 1 - rs : rs;
    // With W streamed, staged windows first (tensor map boxes: wide_512 0.453 ms against 0.545
    // by cp.async, bench/results/2026-12-03-h200-tma; k4s2_wide 0.75 against 0.91), then x
    // through registers (k5s2_wide 0.219 against 0.245, bench/results/2026-12-02-h200-xl); so
    // too for 16-bit x with W resident (the seed in bfloat16 1.16 ms against 1.50 through
    // registers; groups4, k4s2_leaky, stride1, stride3_k5: 11-29% faster;
    // bench/results/2026-12-03-h200-resident). Resident float32 takes cp.async first: staged
    // windows tie with it on the seed (1.225 against 1.213) and lose elsewhere.
    // In NHWC, staged windows first too: each plane is one box that lands in place, with no
    // transpose (the seed 1.136 ms against 2.08 by cp.async and 2.36 through registers; stride1,
    // groups4, k4s2_leaky 0.80, 0.67, 0.59 against 2.01, 1.01, 1.86 at best otherwise;
    // bench/results/2026-12-03-h200-nhwc).
    const int xl = c.param("xl");
    const int xl_order =
        kc > 0 || problem.dtype != DType::kFloat32 || problem.layout == Layout::kNhwc ? 2 - xl : xl;
    // mc2 (clusters) measured slower on three of the four streamed problems: last.
    return std::make_tuple(kc > 0, c.param("mc"), 1 - c.param("coop"), rs_order, kc == 16 ? 0 : 1,
                           kc > 0 ? streamed_cp_order : resident_cp_order, rp_order, st_order,
                           c.mish == MishVariant::kFast ? 0 : 1, xl_order);
  };

  // The Hopper family's first config of math `math` by the order above, if it serves the problem.
  auto first_hopper = [&](MathMode math) -> const Config* {
    const Config* first = nullptr;
    for (const Config& config : space) {
      if (config.family != Family::kWsgemm || config.math != math) continue;
      const bool better =
          first == nullptr || (short_strips ? short_strip_rank(config) < short_strip_rank(*first)
                                            : rank(config) < rank(*first));
      if (better) first = &config;
    }
    return first;
  };
  // Under fp32, wsgemm's 3xtf32 measured slower than pgemm's (4.4 vs 3.9 ms on the seed), so it
  // comes after pgemm (below). For 16-bit NCHW tensors (x staged or through registers) the
  // Hopper family is the default too: verified on the H200 and, on the seed, 1.16 ms in bfloat16
  // against torch.compile's 2.26 (bench/results/2026-12-03-h200-resident).
  if (const Config* hopper = first_hopper(MathMode::kTf32)) return *hopper;
  // Until a tuned winner exists: the configs that measured best on the seed shape
  // (bench/results/; wgmma first where the device has it), then narrower tiles that fit more
  // problems, then any tensor-core config.
  for (const char* preferred : {"pgemm_tf32_bn64_rp2_cp64_wm4_wn2_st1_xs0_wg1_mishfast",
                                "pgemm_tf32_bn64_rp2_cp64_wm4_wn4_st1_xs0_wg0_mishfast",
                                "pgemm_tf32_bn64_rp2_cp64_wm4_wn4_st1_xs0_wg0_mishexact",
                                // Spill-free since the corrections are summed apart (the H100's
                                // best, st1 xs1, spills 8 B now; this one measured 1.4% behind it).
                                "pgemm_3xtf32_bn64_rp4_cp32_wm4_wn4_st2_xs0_wg0_mishexact",
                                "pgemm_tf32_bn64_rp1_cp64_wm4_wn4_st2_xs0_wg0_mishexact",
                                "pgemm_3xtf32_bn64_rp1_cp64_wm4_wn4_st2_xs0_wg0_mishexact",
                                "pgemm_tf32_bn32_rp1_cp64_wm2_wn4_st1_xs0_wg0_mishfast",
                                "pgemm_tf32_bn32_rp1_cp64_wm2_wn4_st1_xs0_wg0_mishexact",
                                "pgemm_3xtf32_bn32_rp1_cp64_wm2_wn4_st1_xs0_wg0_mishexact"}) {
    for (const Config& config : space) {
      if (config.name() == preferred) return config;
    }
  }
  for (const Config& config : space) {
    if (config.family == Family::kPgemm && config.mish == MishVariant::kExact) return config;
  }
  // Where pgemm cannot serve a problem under fp32 (NHWC): the Hopper family's 3xtf32, not FFMA.
  if (const Config* hopper = first_hopper(MathMode::k3xTf32)) return *hopper;
  // Otherwise the general kernel with 256 threads and the widest channel block.
  Config best = Config::from_name("direct_ffma_t256_c1_mishexact");
  for (const Config& config : space) {
    if (config.family == Family::kDirect && config.mish == MishVariant::kExact &&
        config.param("t") == 256 && config.param("c") > best.param("c")) {
      best = config;
    }
  }
  return best;
}

}  // namespace deconvtune

// The Hopper family (sm_90a): the phase-decomposed implicit GEMM of pgemm.cuh, warp-specialised.
//
// A CTA of three warpgroups owns 64 output channels (one wgmma M; fewer are padded with zero
// rows) and keeps their W slice resident in shared memory, TF32-rounded, in the K-major layout the
// tensor cores read (SS: both operands from shared memory, so no register holds an operand while a
// wgmma is in flight, and a unit's whole K loop is queued at once).
// - Warpgroup 0, the producer, walks the CTA's strip of units: for each it waits until a slot of
//   the ring is free, loads the unit's input window (lanes along w, so every load is a full
//   128-byte line), rounds it to TF32 and writes it channel-innermost (the transpose NCHW needs:
//   TF32 wgmma reads K-major operands only), then arrives on the slot's `full` barrier. The
//   window comes by cp.async and is rounded in place (XL = 0), through registers, rounded there
//   and stored once (XL = 1), or staged (XL = 2): the TMA engine brings each piece of the window
//   (16 channels' rows) as one box of a tensor map of x into a staging ring, and the producer
//   transposes it from there.
// - Warpgroups 1 and 2, the consumers, take alternate units: wait for the slot, queue every wgmma
//   of every phase and tap, wait for them, free the slot, then run the epilogue and store y from
//   registers while the other consumer's wgmmas run.
// A unit is (image n, RP consecutive phase rows from q, block of CP phase columns) x 64 output
// channels: for every phase row, row phase rh of the CTA's class and column phase rw, a 64 x CP
// GEMM with K = the channels times the taps that reach (rh, rw); each tap reads the same window
// at its own shift (a descriptor offset), and the RP phase rows share most of the window. Each
// thread ends up with every column phase of its pixels: 2 * SW consecutive outputs of a row.
//
// Row classes (RS): with RS = 0 a CTA computes every row phase and holds every tap; with RS = 1
// each CTA serves one row phase (grid.z) and holds only the kernel rows that reach it, which cuts
// the resident W by SH (stride 2, k4: 128 KB instead of 256).
//
// W streamed (KC > 0), where the slice cannot stay resident (C_in 256 and more): the K loop of a
// unit runs over chunks of KC input channels, and each ring slot holds one chunk of both operands:
// the window's KC channels (copied and rounded by the producer as above) and the W chunk, which
// one thread brings in with a single bulk copy from a packed image (deconv_wsgemm_pack writes it
// before every launch: TF32-rounded, in the slot's layout, padding zero). The consumer keeps one
// chunk's wgmmas in flight while it queues the next, and frees a slot once its wgmmas are done.
#pragma once
#include "epilogue.cuh"
#include "output.cuh"
#include "pipeline.cuh"
#include "problem.cuh"
#include "tensor_core.cuh"
#include "wgmma.cuh"

#ifndef DT_CP
#define DT_CP 64  // phase columns per unit: the N of every wgmma (8, 16, 32, 64 or 128)
#endif
#ifndef DT_STAGES
#define DT_STAGES 2  // slots of the input ring
#endif
#ifndef DT_RS
#define DT_RS 0  // 1: one row phase per CTA (grid.z), holding only the taps that reach it
#endif
#ifndef DT_RP
#define DT_RP 1  // consecutive phase rows per unit: their windows overlap, so x is read less often
#endif
#ifndef DT_KC
#define DT_KC 0  // input channels per slot with W streamed through the ring; 0: W resident
#endif
#ifndef DT_COOP
#define DT_COOP 0  // 1: both consumers take every unit, RP phase rows each, and share its slots
#endif
#ifndef DT_MC
#define DT_MC 1  // CTAs of a cluster sharing each streamed W chunk (one multicast copy per CTA)
#endif
#ifndef DT_XL
#define DT_XL 0  // x windows: 0 cp.async, rounded in place; 1 through registers; 2 staged rows
#endif
#if !defined(DT_MATH_TF32) && !defined(DT_MATH_3XTF32)
#define DT_MATH_TF32 1
#endif
#ifndef DT_MATH_3XTF32
#define DT_MATH_3XTF32 0
#endif

namespace dt {
constexpr int CP = DT_CP, STAGES = DT_STAGES, RP = DT_RP;
constexpr int BM = 64;  // output channels per CTA
constexpr int WG_THREADS = 128, THREADS = 3 * WG_THREADS;
// Windows through registers (DT_XL) hold PRODUCER_UNROLL items' loads in the producer's registers.
// The consumers take only what the producer gives back of the CTA's launch allocation (a
// setmaxnreg.inc beyond it never returns): LAUNCH_REGS each under __launch_bounds__(THREADS, 1).
constexpr int LAUNCH_REGS = 65536 / THREADS / 8 * 8;
constexpr int PRODUCER_REGS = DT_XL == 1 ? 72 : 56;
constexpr int CONSUMER_REGS = (LAUNCH_REGS + (LAUNCH_REGS - PRODUCER_REGS) / 2) / 8 * 8;
static_assert(PRODUCER_REGS + 2 * CONSUMER_REGS <= 3 * LAUNCH_REGS, "registers");
static_assert(DT_XL >= 0 && DT_XL <= 2, "x windows: cp.async, registers or staged");
static_assert(CP == 8 || CP == 16 || CP == 32 || CP == 64 || CP == 128, "wgmma N");
static_assert(STAGES >= 2, "one slot per consumer at least");
static_assert(DT_KC % 8 == 0, "W streams in whole k8 steps");

// tf32: one TF32 product per multiply-add, both operands rounded to nearest (SS). 3xtf32 (fp32
// accuracy): x is split into big and small TF32 planes in the slot, W stays fp32 and is split in
// registers (RS), and each multiply-add costs three products.
constexpr bool SPLIT = DT_MATH_3XTF32 != 0;
constexpr int X_PARTS = SPLIT ? 2 : 1;
constexpr bool STREAM_W = DT_KC > 0;
static_assert(!(STREAM_W && SPLIT), "W streams under tf32 only (3xtf32 splits a resident W)");
constexpr int KP = (CI_PER_GROUP + 7) / 8 * 8;  // channels per tap, padded to k8 steps
constexpr int KC = STREAM_W ? DT_KC : KP;       // channels per slot: the K of one chunk
constexpr int CHUNKS = (KP + KC - 1) / KC;      // the chunks of a unit's K loop (resident: 1)
constexpr int KSTEPS = KC / 8;                  // per chunk
constexpr int PLANES =
    KC / 4;  // 4-channel planes of a chunk: 16 bytes per pixel (x) or channel (W)
constexpr int QH = (OH + SH - 1) / SH, QW = (OW + SW - 1) / SW;  // phase rows and columns
// Cooperative (COOP): a unit has RP phase rows per consumer and each slot, W chunk included,
// serves both, so W crosses from L2 once per 2 * RP rows; the consumers' epilogues no longer
// overlap each other's wgmmas. Otherwise the consumers alternate units (ping-pong).
constexpr bool COOP = DT_COOP != 0;
// Clusters (MC = 2): the CTAs of a pair stream the same W chunks in the same order, so each loads
// half of every chunk and multicasts it to both; a slot is refilled once both CTAs' consumers are
// done with it. L2 -> shared traffic for W halves again.
constexpr int CLUSTER = DT_MC;
// Windows through registers (XL): each x element crosses shared memory once, in one conflict-free
// 16-byte store of a pixel's 4 channels, instead of a 4-byte cp.async (4-way bank conflicts: the
// lanes' pixels lie 16 bytes apart) and a read and a write to round it. Shared memory is what the
// SS wgmmas of N = 64 saturate alone (bench/results/2026-12-01-h200-mc2-probe). The producer
// then waits for its own loads, so it overlaps one window's loads only with the consumers' work:
// that makes it the limit wherever windows are long (the seed: 1.86 ms against 1.22 with cp.async)
// and pays only where a streamed kernel's ring turns slowly (k5s2: 11 %,
// bench/results/2026-12-02-h200-xl).
constexpr bool X_REGISTERS = DT_XL == 1;
constexpr int XC = CP + shift_bound(SW, PW, DW, KW, true) - SHIFT_W0;  // window columns
// Staged windows (XL = 2): the TMA engine moves x, so the producer's threads neither compute
// an address per element nor wait for loads (the copies set its pace with XL = 0: k4s2_wide takes
// 0.92 ms, 0.41 without them, bench/results/2026-12-02-h200-wa). A piece of PIECE channels of the
// window (their rows' runs of SXC columns) is one box of a 4-D tensor map of x (w, h, channel, n),
// so one instruction copies it into the staging ring, zeros outside the image included; the
// producer then reads each pixel's 4 channels from there (lanes along w: conflict-free), rounds
// (or widens) them and stores the K-major item once. (A bulk copy per (channel, window row)
// instead cost k4s2_wide 0.26 ms of its 0.75: the TMA engine takes ~13 ns per small copy,
// bench/results/2026-12-03-h200-tma.)
constexpr bool STAGED = DT_XL == 2;
// NHWC (channels_last) x: a pixel's channels are contiguous, which is the K-major layout itself.
// So staged NHWC windows (PLANE_BOXES) need neither a staging ring nor a transpose: each 4-channel
// plane of a window is one box of a tensor map of x (channel, w, h, n), which lands in the slot
// as the K-major plane it is, and the producer only rounds it in place.
constexpr bool PLANE_BOXES = STAGED && DT_NHWC;
constexpr i64 CHANNEL_STRIDE = DT_NHWC ? 1 : (i64)H * W;  // elements between a pixel's channels
constexpr int ROW_ALIGN = 16 / (int)sizeof(elem);         // elements per 16 bytes: a box row's unit
// 32 channels' runs are staged: pieces of 16 where KC allows (k4s2_wide 0.75 ms in pieces of 16,
// 1.05 in pieces of 8, and as slow with 8 of them in flight as with 4,
// bench/results/2026-12-02-h200-staged).
constexpr int PIECE = KC % 16 == 0 ? 16 : 8;  // channels per staged piece
constexpr int STAGING_DEPTH = 32 / PIECE;     // pieces in flight
// A box's innermost coordinate must be a multiple of 16 bytes (the TMA engine faults with an
// illegal instruction otherwise), and so must the tensor map's row stride (W elements). Units
// start at multiples of CP, so every window starts SKEW columns into its box.
constexpr int SKEW = (SHIFT_W0 % ROW_ALIGN + ROW_ALIGN) % ROW_ALIGN;
constexpr int SXC = (SKEW + XC + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;  // staged run columns
static_assert(!STAGED || (DT_NHWC ? CI_PER_GROUP % 4 == 0 : W % ROW_ALIGN == 0),
              "staged rows of x are 16-byte multiples, and NHWC planes start on them");
static_assert(CP % ROW_ALIGN == 0, "units start on 16-byte boundaries of x's rows");
// 16-bit x and W are exact in TF32, so one TF32 product per multiply-add is their fp32 product;
// x is widened on its way through registers or from the staging ring (cp.async cannot convert).
static_assert(DT_DTYPE == 0 || ((X_REGISTERS || (STAGED && !DT_NHWC)) && !DT_MATH_3XTF32),
              "16-bit tensors: x through registers (or staged NCHW rows), tf32 math");
static_assert(CLUSTER == 1 || CLUSTER == 2, "clusters of 1 or 2 CTAs");
static_assert(CLUSTER == 1 || DT_KC > 0, "clusters share streamed W chunks");
constexpr int UNIT_ROWS = COOP ? 2 * RP : RP;  // phase rows per unit
constexpr int QWB = (QW + CP - 1) / CP;
constexpr int QHB = (QH + UNIT_ROWS - 1) / UNIT_ROWS;
constexpr i64 UNITS = (i64)N * QWB * QHB;
constexpr int CO_BLOCKS = (CO_PER_GROUP + BM - 1) / BM;
constexpr int CLASSES = DT_RS ? SH : 1;
constexpr int CLASS_ROWS = DT_RS ? 1 : SH;  // row phases per class

// Kernel rows and input-row shifts of the class of row phases [r0, r0 + CLASS_ROWS). The whole
// range (RS = 0) has every kernel row and the closed-form shift bounds; one row phase (RS = 1,
// where the space bounds KH) counts its rows.
__host__ __device__ constexpr bool class_has_row(int r0, int kh) {
  return CLASS_ROWS == SH || tap_h(r0, kh);
}
__host__ __device__ constexpr int class_row_rank(int r0, int kh) {
  if (CLASS_ROWS == SH) return kh;
  int rank = 0;
  for (int k = 0; k < kh; ++k) rank += class_has_row(r0, k) ? 1 : 0;
  return rank;
}
__host__ __device__ constexpr int class_rows(int r0) { return class_row_rank(r0, KH); }
__host__ __device__ constexpr int class_kernel_row(int r0, int rank) {
  int row = 0;
  for (int kh = 0; kh < KH; ++kh)
    if (class_has_row(r0, kh) && class_row_rank(r0, kh) == rank) row = kh;
  return row;
}
__host__ __device__ constexpr int class_shift(int r0, bool largest) {
  if (CLASS_ROWS == SH) return shift_bound(SH, PH, DH, KH, largest);
  int lo = 1 << 30, hi = -(1 << 30);
  for (int kh = 0; kh < KH; ++kh) {
    if (!tap_h(r0, kh)) continue;
    lo = shift_h(r0, kh) < lo ? shift_h(r0, kh) : lo;
    hi = shift_h(r0, kh) > hi ? shift_h(r0, kh) : hi;
  }
  return largest ? hi : lo;
}

// The W image of one chunk of a class, [tap][plane][co][4] (the A operand: core matrices of 8
// output channels x 16 bytes, LBO the next plane, BM * 16 B, SBO 128 B): the whole slice when W
// is resident. The packed image the streamed kernels copy from holds, for each CTA's W block
// (blockIdx.y: group, block of BM output channels), each class's chunks in order.
__host__ __device__ constexpr int class_taps(int r0) { return class_rows(r0) * KW; }
__host__ __device__ constexpr int chunk_floats(int r0) { return class_taps(r0) * PLANES * BM * 4; }
__host__ __device__ constexpr i64 class_offset(int r0) {  // floats before class r0 in a W block
  i64 floats = 0;
  for (int r = 0; r < r0; ++r) floats += (i64)CHUNKS * chunk_floats(r);
  return floats;
}
constexpr i64 BLOCK_FLOATS = class_offset(CLASSES);
constexpr i64 WORKSPACE_FLOATS = STREAM_W ? (i64)GROUPS * CO_BLOCKS * BLOCK_FLOATS : 0;
static_assert(WORKSPACE_FLOATS * 4 < (1ll << 31), "the packed W's size is an int");

// Element f of the W image of class r0's chunk `chunk` for the CTA's (group, co_base): W rounded
// to TF32 (split per use instead under SPLIT), zero past the group's channels.
__device__ __forceinline__ float w_operand(const elem* __restrict__ w, int r0, int chunk, int f,
                                           int group, int co_base) {
  const int q = f % 4, co = (f / 4) % BM, plane = (f / (4 * BM)) % PLANES;
  const int tap = f / (4 * BM * PLANES), kw = tap % KW, kh = class_kernel_row(r0, tap / KW);
  const int ci = chunk * KC + plane * 4 + q, co_g = co_base + co;
  float v = 0.0f;
  if (ci < CI_PER_GROUP && co_g < CO_PER_GROUP)
    v = to_f32(__ldg(&w[w_index(group * CI_PER_GROUP + ci, co_g, kh, kw)]));
  return SPLIT ? v : __uint_as_float(to_tf32(v));
}

constexpr int STAGED_BARRIERS = PLANE_BOXES ? STAGES : STAGING_DEPTH;
// One box of x serves every row class: BOX_ROWS, the most window rows of any (the rest of a
// smaller class's are not read).
__host__ __device__ constexpr int box_rows(int r0 = 0) {
  const int rows = class_shift(r0, true) - class_shift(r0, false) + UNIT_ROWS;
  return r0 + 1 < CLASSES && box_rows(r0 + 1) > rows ? box_rows(r0 + 1) : rows;
}
constexpr int BOX_ROWS = box_rows();

// Shared memory of a CTA of class r0, declared once: W (one image, or one chunk per slot when
// streamed) and the ring of windows. A window is the B operand, [plane][window row][window
// column][4]: LBO the next plane, SBO 128 B, and it may start at any pixel (no swizzle:
// bench/probes/).
template <int R0>
struct Storage {
  static constexpr int XR = class_shift(R0, true) - class_shift(R0, false) + UNIT_ROWS;
  static constexpr int XPIX = XR * XC;
  // A plane's pixels. Where each plane is one box (PLANE_BOXES), room for BOX_ROWS rows, padded
  // to keep every box 128-byte aligned; pixels past the class's rows are never read.
  static constexpr int PLANE_PIX = PLANE_BOXES ? (BOX_ROWS * XC + 7) / 8 * 8 : XPIX;
  static constexpr int ITEMS = PLANES * PLANE_PIX;     // 4-channel items of a window part
  static constexpr int PLANE_FLOATS = ITEMS * 4;       // one part (big or small) of a window
  static constexpr int SLOT = X_PARTS * PLANE_FLOATS;  // floats
  static constexpr int TAPS = class_taps(R0);
  static constexpr int W_FLOATS = chunk_floats(R0);
  static constexpr int W_SLOTS = STREAM_W ? STAGES : 1;
  unsigned long long full[STAGES];
  unsigned long long empty[STAGES];
  // (STAGED) the staging ring's pieces have landed, or (PLANE_BOXES) a slot's boxes have.
  unsigned long long staged[STAGED_BARRIERS];
  alignas(128) float w[W_SLOTS][W_FLOATS];
  alignas(128) float x[STAGES][SLOT];
};
// With staged windows the staging ring follows: piece [channel][box row][SXC] (a tensor map box,
// innermost first), each piece 128-byte aligned as the TMA engine requires.
template <int R0>
struct StagedStorage {
  static constexpr int BOX_ELEMS = PIECE * BOX_ROWS * SXC;
  static constexpr int PIECE_ELEMS =
      (BOX_ELEMS * (int)sizeof(elem) + 127) / 128 * 128 / (int)sizeof(elem);
  Storage<R0> ring;
  alignas(128) elem staging[STAGING_DEPTH][PIECE_ELEMS];
};
template <int R0, bool WITH_STAGING = STAGED && !PLANE_BOXES>
struct SharedOf {
  using type = Storage<R0>;
};
template <int R0>
struct SharedOf<R0, true> {
  using type = StagedStorage<R0>;
};
static_assert(SXC * sizeof(elem) % 16 == 0, "staged runs stay 16-byte aligned");
static_assert((2 * STAGES + STAGED_BARRIERS) * 8 <= 128, "the barriers fit before W's alignment");
static_assert(chunk_floats(0) * 4 % 128 == 0, "each W image keeps the windows 128-byte aligned");
static_assert(sizeof(Storage<0>) % 16 == 0, "slots stay 16-byte aligned");

template <int R = 0>
__host__ __device__ constexpr int max_storage_bytes() {
  if constexpr (R + 1 < CLASSES) {
    return sizeof(typename SharedOf<R>::type) > max_storage_bytes<R + 1>()
               ? (int)sizeof(typename SharedOf<R>::type)
               : max_storage_bytes<R + 1>();
  } else {
    return (int)sizeof(typename SharedOf<R>::type);
  }
}
constexpr int SMEM_BYTES = max_storage_bytes();

__host__ __device__ constexpr bool phase_has_taps(int rh, int rw) {
  bool row = false, column = false;
  for (int kh = 0; kh < KH; ++kh) row = row || tap_h(rh, kh);
  for (int kw = 0; kw < KW; ++kw) column = column || tap_w(rw, kw);
  return row && column;
}

struct Unit {
  i64 n;
  int q, p0;  // first phase row, first phase column
};

// This CTA's units. Alone, a contiguous strip: consecutive units share input rows in L2. In a
// cluster, the CTAs share a strip and take its units in turn, so both run the same items (each W
// chunk is multicast to both); an odd strip's last turn goes to a unit past the strip that the
// second CTA computes on no input and does not store.
struct Strip {
  i64 first;  // unit k of this CTA is first + CLUSTER * k + rank
  i64 count;  // units per CTA
  i64 span;   // units the strip holds
  int rank;
  __device__ i64 unit(i64 k) const { return first + CLUSTER * k + rank; }
  __device__ bool live(i64 k) const { return CLUSTER * k + rank < span; }
};
__device__ __forceinline__ Strip strip_of_cta() {
  const i64 strips = gridDim.x / CLUSTER, strip = blockIdx.x / CLUSTER;
  const i64 per_strip = UNITS / strips, extra = UNITS % strips;
  Strip out;
  out.first = strip * per_strip + min(strip, extra);
  out.span = per_strip + (strip < extra ? 1 : 0);
  out.count = (out.span + CLUSTER - 1) / CLUSTER;
  out.rank = CLUSTER > 1 ? (int)cluster_rank() : 0;
  return out;
}
__device__ __forceinline__ Unit unit_of(i64 u) {
  Unit out;
  out.q = (int)(u % QHB) * UNIT_ROWS;
  u /= QHB;
  out.p0 = (int)(u % QWB) * CP;
  out.n = u / QWB;
  return out;
}

// The producer's share of one slot, in two steps so that several windows are in flight: issue
// copies items of 4 channels of one pixel (plane, window row, window column) with 4-byte cp.async
// straight into their K-major place, zero-filled outside the image and past the group's channels.
// Lanes run along w, so each warp instruction reads one 128-byte line of x. (Lanes along 8 pixels x
// 4 channels write shared memory without bank conflicts but read 4 lines per instruction: 20-30%
// slower on the H200, bench/results/2026-12-01-h200-wsgemm.) Once the copies have landed, the same
// thread rounds its own items to TF32 in place, so no barrier is needed between the two steps.
// Items per step of the producer's loops: one item's address arithmetic is a chain of ~40
// dependent instructions, so a loop taken one item at a time issues a copy every ~180 cycles;
// four at a time overlap their chains (the seed's time grows with C_in at ~3x the tensor cores'
// rate: bench/results/2026-12-01-h200-mc2-probe). Through registers (XL), eight loads in flight
// per thread measured slower than four on every problem (bench/results/2026-12-02-h200-xl).
constexpr int PRODUCER_UNROLL = 4;

// The input pixel of a unit's window's first row and column (either may lie outside the image).
struct WindowOrigin {
  int ih0, iw0;
};
template <int R0>
__device__ __forceinline__ WindowOrigin window_origin(const Unit& u) {
  WindowOrigin out;
  out.ih0 = u.q + class_shift(R0, false);
  out.iw0 = u.p0 + SHIFT_W0;
  return out;
}

// Where item `item` of a window of this unit and chunk comes from: channel e of the item is
// src + e * CHANNEL_STRIDE where valid(e), and a zero elsewhere (outside the image, past the
// group's channels, or a unit that is not live); src is a valid address either way, so a zero is
// chosen by a select on the offset, not by a branch on the pointer, and unrolled items stay in one
// block.
struct ItemSource {
  const elem* src;
  bool inside;
  int ci;  // the item's first channel in the group
  __device__ bool valid(int e) const { return inside && ci + e < CI_PER_GROUP; }
  __device__ const elem* at(int e) const { return src + (valid(e) ? e * CHANNEL_STRIDE : 0); }
};
template <int R0>
__device__ __forceinline__ ItemSource item_source(const elem* __restrict__ x, const Unit& u,
                                                  bool live, int chunk, int group, int item) {
  using S = Storage<R0>;
  const int pixel = item % S::PLANE_PIX, xc = pixel % XC, xr = pixel / XC;
  const WindowOrigin origin = window_origin<R0>(u);
  const int ih = origin.ih0 + xr, iw = origin.iw0 + xc;
  ItemSource out;
  out.ci = chunk * KC + item / S::PLANE_PIX * 4;
  out.inside = live && item < S::ITEMS && xr < S::XR && ih >= 0 && ih < H && iw >= 0 && iw < W;
  out.src = x + x_index(u.n, group * CI_PER_GROUP + min(out.ci, CI_PER_GROUP - 1),
                        out.inside ? ih : 0, out.inside ? iw : 0);
  return out;
}

template <int R0>
__device__ __forceinline__ void issue_window(float* slot, const elem* __restrict__ x, const Unit& u,
                                             bool live, int chunk, int group, int tid) {
#pragma unroll PRODUCER_UNROLL
  for (int item = tid; item < Storage<R0>::ITEMS; item += WG_THREADS) {
    const ItemSource source = item_source<R0>(x, u, live, chunk, group, item);
#pragma unroll
    for (int e = 0; e < 4; ++e)
      cp_async4_zero_fill(slot + item * 4 + e, source.at(e), source.valid(e));
  }
}
// Item `item` of a window of `items`: v rounded to TF32, and under SPLIT the remainder in the
// small plane (zero for an infinite value, whose big part is itself: Inf - Inf would be NaN).
__device__ __forceinline__ void store_item(float* slot, int item, int items, const float4 v) {
  float4* p = reinterpret_cast<float4*>(slot) + item;
  const float4 big = make_float4(__uint_as_float(to_tf32(v.x)), __uint_as_float(to_tf32(v.y)),
                                 __uint_as_float(to_tf32(v.z)), __uint_as_float(to_tf32(v.w)));
  *p = big;
  if constexpr (SPLIT) {
    p[items] = make_float4(big.x == v.x ? 0.0f : v.x - big.x, big.y == v.y ? 0.0f : v.y - big.y,
                           big.z == v.z ? 0.0f : v.z - big.z, big.w == v.w ? 0.0f : v.w - big.w);
  }
}

// Staged NHWC windows (PLANE_BOXES): each plane of a unit's chunk is one box of the tensor map of
// x (4 channels x XC columns x BOX_ROWS rows, innermost first, zeros outside the image and past
// the tensor's channels), copied straight into its place in the slot; `landed` completes once all
// have landed and every producer thread has arrived. A unit that is not live copies nothing.
template <int R0>
__device__ __forceinline__ void issue_plane_boxes(float* slot, unsigned long long* landed,
                                                  const TensorMap* x_map, const Unit& u, bool live,
                                                  int chunk, int group, int tid) {
  using S = Storage<R0>;
  if (tid == 0 && live) {
    const WindowOrigin origin = window_origin<R0>(u);
    mbarrier_expect_bytes(landed, PLANES * BOX_ROWS * XC * 16);
    for (int plane = 0; plane < PLANES; ++plane)
      tensor_copy_to_shared(slot + plane * S::PLANE_PIX * 4, x_map,
                            group * CI_PER_GROUP + chunk * KC + 4 * plane, origin.iw0, origin.ih0,
                            (int)u.n, landed);
  }
  mbarrier_arrive(landed);
}

// Rounds the landed window of chunk `chunk` in place (after issue_window or issue_plane_boxes).
// A box's planes past the group's channels hold the next group's: zeros here, as cp.async fills.
template <int R0>
__device__ __forceinline__ void prepare_window(float* slot, int chunk, int tid) {
  using S = Storage<R0>;
#pragma unroll PRODUCER_UNROLL
  for (int item = tid; item < S::ITEMS; item += WG_THREADS) {
    float4 v = reinterpret_cast<const float4*>(slot)[item];
    if constexpr (PLANE_BOXES && CHUNKS * KC > CI_PER_GROUP) {
      if (chunk * KC + item / S::PLANE_PIX * 4 >= CI_PER_GROUP) v = make_float4(0, 0, 0, 0);
    }
    store_item(slot, item, S::ITEMS, v);
  }
}

// XL: the same items as issue_window, loaded into registers (zero outside the image and past the
// group's channels), rounded there and stored once. A step loads PRODUCER_UNROLL items before it
// stores any, every load from a valid address (a zero is selected afterwards, so no branch stands
// between the loads and they are in flight together).
template <int R0>
__device__ __forceinline__ void load_window(float* slot, const elem* __restrict__ x, const Unit& u,
                                            bool live, int chunk, int group, int tid) {
  constexpr int ITEMS = Storage<R0>::ITEMS, STEP = PRODUCER_UNROLL * WG_THREADS;
  for (int first = tid; first < ITEMS; first += STEP) {
    float v[PRODUCER_UNROLL][4];
#pragma unroll
    for (int b = 0; b < PRODUCER_UNROLL; ++b) {
      const ItemSource source = item_source<R0>(x, u, live, chunk, group, first + b * WG_THREADS);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float loaded = to_f32(__ldg(source.at(e)));
        v[b][e] = source.valid(e) ? loaded : 0.0f;
      }
    }
#pragma unroll
    for (int b = 0; b < PRODUCER_UNROLL; ++b) {
      const int item = first + b * WG_THREADS;
      if (item < ITEMS)
        store_item(slot, item, ITEMS, make_float4(v[b][0], v[b][1], v[b][2], v[b][3]));
    }
  }
}

// XL = 2, step 1: piece `piece` (channels PIECE * piece on) of a unit's chunk, one box of the
// tensor map of x, copied into staging buffer `buffer`, which completes on `landed`; every producer
// thread arrives there once. A unit that is not live copies nothing. The box's channels past the
// group's (the next group's, or zeros past the tensor) are zeroed by transpose_piece.
template <int R0>
__device__ __forceinline__ void stage_piece(elem* buffer, unsigned long long* landed,
                                            const TensorMap* x_map, const Unit& u, bool live,
                                            int chunk, int piece, int group, int tid) {
  constexpr unsigned BOX_BYTES = StagedStorage<R0>::BOX_ELEMS * sizeof(elem);
  if (tid == 0 && live) {
    const WindowOrigin origin = window_origin<R0>(u);
    mbarrier_expect_bytes(landed, BOX_BYTES);
    tensor_copy_to_shared(buffer, x_map, origin.iw0 - SKEW, origin.ih0,
                          group * CI_PER_GROUP + chunk * KC + piece * PIECE, (int)u.n, landed);
  }
  mbarrier_arrive(landed);
}

// XL = 2, step 2: once the piece has landed, its items (PIECE / 4 planes of the window) from the
// staging buffer into the slot, rounded to TF32, zero outside the image, past the group's
// channels and for a unit that is not live.
template <int R0>
__device__ __forceinline__ void transpose_piece(float* slot, const elem* buffer, const Unit& u,
                                                bool live, int chunk, int piece, int tid) {
  using S = Storage<R0>;
  constexpr int ITEMS = S::ITEMS, PIECE_ITEMS = PIECE / 4 * S::XPIX;
  static_assert(S::PLANE_PIX == S::XPIX, "staged pieces fill dense planes");
  const WindowOrigin origin = window_origin<R0>(u);
  // (Reading 4 or 8 items before storing any measured no faster: k4s2_wide 0.753 and 0.856 ms.)
#pragma unroll PRODUCER_UNROLL
  for (int item = tid; item < PIECE_ITEMS; item += WG_THREADS) {
    const int xc = item % XC, xr = (item / XC) % S::XR, plane = item / S::XPIX;
    const int ih = origin.ih0 + xr, iw = origin.iw0 + xc;
    const int ci = chunk * KC + piece * PIECE + plane * 4;
    const bool inside = live && ih >= 0 && ih < H && iw >= 0 && iw < W;
    const elem* from = buffer + (plane * 4 * BOX_ROWS + xr) * SXC + SKEW + xc;
    float v[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float staged = to_f32(from[e * BOX_ROWS * SXC]);
      v[e] = inside && ci + e < CI_PER_GROUP ? staged : 0.0f;
    }
    store_item(slot, piece * PIECE_ITEMS + item, ITEMS, make_float4(v[0], v[1], v[2], v[3]));
  }
}

constexpr int PHASES = CLASS_ROWS * SW;  // phases of a phase row
constexpr int TILES = RP * PHASES;       // accumulator tiles of a unit: (phase row, phase)

// Descriptor arithmetic counts 16-byte units: a tap's window is the slot's descriptor plus its
// row and column shift; k-step j starts 2 planes further on.
template <int R0>
__device__ __forceinline__ unsigned long long window_at(unsigned long long x_desc, int row, int rh,
                                                        int kh, int rw, int kw, int j) {
  return x_desc + 2 * j * Storage<R0>::PLANE_PIX +
         (row + shift_h(rh, kh) - class_shift(R0, false)) * XC + shift_w(rw, kw) - SHIFT_W0;
}

// tf32: every wgmma of the chunk (of the unit, with W resident) queued at once, both operands
// from shared memory (SS); the first chunk starts each tile's sum.
template <int R0>
__device__ __forceinline__ void mainloop_tf32(float (&acc)[TILES][CP / 2],
                                              unsigned long long w_desc, unsigned long long x_desc,
                                              bool first_chunk, int row0) {
  wgmma_fence();
#pragma unroll
  for (int tile = 0; tile < TILES; ++tile) {
    const int row = tile / PHASES, r = tile % PHASES / SW, rw = tile % SW;
    {
      bool accumulate = !first_chunk;
#pragma unroll
      for (int kh = 0; kh < KH; ++kh) {
        if (!tap_h(R0 + r, kh)) continue;
#pragma unroll
        for (int kw = 0; kw < KW; ++kw) {
          if (!tap_w(rw, kw)) continue;
          const int tap = class_row_rank(R0, kh) * KW + kw;
#pragma unroll
          for (int j = 0; j < KSTEPS; ++j) {
            wgmma_ss_tf32<CP>(acc[tile], w_desc + (tap * PLANES + 2 * j) * BM,
                              window_at<R0>(x_desc, row0 + row, R0 + r, kh, rw, kw, j), accumulate);
            accumulate = true;
          }
        }
      }
    }
  }
}

// 3xtf32: Wb xb + Wb xs + Ws xb per multiply-add (the small x small term is below fp32
// rounding), W split in registers (RS), so each k-step's A fragments stay live until its wgmmas
// complete: two register sets, reloaded once the group two steps back is done. The main products
// are summed per tap (K = the group's channels) and added in fp32, as the tensor cores accumulate
// with less care than fp32 adds (bench/probes); the corrections, 2^-11 smaller, share one sum per
// phase. A non-finite main sum stands alone: an infinite big part times a zero small part would
// turn PyTorch's Inf into NaN.
template <int R0>
__device__ __forceinline__ void mainloop_3xtf32(float (&acc)[TILES][CP / 2], const float* w_smem,
                                                unsigned long long x_desc, int row0, int warp,
                                                int lane) {
  constexpr int SMALL = Storage<R0>::ITEMS;  // the small plane, in descriptor units
  // The A fragment of lane (g, t): rows g and g + 8 of the warp's 16, K columns t and t + 4.
  const float* a_lane = w_smem + (16 * warp + lane / 4) * 4 + lane % 4;
#pragma unroll
  for (int tile = 0; tile < TILES; ++tile) {
    const int row = tile / PHASES, r = tile % PHASES / SW, rw = tile % SW;
    {
      float* sum = acc[tile];
      float correction[CP / 2];
      bool first_tap = true, correcting = false;
#pragma unroll
      for (int kh = 0; kh < KH; ++kh) {
        if (!tap_h(R0 + r, kh)) continue;
#pragma unroll
        for (int kw = 0; kw < KW; ++kw) {
          if (!tap_w(rw, kw)) continue;
          const int tap = class_row_rank(R0, kh) * KW + kw;
          float part[CP / 2];
          unsigned a_big[2][4], a_small[2][4];
#pragma unroll
          for (int j = 0; j < KSTEPS; ++j) {
            const int set = j & 1;
            if (j >= 2) {
              wgmma_wait<1>();
#pragma unroll
              for (int q = 0; q < 4; ++q) {
                keep_register(a_big[set][q]);
                keep_register(a_small[set][q]);
              }
            }
            const float* a = a_lane + (tap * PLANES + 2 * j) * BM * 4;
            const float av[4] = {a[0], a[32], a[BM * 4], a[BM * 4 + 32]};
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              a_big[set][q] = to_tf32(av[q]);
              const float big = __uint_as_float(a_big[set][q]);
              a_small[set][q] = __float_as_uint(big == av[q] ? 0.0f : av[q] - big);
              // Opaque from here on: the compiler may not recompute the split later and reuse
              // these registers while the wgmmas still read them.
              keep_register(a_big[set][q]);
              keep_register(a_small[set][q]);
            }
            const unsigned long long xb = window_at<R0>(x_desc, row0 + row, R0 + r, kh, rw, kw, j);
            wgmma_fence();
            wgmma_rs_tf32<CP>(part, a_big[set], xb, j > 0);
            wgmma_rs_tf32<CP>(correction, a_big[set], xb + SMALL, correcting);
            wgmma_rs_tf32<CP>(correction, a_small[set], xb, true);
            correcting = true;
            wgmma_commit();
          }
          wgmma_wait<0>();
#pragma unroll
          for (int set = 0; set < 2; ++set)
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              keep_register(a_big[set][q]);
              keep_register(a_small[set][q]);
            }
#pragma unroll
          for (int i = 0; i < CP / 2; ++i) sum[i] = first_tap ? part[i] : sum[i] + part[i];
          first_tap = false;
        }
      }
      if (!first_tap) {
#pragma unroll
        for (int i = 0; i < CP / 2; ++i)
          sum[i] = isfinite(sum[i]) ? sum[i] + correction[i] : sum[i];
      }
    }
  }
}

template <int R0>
__device__ __forceinline__ void run_class(unsigned char* smem, const elem* __restrict__ x,
                                          const elem* __restrict__ w, const elem* __restrict__ bias,
                                          elem* __restrict__ y, const float* __restrict__ w_packed,
                                          const TensorMap* x_map) {
  using S = Storage<R0>;
  static_assert(sizeof(typename SharedOf<R0>::type) <= SMEM_BYTES, "storage");
  S& s = *reinterpret_cast<S*>(smem);  // the ring comes first either way
  // Broadcast from lane 0, so the compiler sees the role is uniform across each warp (wgmma
  // issued on a path it cannot prove warp-uniform is serialised).
  const int warpgroup = __shfl_sync(0xffffffffu, (int)threadIdx.x / WG_THREADS, 0);
  const int tid = threadIdx.x % WG_THREADS;
  const int group = blockIdx.y / CO_BLOCKS;
  const int co_base = (blockIdx.y % CO_BLOCKS) * BM;  // within the group

  if constexpr (!STREAM_W) {
    for (int f = threadIdx.x; f < S::W_FLOATS; f += THREADS)
      s.w[0][f] = w_operand(w, R0, 0, f, group, co_base);
  }
  // With W streamed, this CTA's chunks in the packed image: chunk c at w_block + c * W_FLOATS.
  const float* w_block = w_packed + (STREAM_W ? blockIdx.y * BLOCK_FLOATS + class_offset(R0) : 0);
  if (threadIdx.x == 0) {
    for (int i = 0; i < STAGED_BARRIERS; ++i) mbarrier_init(&s.staged[i], WG_THREADS);
    for (int i = 0; i < STAGES; ++i) {
      mbarrier_init(&s.full[i], WG_THREADS);
      // Every consumer thread of every CTA of the cluster frees each slot.
      mbarrier_init(&s.empty[i], (COOP ? 2 : 1) * WG_THREADS * CLUSTER);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  fence_proxy_async();  // W, written by threads, is read by the tensor cores
  __syncthreads();
  // In a cluster, the peer's barriers must exist before anything lands on them, and this CTA's
  // shared memory must outlive the peer's last multicast into it and last arrival on its barriers:
  // every thread, whichever role, meets the peer's at the start and again on the way out.
  struct ClusterMeeting {
    __device__ ClusterMeeting() {
      if constexpr (CLUSTER > 1) cluster_sync();
    }
    __device__ ~ClusterMeeting() {
      if constexpr (CLUSTER > 1) cluster_sync();
    }
  } meeting;
  const Strip strip = strip_of_cta();
  const i64 count = strip.count;

  if (warpgroup == 0) {
    registers_decrease<PRODUCER_REGS>();
    // The ring's items are (unit, chunk) in order. Item i's slot gets its window's copies and,
    // with W streamed, one bulk copy of its W chunk, which completes on the slot's `full` barrier
    // beside the producer threads' arrivals.
    auto issue_w_chunk = [&](i64 i, int slot) {
      if (STREAM_W && tid == 0) {
        // The slot waits for the whole chunk, this CTA's share and the peer's.
        constexpr unsigned BYTES = S::W_FLOATS * 4, SHARE = BYTES / CLUSTER;
        static_assert(SHARE % 16 == 0, "bulk copies move 16-byte units");
        mbarrier_expect_bytes(&s.full[slot], BYTES);
        const float* chunk = w_block + (i % CHUNKS) * S::W_FLOATS;
        if constexpr (CLUSTER > 1) {
          const int offset = strip.rank * (S::W_FLOATS / CLUSTER);
          bulk_copy_to_cluster(s.w[slot] + offset, chunk + offset, SHARE, &s.full[slot],
                               (1u << CLUSTER) - 1);
        } else {
          bulk_copy_to_shared(s.w[slot], chunk, BYTES, &s.full[slot]);
        }
      }
    };
    const i64 items = count * CHUNKS;
    auto free_slot = [&](i64 i) {
      mbarrier_wait<(CLUSTER > 1)>(&s.empty[i % STAGES], (unsigned)((i / STAGES) & 1) ^ 1u);
    };
    if constexpr (STAGED && !PLANE_BOXES) {
      auto& staging = reinterpret_cast<StagedStorage<R0>*>(smem)->staging;
      // Pieces run over (item, piece) in order, STAGING_DEPTH of them in flight; a buffer is
      // refilled once every producer thread is done reading it (named barrier PRODUCER_SYNC).
      constexpr int PIECES = KC / PIECE, PRODUCER_SYNC = 3;
      static_assert(KC % PIECE == 0, "whole pieces per chunk");
      const i64 pieces = items * PIECES;
      auto stage = [&](i64 g) {
        const i64 i = g / PIECES, k = i / CHUNKS;
        const int buffer = (int)(g % STAGING_DEPTH);
        stage_piece<R0>(staging[buffer], &s.staged[buffer], x_map, unit_of(strip.unit(k)),
                        strip.live(k), (int)(i % CHUNKS), (int)(g % PIECES), group, tid);
      };
      for (i64 g = 0; g < STAGING_DEPTH && g < pieces; ++g) stage(g);
      for (i64 i = 0; i < items; ++i) {
        const int slot = (int)(i % STAGES);
        const i64 k = i / CHUNKS;
        const Unit u = unit_of(strip.unit(k));
        free_slot(i);
        issue_w_chunk(i, slot);
        for (int piece = 0; piece < PIECES; ++piece) {
          const i64 g = i * PIECES + piece;
          const int buffer = (int)(g % STAGING_DEPTH);
          mbarrier_wait(&s.staged[buffer], (unsigned)((g / STAGING_DEPTH) & 1));
          transpose_piece<R0>(s.x[slot], staging[buffer], u, strip.live(k), (int)(i % CHUNKS),
                              piece, tid);
          // Every producer thread is done reading the buffer before its next copies.
          named_barrier_wait<WG_THREADS>(PRODUCER_SYNC);
          if (g + STAGING_DEPTH < pieces) stage(g + STAGING_DEPTH);
        }
        fence_proxy_async();  // the slot's items for the tensor cores
        mbarrier_arrive(&s.full[slot]);
      }
    } else if constexpr (X_REGISTERS) {
      for (i64 i = 0; i < items; ++i) {
        const int slot = (int)(i % STAGES);
        const i64 k = i / CHUNKS;
        free_slot(i);
        issue_w_chunk(i, slot);
        load_window<R0>(s.x[slot], x, unit_of(strip.unit(k)), strip.live(k), (int)(i % CHUNKS),
                        group, tid);
        fence_proxy_async();
        mbarrier_arrive(&s.full[slot]);
      }
    } else {  // cp.async or plane boxes: not for 16-bit x (neither can widen it)
      auto issue = [&](i64 i, int slot) {
        const i64 k = i / CHUNKS;
        if constexpr (PLANE_BOXES) {
          issue_plane_boxes<R0>(s.x[slot], &s.staged[slot], x_map, unit_of(strip.unit(k)),
                                strip.live(k), (int)(i % CHUNKS), group, tid);
        } else {
          issue_window<R0>(s.x[slot], x, unit_of(strip.unit(k)), strip.live(k), (int)(i % CHUNKS),
                           group, tid);
        }
        issue_w_chunk(i, slot);
      };
      // LOOKAHEAD windows are in flight while the oldest is rounded and published; a slot is
      // refilled only after the window before it is published, so a consumer never waits for the
      // producer to wait for the other consumer.
      constexpr int LOOKAHEAD = STAGES - 1;
      for (i64 i = 0; i < LOOKAHEAD; ++i) {
        if (i < items) issue(i, (int)i);
        cp_async_commit();
      }
      for (i64 i = 0; i < items; ++i) {
        const int slot = (int)(i % STAGES);
        if constexpr (PLANE_BOXES) {
          mbarrier_wait(&s.staged[slot], (unsigned)((i / STAGES) & 1));
        } else {
          cp_async_wait<LOOKAHEAD - 1>();
        }
        prepare_window<R0>(s.x[slot], (int)(i % CHUNKS), tid);
        fence_proxy_async();
        mbarrier_arrive(&s.full[slot]);
        const i64 next = i + LOOKAHEAD;
        if (next < items) {
          free_slot(next);
          issue(next, (int)(next % STAGES));
        }
        cp_async_commit();
      }
      cp_async_wait<0>();
    }
    return;  // (past the cluster meeting)
  }
  registers_increase<CONSUMER_REGS>();
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  float bias_v[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int co = min(co_base + 16 * warp + g + 8 * half, CO_PER_GROUP - 1);
    bias_v[half] = HAS_BIAS ? to_f32(__ldg(&bias[group * CO_PER_GROUP + co])) : 0.0f;
  }
  // A barrier wait names its phase by parity alone, so a consumer may wait for a slot only once
  // the slot's earlier rounds are over. Units alternate, and with W streamed a unit spans more
  // items than the ring has slots and a slot's bulk bytes may land after a later slot's: a
  // consumer starts a unit once the other has waited for the last item of the unit before (which
  // makes every earlier item published). With W resident no order is needed: a unit is one item,
  // the producer's threads arrive in item order, so the consumer's own previous item being
  // published means every earlier one is. (Cooperative consumers both take every item in order.)
  // One named barrier per direction: consumer c waits at UNIT_ORDER + c and the other arrives
  // there. With one for both, a consumer running a unit ahead would pair its own arrive with its
  // next wait (bar counts threads, not roles) and pass unordered.
  constexpr bool ORDER_UNITS = !COOP && STREAM_W;
  constexpr int UNIT_ORDER = 1;  // named barriers 1 and 2 (0 is __syncthreads)
  const int consumer = warpgroup - 1;
  const int row0 = COOP ? consumer * RP : 0;  // the consumer's first phase row in a unit
  auto release = [&](i64 item) {
    for (int cta = 0; cta < CLUSTER; ++cta) {
      if constexpr (CLUSTER > 1) {
        mbarrier_arrive_in(&s.empty[item % STAGES], cta);
      } else {
        mbarrier_arrive(&s.empty[item % STAGES]);
      }
    }
  };
  for (i64 k = COOP ? 0 : consumer; k < count; k += COOP ? 1 : 2) {
    const Unit u = unit_of(strip.unit(k));
    if (ORDER_UNITS && k > 0) named_barrier_wait<2 * WG_THREADS>(UNIT_ORDER + consumer);
    // Not zeroed: each phase's first wgmma overwrites its tile (a phase no tap reaches is zero,
    // below), and writes to the accumulators between wgmmas would serialise them.
    float acc[TILES][CP / 2];
#pragma unroll
    for (int chunk = 0; chunk < CHUNKS; ++chunk) {
      const i64 item = k * CHUNKS + chunk;
      const int slot = (int)(item % STAGES);
      mbarrier_wait(&s.full[slot], (unsigned)((item / STAGES) & 1));
      if (ORDER_UNITS && chunk == CHUNKS - 1)
        named_barrier_arrive<2 * WG_THREADS>(UNIT_ORDER + 1 - consumer);
      const unsigned long long x_desc = wgmma_desc(s.x[slot], S::PLANE_PIX * 16, 128);
      if constexpr (SPLIT) {
        mainloop_3xtf32<R0>(acc, s.w[0], x_desc, row0, warp, lane);
      } else {
        mainloop_tf32<R0>(acc, wgmma_desc(s.w[STREAM_W ? slot : 0], BM * 16, 128), x_desc,
                          chunk == 0, row0);
      }
      wgmma_commit();
      // The previous chunk's wgmmas are done once at most this chunk's are pending: its slot
      // is free while this one's run.
      if (chunk > 0) {
        wgmma_wait<1>();
        release(item - 1);
      }
    }
    wgmma_wait<0>();
    release(k * CHUNKS + CHUNKS - 1);
    if (!strip.live(k)) continue;

      // Thread (g, t) of warp w holds channels 16w + g (+ 8) and phase pixels 8j + 2t (+ 1) of
      // every phase: for each row phase, 2 * SW consecutive outputs of a row per (channel, j).
#pragma unroll
    for (int tile_row = 0; tile_row < RP * CLASS_ROWS; ++tile_row) {
      const int row = tile_row / CLASS_ROWS, r = tile_row % CLASS_ROWS;
      const int oh = SH * (u.q + row0 + row) + R0 + r;
      if (oh >= OH) continue;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int co = co_base + 16 * warp + g + 8 * half;
        if (co >= CO_PER_GROUP) continue;
        elem* row = y + y_index(u.n, group * CO_PER_GROUP + co, oh, 0);
#pragma unroll
        for (int j = 0; j < CP / 8; ++j) {
          const int p = u.p0 + 8 * j + 2 * t;
          float run[RUN];
#pragma unroll
          for (int qq = 0; qq < 2; ++qq)
#pragma unroll
            for (int rw = 0; rw < SW; ++rw) {
              float v = (phase_has_taps(R0 + r, rw) ? acc[tile_row * SW + rw][4 * j + 2 * half + qq]
                                                    : 0.0f) +
                        bias_v[half];
              DT_EPILOGUE(v)
              run[SW * qq + rw] = v;
            }
          store_run(row, SW * p, run);
        }
      }
    }
  }
}

template <int R = 0>
__device__ __forceinline__ void dispatch_class(unsigned char* smem, const elem* __restrict__ x,
                                               const elem* __restrict__ w,
                                               const elem* __restrict__ bias, elem* __restrict__ y,
                                               const float* __restrict__ w_packed,
                                               const TensorMap* x_map) {
  if constexpr (R + 1 < CLASSES) {
    if ((int)blockIdx.z != R) return dispatch_class<R + 1>(smem, x, w, bias, y, w_packed, x_map);
  }
  run_class<R>(smem, x, w, bias, y, w_packed, x_map);
}
}  // namespace dt

// The dynamic shared memory the kernel expects; the loader checks the host's figure against it.
extern "C" __device__ const int dt_shared_bytes = dt::SMEM_BYTES;
// The workspace the loader gives the kernel (its fifth argument, the packed W) and fills with
// deconv_wsgemm_pack before each launch; 0: W resident, no workspace.
extern "C" __device__ const int dt_workspace_bytes = (int)(dt::WORKSPACE_FLOATS * 4);
#if DT_XL == 2
// Staged windows take a tensor map of x as their sixth argument, which the loader encodes for
// each x: element bytes, then x's extents and the box's, innermost first as x lies in memory
// (NCHW: w, h, channel, n; NHWC: channel, w, h, n).
#if DT_NHWC
extern "C" __device__ const int dt_x_tensor_map[9] = {
    (int)sizeof(dt::elem), dt::CI, dt::W, dt::H, (int)dt::N, 4, dt::XC, dt::BOX_ROWS, 1};
#else
extern "C" __device__ const int dt_x_tensor_map[9] = {
    (int)sizeof(dt::elem), dt::W, dt::H, dt::CI, (int)dt::N, dt::SXC, dt::BOX_ROWS, dt::PIECE, 1};
#endif
static_assert(dt::SXC <= 256 && dt::XC <= 256 && dt::BOX_ROWS <= 256,
              "a tensor map box is at most 256 a side");
#endif

extern "C" __global__ void __launch_bounds__(dt::THREADS, 1)
#if DT_MC > 1
    __cluster_dims__(DT_MC, 1, 1)
#endif
        deconv_wsgemm(const dt::elem* __restrict__ x, const dt::elem* __restrict__ w,
                      const dt::elem* __restrict__ bias, dt::elem* __restrict__ y,
                      const float* __restrict__ w_packed
#if DT_XL == 2
                      ,
                      const __grid_constant__ dt::TensorMap x_map
#endif
        ) {
  extern __shared__ __align__(128) unsigned char smem[];
#if DT_XL == 2
  dt::dispatch_class(smem, x, w, bias, y, w_packed, &x_map);
#else
  dt::dispatch_class(smem, x, w, bias, y, w_packed, nullptr);
#endif
}

#if DT_KC > 0
// W -> the packed image of every W block, class and chunk (see w_operand), grid-stride.
extern "C" __global__ void deconv_wsgemm_pack(const dt::elem* __restrict__ w,
                                              float* __restrict__ w_packed) {
  using dt::i64;
  for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < dt::WORKSPACE_FLOATS;
       e += (i64)gridDim.x * blockDim.x) {
    const int block = (int)(e / dt::BLOCK_FLOATS);
    i64 rest = e % dt::BLOCK_FLOATS;
    int r0 = 0;
    while (rest >= (i64)dt::CHUNKS * dt::chunk_floats(r0))
      rest -= (i64)dt::CHUNKS * dt::chunk_floats(r0++);
    w_packed[e] =
        dt::w_operand(w, r0, (int)(rest / dt::chunk_floats(r0)), (int)(rest % dt::chunk_floats(r0)),
                      block / dt::CO_BLOCKS, block % dt::CO_BLOCKS * dt::BM);
  }
}
#endif

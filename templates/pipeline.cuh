// The synchronisation of the warp-specialised kernels (sm_90): shared-memory mbarriers that guard
// the slots of a ring between a producer warpgroup and consumer warpgroups, and the register
// reallocation that gives the consumers the registers the producer does not need.
//
// Protocol of one slot: the producer waits on `empty` (the consumers' last use of the slot is
// over), fills it, and every producer thread arrives on `full`; a consumer waits on `full`, reads
// the slot, and every consumer thread arrives on `empty`. Round r of a slot completes phase r of
// each barrier, so waiters pass the parity of their round (the producer's first wait passes at
// once: a fresh barrier counts its preceding phase, parity 1, as complete).
#pragma once

namespace dt {
__device__ __forceinline__ unsigned shared_address(const void* p) {
  return (unsigned)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void mbarrier_init(unsigned long long* barrier, unsigned arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(barrier)),
               "r"(arrivals)
               : "memory");
}

// Release semantics: this thread's earlier shared-memory writes are visible to the waiters.
__device__ __forceinline__ void mbarrier_arrive(unsigned long long* barrier) {
  asm volatile(
      "{ .reg .b64 state; mbarrier.arrive.release.cta.shared::cta.b64 state, [%0]; }" ::"r"(
          shared_address(barrier))
      : "memory");
}

// Adds `bytes` to the transactions the current phase waits for (bulk copies that complete on it),
// without arriving: the phase ends once every arrival is in and every such byte has landed.
__device__ __forceinline__ void mbarrier_expect_bytes(unsigned long long* barrier, unsigned bytes) {
  asm volatile(
      "mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(shared_address(barrier)),
      "r"(bytes)
      : "memory");
}

// One bulk copy (the TMA engine, no registers, no thread per element) of `bytes` (a multiple of
// 16, both addresses 16-byte aligned) from global to this CTA's shared memory; its bytes count
// towards `barrier`'s current phase (see mbarrier_expect_bytes).
__device__ __forceinline__ void bulk_copy_to_shared(void* smem, const void* gmem, unsigned bytes,
                                                    unsigned long long* barrier) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
          "r"(shared_address(smem)),
      "l"(gmem), "r"(bytes), "r"(shared_address(barrier))
      : "memory");
}
// A tensor map (CUtensorMap: 128 opaque bytes the host encodes), passed as a __grid_constant__
// kernel parameter so the TMA engine reads it from parameter space.
struct alignas(64) TensorMap {
  unsigned long long opaque[16];
};
// One box of a 4-D tensor map (innermost coordinate first; any coordinate may lie outside the
// tensor, whose elements land as zeros) copied by the TMA engine into this CTA's shared memory at
// `smem` (128-byte aligned), densely, innermost dimension first; the whole box's bytes count
// towards `barrier`'s current phase, the zeros included.
__device__ __forceinline__ void tensor_copy_to_shared(void* smem, const TensorMap* map, int c0,
                                                      int c1, int c2, int c3,
                                                      unsigned long long* barrier) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], "
      "[%1, {%2, %3, %4, %5}], [%6];" ::"r"(shared_address(smem)),
      "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(shared_address(barrier))
      : "memory");
}
// The same bytes written to the same place in the shared memory of every CTA of the cluster in
// `cta_mask`, each completing on its own barrier at `barrier`'s place.
__device__ __forceinline__ void bulk_copy_to_cluster(void* smem, const void* gmem, unsigned bytes,
                                                     unsigned long long* barrier,
                                                     unsigned short cta_mask) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster "
      "[%0], [%1], %2, [%3], %4;" ::"r"(shared_address(smem)),
      "l"(gmem), "r"(bytes), "r"(shared_address(barrier)), "h"(cta_mask)
      : "memory");
}

// Acquire semantics: returns once the phase of the given parity has completed. CLUSTER_SCOPE:
// acquire what the arrivals of other CTAs of the cluster released.
template <bool CLUSTER_SCOPE = false>
__device__ __forceinline__ void mbarrier_wait(unsigned long long* barrier, unsigned parity) {
  unsigned done;
  do {
    if constexpr (CLUSTER_SCOPE) {
      asm volatile(
          "{ .reg .pred p; mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2; "
          "selp.u32 %0, 1, 0, p; }"
          : "=r"(done)
          : "r"(shared_address(barrier)), "r"(parity)
          : "memory");
    } else {
      asm volatile(
          "{ .reg .pred p; mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2; "
          "selp.u32 %0, 1, 0, p; }"
          : "=r"(done)
          : "r"(shared_address(barrier)), "r"(parity)
          : "memory");
    }
  } while (!done);
}

// Clusters (sm_90): CTAs of one cluster see each other's shared memory. This CTA's rank in its
// cluster; an arrival on the barrier at the same place in CTA `cta`'s shared memory (release at
// cluster scope); a cluster-wide barrier of every thread of every CTA.
__device__ __forceinline__ unsigned cluster_rank() {
  unsigned rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
  return rank;
}
__device__ __forceinline__ void mbarrier_arrive_in(unsigned long long* barrier, unsigned cta) {
  unsigned remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;"
               : "=r"(remote)
               : "r"(shared_address(barrier)), "r"(cta));
  asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];" ::"r"(remote)
               : "memory");
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;" ::: "memory");
}

// Named barrier `id` (1-15, the same in every thread of a warp; 0 is __syncthreads's) across
// THREADS threads, a multiple of 32: some warps arrive and go on, the others wait until every
// arrival is in.
template <int THREADS>
__device__ __forceinline__ void named_barrier_arrive(int id) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "n"(THREADS) : "memory");
}
template <int THREADS>
__device__ __forceinline__ void named_barrier_wait(int id) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "n"(THREADS) : "memory");
}

// The warpgroup's registers per thread become REGS (a multiple of 8 in 24..256). Every warp of the
// warpgroup executes it; the kernel needs a register cap at entry (__launch_bounds__(T, 1)).
template <int REGS>
__device__ __forceinline__ void registers_decrease() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(REGS));
}
template <int REGS>
__device__ __forceinline__ void registers_increase() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(REGS));
}
}  // namespace dt

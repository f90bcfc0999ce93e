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

// Acquire semantics: returns once the phase of the given parity has completed.
__device__ __forceinline__ void mbarrier_wait(unsigned long long* barrier, unsigned parity) {
  unsigned done;
  do {
    asm volatile(
        "{ .reg .pred p; mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2; "
        "selp.u32 %0, 1, 0, p; }"
        : "=r"(done)
        : "r"(shared_address(barrier)), "r"(parity)
        : "memory");
  } while (!done);
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

// Which vector ISA the runtime's own kernels run (cpu_isa.cc): the widest this CPU has, capped by
// TORCHTVM_MAX_CPU_ISA=avx2|avx512, so that an AVX-512 machine can run, test and time the AVX2
// code. Each kernel is compiled once per ISA (TORCHTVM_ISA_DISPATCH) and picked at call time;
// GCC's target_clones cannot be capped (its resolver asks the CPU alone).
#pragma once

namespace torchtvm {

enum class Isa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// Decided once per process (the environment is read at the first call).
Isa KernelIsa();

// Floats in one vector register of an ISA: 16 (AVX-512), 8 (AVX2), 4 (the SSE baseline).
constexpr int IsaLanes(Isa isa) { return isa == Isa::kAvx512 ? 16 : isa == Isa::kAvx2 ? 8 : 4; }
const char* IsaName(Isa isa);

}  // namespace torchtvm

#define TORCHTVM_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))
#define TORCHTVM_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

// Defines `ret name params` that runs `name##Body<isa> args` compiled for the kernel ISA. The body
// is an always_inline template over torchtvm::Isa (it may choose its blocking by the ISA), without
// target attributes of its own, so each variant inlines it with its own instructions.
#define TORCHTVM_ISA_DISPATCH(ret, name, params, args)                                                   \
  TORCHTVM_TARGET_AVX512 ret name##Avx512 params { return name##Body<::torchtvm::Isa::kAvx512> args; }   \
  TORCHTVM_TARGET_AVX2 ret name##Avx2 params { return name##Body<::torchtvm::Isa::kAvx2> args; }         \
  ret name##Baseline params { return name##Body<::torchtvm::Isa::kBaseline> args; }                      \
  ret name params {                                                                                      \
    switch (::torchtvm::KernelIsa()) {                                                                   \
      case ::torchtvm::Isa::kAvx512: return name##Avx512 args;                                           \
      case ::torchtvm::Isa::kAvx2: return name##Avx2 args;                                               \
      default: return name##Baseline args;                                                               \
    }                                                                                                    \
  }

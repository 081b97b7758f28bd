// The runtime kernels' ISA (cpu_isa.h), and `torchtvm.kernel_isa` for the engine and the tests.

#include "cpu_isa.h"

#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace torchtvm {

namespace {

Isa HostIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kBaseline;
}

}  // namespace

Isa KernelIsa() {
  static const Isa isa = [] {
    Isa host = HostIsa();
    const char* cap = std::getenv("TORCHTVM_MAX_CPU_ISA");
    if (cap == nullptr || *cap == '\0') return host;
    std::string c(cap);
    Isa limit = c == "avx512" ? Isa::kAvx512 : c == "avx2" ? Isa::kAvx2 : c == "baseline" ? Isa::kBaseline : host;
    // The engine refuses an unknown value with a sentence; a model served elsewhere keeps running.
    if (c != "avx512" && c != "avx2" && c != "baseline")
      std::fprintf(stderr, "torchtvm: TORCHTVM_MAX_CPU_ISA=%s is not avx2, avx512 or baseline; ignored.\n", cap);
    return static_cast<int>(limit) < static_cast<int>(host) ? limit : host;
  }();
  return isa;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "baseline";
  }
}

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def("torchtvm.kernel_isa", []() { return std::string(IsaName(KernelIsa())); });
}

}  // namespace torchtvm

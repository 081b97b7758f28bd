// Library kernels (library_kernels.cc): PyTorch's oneDNN/MKL ops registered as tvm-ffi functions
// for compiled modules, and what loading needs to check that they match the running torch.
#pragma once

#include <string>

#include <ATen/ATen.h>
#include <dlpack/dlpack.h>
#include <tvm/ffi/function.h>

namespace torchtvm {

// The torch dtype of a library kernel's buffer (float32, bfloat16, float16; otherwise an error).
at::ScalarType ScalarTypeOf(const DLTensor* t);
// A dense DLTensor as a torch tensor sharing its memory (a strided one is a torchtvm bug).
at::Tensor View(const DLTensor* t);

// The schema of a torch op ("ns::op.overload") in the running process ("" when torch has none).
std::string LibrarySchema(const std::string& qualified);
// Points a loaded compiled module (a .so already dlopen'ed) at torch's thread pool for its parallel
// loops; false when the file is not loaded or has no parallel launcher.
bool RouteParallelToTorch(const std::string& so_path);
// The torch version this runtime was compiled against.
const char* BuiltTorchVersion();
// Runs a library kernel as every registered one runs: torch's errors become FFI errors and, while
// the engine profiles, the call is timed (library_attention.cc registers its kernels through it).
void RunLibraryKernel(const char* name, void (*f)(tvm::ffi::PackedArgs, tvm::ffi::Any*),
                      tvm::ffi::PackedArgs args, tvm::ffi::Any* rv);

}  // namespace torchtvm

// Library kernels (library_kernels.cc): PyTorch's oneDNN/MKL ops registered as tvm-ffi functions
// for compiled modules, and what loading needs to check that they match the running torch.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <dlpack/dlpack.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/function.h>

namespace torchtvm {

// The torch dtype of a library kernel's buffer (float32, bfloat16, float16; otherwise an error).
at::ScalarType ScalarTypeOf(const DLTensor* t);
// A dense DLTensor as a torch tensor sharing its memory (a strided one is a torchtvm bug).
at::Tensor View(const DLTensor* t);

// Where a DLTensor's data starts; how many elements it has.
void* DataOf(const DLTensor* t);
int64_t NumelOf(const DLTensor* t);

// A cheap fingerprint of a buffer's contents (a freed weight's address reused by another must not
// hit a cache).
uint64_t Fingerprint(const DLTensor* w);

// A cache key for what is derived from a convolution weight: (address, contents fingerprint, the
// rest of what it depends on).
using PackKey = std::tuple<const void*, uint64_t, std::vector<int64_t>>;
// The key of a packed weight: the weight, the geometry and the activation's shape without its batch.
PackKey ConvKey(const DLTensor* w, const std::vector<int64_t>& padding, const std::vector<int64_t>& stride,
                const std::vector<int64_t>& dilation, int64_t groups, const at::Tensor& x);

// Bumped by torchtvm.library_clear_caches (after placement timed kernels on weights no model
// keeps): every Memo drops what it holds at its next use.
inline std::atomic<uint64_t>& MemoGeneration() {
  static std::atomic<uint64_t> generation{0};
  return generation;
}

// The value cached under `key` (one cache per call site), made by `make()` at first use. Bounded: a
// process that loads many models keeps the newest weights only. Returned by value, so a caller's
// copy stays alive while it runs even if another thread clears the cache.
template <typename V, typename Make>
V Memo(const PackKey& key, Make make) {
  static std::mutex mu;
  static std::map<PackKey, V> cache;
  static uint64_t generation = 0;
  std::lock_guard<std::mutex> lock(mu);
  if (uint64_t now = MemoGeneration().load(std::memory_order_relaxed); now != generation) {
    cache.clear();
    generation = now;
  }
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 4096) cache.clear();
  return cache.emplace(key, make()).first->second;
}

// out [rows, G] = h [rows, H] (rows ldh apart) @ w [H, G] on the calling thread (small_gemm.cc),
// for products too small for a BLAS call to pay off; w as PackForSmallGemm(w [H, G], float32) packs it.
at::Tensor PackForSmallGemm(const at::Tensor& w);
// The same into a caller's buffer of SmallGemmPackedSize(H, G) floats, w[k][j] at w[k * ld_row + j *
// ld_col] (ld_row 1 and ld_col the row stride packs a transposed matrix): no allocation, for a
// kernel that packs per call on torch's threads (an attention's keys and values).
int64_t SmallGemmPackedSize(int64_t H, int64_t G);
void PackForSmallGemmInto(const float* w, int64_t ld_row, int64_t ld_col, int64_t H, int64_t G, float* packed);
void SmallGemm(const float* h, int64_t ldh, const float* packed, float* out, int64_t rows, int64_t H, int64_t G);
// A convolution or linear weight as PackForSmallGemm packs W [cin, cout] (w_is_nk: w is [cout, cin],
// a 1x1 convolution's), packed once per weight (Memo).
at::Tensor PackedSmallGemmWeight(const DLTensor* w, int64_t cin, int64_t cout, bool w_is_nk);
// Whether the SmallGemm calls below apply epilogue `unary` themselves (none, relu, relu6,
// hardswish, hardsigmoid); the caller applies any other.
bool SmallGemmFusesUnary(int64_t unary);
// out [rows, G] = act(h [rows, H] (dense) @ w + bias + other) over torch's threads, by blocks of 6
// rows x 64 columns, the epilogue applied in registers before each block is stored. `other` must not be
// `out`.
void SmallGemmParallel(const float* h, const float* packed, float* out, int64_t rows, int64_t H, int64_t G,
                       const float* bias, const float* other, int64_t unary);
// The same on the calling thread, out's and other's rows ldo apart: for products whose output rows
// are strided (a transposed convolution's pixels) or whose operands are packed per call (an attention's
// keys and values).
void SmallGemmStrided(const float* h, int64_t ldh, const float* packed, float* out, int64_t ldo, int64_t rows, int64_t H,
                      int64_t G, const float* bias, const float* other = nullptr, int64_t unary = 0);

// Winograd F(4x4, 3x3) (library_winograd.cc): whether it takes this float32 3x3 stride-1
// convolution (x NHWC, w OIHW, out NHWC), and the convolution itself: out = act(conv(x) + bias +
// other) for act none / relu (1) / relu6 (2); false when a value came out non-finite (the caller
// then computes the call the direct way).
bool WinogradApplies(const DLTensor* x, const DLTensor* w, const DLTensor* out);
bool WinogradConv(const DLTensor* x, const DLTensor* w, const DLTensor* bias, const DLTensor* other, DLTensor* out,
                  int64_t pad_h, int64_t pad_w, int64_t unary);

// A depthwise float32 convolution (x NHWC, w [C, 1, kh, kw], out NHWC; a: torchtvm.conv2d's
// attributes) by the runtime's own loop (library_depthwise.cc): out = conv(x) + bias + other, then
// the unary epilogue where DepthwiseFusesUnary(unary) (the caller applies any other). False when it
// does not apply.
bool DepthwiseFusesUnary(int64_t unary);
bool DepthwiseConv(const DLTensor* x, const DLTensor* w, const DLTensor* bias, const DLTensor* other, DLTensor* out,
                   const tvm::ffi::Shape& a, int64_t unary);

// A depthwise convolution (as DepthwiseConv, without a residual; a: its attributes, unary_d its
// epilogue) whose output only a 1x1 convolution reads (wp [G, C, 1, 1], bias bp, residual other,
// epilogue unary_p, into out [N, OH, OW, G]), as one pass: each thread runs the depthwise loop on a
// few output rows into its own buffer and the pointwise SmallGemm from there. False where it does
// not apply (the same conditions as the two kernels; an activation neither applies in registers).
bool DepthwisePointwise(const DLTensor* x, const DLTensor* wd, const DLTensor* bd, const tvm::ffi::Shape& a, int64_t unary_d,
                        const DLTensor* wp, const DLTensor* bp, const DLTensor* other, DLTensor* out, int64_t unary_p);

// Applies the unary epilogue `code` (backend/library.py UNARY_CODES; 9 is hardsigmoid) in place,
// by PyTorch's kernels.
void ApplyUnary(at::Tensor& t, int64_t code);

// A float32 convolution with at most 512 values per output pixel (x NHWC, or NCHW where `nchw`: a
// model input read where it lies; w OIHW, out NHWC; a: torchtvm.conv2d's attributes) by the
// runtime's own direct loop (library_direct_conv.cc): out = act(conv(x) + bias + other). False when
// it does not apply (groups, dtype).
bool DirectConv(const DLTensor* x, const DLTensor* w, const DLTensor* bias, const DLTensor* other, DLTensor* out,
                const tvm::ffi::Shape& a, int64_t unary, bool nchw);

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

// Tests only: spins `us` microseconds at each call of the runtime's own kernel `name` ("depthwise",
// "depthwise_pointwise", "recurrent", "group_norm", "squeeze_excite", "attention"), set by torchtvm.debug_delay_kernel, so that a test
// can make one candidate slower on purpose and watch placement choose another. One relaxed atomic
// load when unset.
void DebugDelay(const char* name);

}  // namespace torchtvm

// Squeeze-excite (global average pool -> 1x1 conv -> activation -> 1x1 conv -> gate -> scale the
// input by the gate) as one library call: out = x * gate(act(mean(x) @ w1 + b1) @ w2 + b2), with x
// channels-last [N, ..., C] and the mean over every axis between the batch and the channels.
//
// Unfused, a block is four calls (a TVM pool, two library 1x1 convolutions on 1x1 images, a TVM
// multiply): some 25-40 us of per-call cost where the arithmetic is a few microseconds (MobileNetV3
// has nine such blocks). Here it is two passes over x (the sums, then the scaling) and two small
// matrix-vector products, each a plain loop over the contiguous axis that the compiler vectorizes
// for the kernel ISA (TORCHTVM_ISA_DISPATCH, so TORCHTVM_MAX_CPU_ISA caps it).
//
// Algorithm 1 ("torch") runs the same block by PyTorch's kernels (mean, addmm, the activations,
// mul), the candidate placement times against the runtime's own loops.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <algorithm>
#include <vector>

#include "cpu_isa.h"
#include "library_kernels.h"
#include "vector_math.h"

namespace torchtvm {
namespace {

namespace ffi = tvm::ffi;

// Positions per chunk of the sums: each chunk's float sums are added in double, and a large input
// splits over the threads by chunks.
constexpr int64_t kChunk = 64;

// sums[c] += x[l, c] for l in [l0, l1); x is [L, C].
template <Isa>
__attribute__((always_inline)) inline void AddRowsBody(const float* __restrict__ x, int64_t C, int64_t l0, int64_t l1,
                                                       float* __restrict__ sums) {
  for (int64_t l = l0; l < l1; ++l) {
    const float* __restrict__ row = x + l * C;
    for (int64_t c = 0; c < C; ++c) sums[c] += row[c];
  }
}

TORCHTVM_ISA_DISPATCH(void, AddRows, (const float* __restrict__ x, int64_t C, int64_t l0, int64_t l1, float* __restrict__ sums),
                      (x, C, l0, l1, sums))

// y[j] += v[k] * w[k, j] over k: w is [K, J] row-major, so the inner loop runs along a row.
template <Isa>
__attribute__((always_inline)) inline void VecMatBody(const float* __restrict__ v, const float* __restrict__ w, int64_t K,
                                                      int64_t J, float* __restrict__ y) {
  for (int64_t k = 0; k < K; ++k) {
    const float vk = v[k];
    const float* __restrict__ row = w + k * J;
    for (int64_t j = 0; j < J; ++j) y[j] += vk * row[j];
  }
}

TORCHTVM_ISA_DISPATCH(void, VecMat, (const float* __restrict__ v, const float* __restrict__ w, int64_t K, int64_t J, float* __restrict__ y),
                      (v, w, K, J, y))

// y[l, c] = x[l, c] * g[c] for l in [l0, l1).
template <Isa>
__attribute__((always_inline)) inline void ScaleRowsBody(const float* __restrict__ x, const float* __restrict__ g, int64_t C,
                                                         int64_t l0, int64_t l1, float* __restrict__ y) {
  for (int64_t l = l0; l < l1; ++l)
    for (int64_t c = 0; c < C; ++c) y[l * C + c] = x[l * C + c] * g[c];
}

TORCHTVM_ISA_DISPATCH(void, ScaleRows, (const float* __restrict__ x, const float* __restrict__ g, int64_t C, int64_t l0, int64_t l1, float* __restrict__ y),
                      (x, g, C, l0, l1, y))

// The hidden layer's or the gate's activation, as eager PyTorch gives it (NaN and inf included).
void ActivateAll(std::vector<float>& values, int64_t code) {
  for (auto& v : values)
    TORCH_CHECK(ActivateScalarCode(v, code), "torchtvm.squeeze_excite got activation code ", code, "; this is a torchtvm bug.");
}

// mean over positions of x [L, C] into mean[C]: float sums per chunk of positions, added in double.
void ChannelMeans(const float* x, int64_t L, int64_t C, float* mean) {
  int64_t chunks = (L + kChunk - 1) / kChunk;
  std::vector<float> partial(chunks * C, 0.f);
  // Below ~64K values one thread finishes before a second would start.
  int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, kChunk * C));
  at::parallel_for(0, chunks, grain, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) AddRows(x, C, k * kChunk, std::min(L, (k + 1) * kChunk), &partial[k * C]);
  });
  std::vector<double> total(C, 0.0);
  for (int64_t k = 0; k < chunks; ++k)
    for (int64_t c = 0; c < C; ++c) total[c] += partial[k * C + c];
  for (int64_t c = 0; c < C; ++c) mean[c] = static_cast<float>(total[c] / static_cast<double>(L));
}

// x, out: [N, L, C]; w1: [C, R]; b1: [R]; w2: [R, C]; b2: [C].
void OwnBlock(const float* x, const float* w1, const float* b1, const float* w2, const float* b2, float* out, int64_t N,
              int64_t L, int64_t C, int64_t R, int64_t act, int64_t gate) {
  std::vector<float> mean(C), hidden(R), g(C);
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x + n * L * C;
    float* yn = out + n * L * C;
    ChannelMeans(xn, L, C, mean.data());
    std::copy(b1, b1 + R, hidden.begin());
    VecMat(mean.data(), w1, C, R, hidden.data());
    ActivateAll(hidden, act);
    std::copy(b2, b2 + C, g.begin());
    VecMat(hidden.data(), w2, R, C, g.data());
    ActivateAll(g, gate);
    int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, C));
    at::parallel_for(0, L, grain, [&](int64_t l0, int64_t l1) { ScaleRows(xn, g.data(), C, l0, l1, yn); });
  }
}

// The same block by PyTorch's kernels.
void TorchBlock(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                const at::Tensor& b2, at::Tensor& out, int64_t act, int64_t gate) {
  std::vector<int64_t> axes;
  for (int64_t d = 1; d + 1 < x.dim(); ++d) axes.push_back(d);
  at::Tensor hidden = at::addmm(b1, at::mean(x, axes), w1);
  ApplyUnary(hidden, act);
  at::Tensor g = at::addmm(b2, hidden, w2);
  ApplyUnary(g, gate);
  std::vector<int64_t> shape(x.dim(), 1);
  shape.front() = x.size(0);
  shape.back() = x.size(-1);
  at::mul_out(out, x, g.view(shape));
}

// torchtvm.squeeze_excite(x, w1 [C, R], b1 [R], w2 [R, C], b2 [C], attrs, out): attrs are
// [activation, gate, algorithm (0: the runtime's loops, 1: PyTorch's kernels)].
void SqueezeExcite(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  TORCH_CHECK(args.size() == 7, "torchtvm.squeeze_excite got ", args.size(), " arguments; this is a torchtvm bug.");
  const DLTensor* x = args[0].cast<DLTensor*>();
  const DLTensor* w1 = args[1].cast<DLTensor*>();
  const DLTensor* b1 = args[2].cast<DLTensor*>();
  const DLTensor* w2 = args[3].cast<DLTensor*>();
  const DLTensor* b2 = args[4].cast<DLTensor*>();
  ffi::Shape a = args[5].cast<ffi::Shape>();
  DLTensor* out = args[6].cast<DLTensor*>();
  TORCH_CHECK(a.size() >= 2 && x->ndim >= 3 && w1->ndim == 2 && w2->ndim == 2, "torchtvm.squeeze_excite got malformed arguments; this is a torchtvm bug.");
  int64_t N = x->shape[0], C = x->shape[x->ndim - 1], R = w1->shape[1];
  TORCH_CHECK(w1->shape[0] == C && w2->shape[0] == R && w2->shape[1] == C && b1->shape[0] == R && b2->shape[0] == C,
              "torchtvm.squeeze_excite: the weights do not match ", C, " channels; this is a torchtvm bug.");
  TORCH_CHECK(ScalarTypeOf(x) == at::kFloat, "torchtvm.squeeze_excite takes float32 only; this is a torchtvm bug.");
  int64_t algorithm = a.size() > 2 ? a[2] : 0;
  if (algorithm == 1) {
    at::Tensor y = View(out);
    TorchBlock(View(x), View(w1), View(b1), View(w2), View(b2), y, a[0], a[1]);
    return;
  }
  DebugDelay("squeeze_excite");
  int64_t L = 1;
  for (int i = 1; i + 1 < x->ndim; ++i) L *= x->shape[i];
  if (N == 0 || L == 0 || C == 0) return;
  OwnBlock(static_cast<const float*>(DataOf(x)), static_cast<const float*>(DataOf(w1)), static_cast<const float*>(DataOf(b1)),
           static_cast<const float*>(DataOf(w2)), static_cast<const float*>(DataOf(b2)), static_cast<float*>(DataOf(out)),
           N, L, C, R, a[0], a[1]);
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def_packed("torchtvm.squeeze_excite", [](ffi::PackedArgs a, ffi::Any* rv) {
    RunLibraryKernel("torchtvm.squeeze_excite", SqueezeExcite, a, rv);
  });
}

}  // namespace torchtvm

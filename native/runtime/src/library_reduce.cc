// The mean over a run of adjacent axes of a float32 tensor whose innermost axes are kept (a global
// average pool of an NHWC activation: [N, H, W, C] -> [N, C]), as the runtime's own kernel: the
// tensor seen as [outer, R, inner], each kept row of `inner` values summed over the R rows in
// vectors, straight into the output. TVM's default reduction took 3.7 us and ATen's mean.out 4.3 on
// a 2x8x8x128 pool (Zen 5), both more than the 16K loads cost. Registered as the torch op
// torchtvm::mean_rows_out, so that library_aten.py offers it through the generic torchtvm.aten call
// beside PyTorch's kernel, and placement times the three.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "cpu_isa.h"

namespace torchtvm {
namespace {

// Rows [o0, o1) of the [outer, R, inner] view: y[o, i] = scale * sum_r x[o, r, i]. Cloned per ISA:
// the inner loop is the whole cost and vectorizes across i (the sum over r keeps its order).
template <Isa>
__attribute__((always_inline)) inline void MeanRowsBody(const float* x, float* y, int64_t R, int64_t inner, int64_t i0,
                                                        int64_t i1, int64_t o0, int64_t o1, float scale) {
  for (int64_t o = o0; o < o1; ++o) {
    const float* __restrict__ xo = x + o * R * inner;
    float* __restrict__ yo = y + o * inner;
    for (int64_t i = i0; i < i1; ++i) yo[i] = 0.0f;
    for (int64_t r = 0; r < R; ++r)
      for (int64_t i = i0; i < i1; ++i) yo[i] += xo[r * inner + i];
    for (int64_t i = i0; i < i1; ++i) yo[i] *= scale;
  }
}

TORCHTVM_ISA_DISPATCH(void, MeanRows,
                      (const float* x, float* y, int64_t R, int64_t inner, int64_t i0, int64_t i1, int64_t o0, int64_t o1, float scale),
                      (x, y, R, inner, i0, i1, o0, o1, scale))

at::Tensor& MeanRowsOut(const at::Tensor& input, at::IntArrayRef dim, bool keepdim, at::Tensor& out) {
  TORCH_CHECK(input.scalar_type() == at::kFloat && out.scalar_type() == at::kFloat && input.is_contiguous() && out.is_contiguous(),
              "torchtvm::mean_rows_out takes dense float32 tensors");
  std::vector<int64_t> axes(dim.begin(), dim.end());
  std::sort(axes.begin(), axes.end());
  const int64_t nd = input.dim();
  TORCH_CHECK(!axes.empty() && axes.front() >= 0 && axes.back() < nd - 1 && axes.back() - axes.front() + 1 == int64_t(axes.size()),
              "torchtvm::mean_rows_out reduces adjacent axes before the innermost one");
  int64_t outer = 1, R = 1, inner = 1;
  for (int64_t d = 0; d < nd; ++d) (d < axes.front() ? outer : d <= axes.back() ? R : inner) *= input.size(d);
  TORCH_CHECK(out.numel() == outer * inner, "torchtvm::mean_rows_out: out has ", out.numel(), " values for ", outer * inner);
  const float* x = input.data_ptr<float>();
  float* y = out.data_ptr<float>();
  const float scale = R ? 1.0f / static_cast<float>(R) : std::numeric_limits<float>::quiet_NaN();  // torch: mean of nothing is NaN
  // Items are (outer row, chunk of 64 kept values); a thread gets at least ~32K loads.
  constexpr int64_t kChunk = 64;
  const int64_t chunks = (inner + kChunk - 1) / kChunk, items = outer * chunks;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, R * std::min(inner, kChunk)));
  at::parallel_for(0, items, grain, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      int64_t o = item / chunks, i0 = (item % chunks) * kChunk;
      MeanRows(x, y, R, inner, i0, std::min(inner, i0 + kChunk), o, o + 1, scale);
    }
  });
  (void)keepdim;  // the shape is TVM's buffer's; the values are the same either way
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(torchtvm, m) {
  m.def("mean_rows_out(Tensor input, int[] dim, bool keepdim, *, Tensor(a!) out) -> Tensor(a!)",
        torch::dispatch(c10::DispatchKey::CPU, MeanRowsOut));
}

}  // namespace torchtvm

// GroupNorm on a channels-last buffer ([N, ..., C], channels innermost), the runtime's own kernel:
// after a library convolution TVM holds activations channels-last, where torch's group_norm either
// takes its channels-last path or needs two transposing copies (125-150 us on a 1x64x1991 Conv1d
// activation, against ~20 us of arithmetic), and TVM's default schedule takes as long. Registered
// as the torch op torchtvm::group_norm_channels_last, so that library_aten.py emits it through the
// same generic torchtvm.aten call as PyTorch's kernel, and placement times the two against TVM's.
//
// Three passes, each a plain loop over channels (innermost, contiguous) that the compiler
// vectorizes per ISA (TORCHTVM_ISA_DISPATCH): per-channel sums, per-channel sums of squared
// deviations from the group's mean (two-pass variance: no cancellation when the mean is large),
// then y = act(x * a[c] + b[c]) with a = rstd * gamma, b = beta - mean * a, as ATen computes it (act:
// an activation that follows the GroupNorm, fused into this pass, or none). Partial
// sums are float over chunks of kChunk positions, combined in double.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_isa.h"
#include "library_kernels.h"
#include "vector_math.h"

namespace torchtvm {
namespace {

constexpr int64_t kChunk = 128;

// sums[c] = sum over positions [l0, l1) of x[l, c] (centered on center[c] and squared when
// `squares`); x is [L, C].
template <Isa>
__attribute__((always_inline)) inline void ChannelSumsBody(const float* __restrict__ x, int64_t C, int64_t l0, int64_t l1,
                                                           const float* __restrict__ center, bool squares,
                                                           float* __restrict__ sums) {
  for (int64_t c = 0; c < C; ++c) sums[c] = 0.f;
  if (squares) {
    for (int64_t l = l0; l < l1; ++l) {
      const float* __restrict__ row = x + l * C;
      for (int64_t c = 0; c < C; ++c) {
        float d = row[c] - center[c];
        sums[c] += d * d;
      }
    }
  } else {
    for (int64_t l = l0; l < l1; ++l) {
      const float* __restrict__ row = x + l * C;
      for (int64_t c = 0; c < C; ++c) sums[c] += row[c];
    }
  }
}

TORCHTVM_ISA_DISPATCH(void, ChannelSums,
                      (const float* __restrict__ x, int64_t C, int64_t l0, int64_t l1, const float* __restrict__ center,
                       bool squares, float* __restrict__ sums),
                      (x, C, l0, l1, center, squares, sums))

// y = act(x * a[c] + b[c]), the activation a template argument so that each loop is branch-free.
template <int U>
__attribute__((always_inline)) inline void Affine(const float* __restrict__ x, float* __restrict__ y, int64_t C, int64_t l0,
                                                  int64_t l1, const float* __restrict__ a, const float* __restrict__ b) {
  for (int64_t l = l0; l < l1; ++l)
    for (int64_t c = 0; c < C; ++c) y[l * C + c] = ActivateScalar<U>(x[l * C + c] * a[c] + b[c]);
}

template <Isa>
__attribute__((always_inline)) inline void AffineRowsBody(const float* __restrict__ x, float* __restrict__ y, int64_t C,
                                                          int64_t l0, int64_t l1, const float* __restrict__ a,
                                                          const float* __restrict__ b, int64_t unary) {
  switch (unary) {
    case 1: return Affine<1>(x, y, C, l0, l1, a, b);
    case 3: return Affine<3>(x, y, C, l0, l1, a, b);
    case 6: return Affine<6>(x, y, C, l0, l1, a, b);
    case 7: return Affine<7>(x, y, C, l0, l1, a, b);
    case 8: return Affine<8>(x, y, C, l0, l1, a, b);
    default: return Affine<0>(x, y, C, l0, l1, a, b);
  }
}

TORCHTVM_ISA_DISPATCH(void, AffineRows,
                      (const float* __restrict__ x, float* __restrict__ y, int64_t C, int64_t l0, int64_t l1,
                       const float* __restrict__ a, const float* __restrict__ b, int64_t unary),
                      (x, y, C, l0, l1, a, b, unary))

// Per-group totals of the per-channel sums of x [L, C] (centered and squared when `squares`),
// chunks of positions split over torch's threads, each chunk's float sums added in double.
std::vector<double> GroupTotals(const float* x, int64_t L, int64_t C, int64_t groups, const float* center, bool squares) {
  int64_t chunks = (L + kChunk - 1) / kChunk;
  std::vector<float> partial(chunks * C);
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) ChannelSums(x, C, k * kChunk, std::min(L, (k + 1) * kChunk), center, squares, &partial[k * C]);
  });
  std::vector<double> totals(groups, 0.0);
  int64_t per_group = C / groups;
  for (int64_t k = 0; k < chunks; ++k)
    for (int64_t c = 0; c < C; ++c) totals[c / per_group] += partial[k * C + c];
  return totals;
}

at::Tensor GroupNormChannelsLast(const at::Tensor& input, int64_t groups, const std::optional<at::Tensor>& weight,
                                 const std::optional<at::Tensor>& bias, double eps, int64_t unary) {
  TORCH_CHECK(unary == 0 || unary == 1 || unary == 3 || unary == 6 || unary == 7 || unary == 8,
              "torchtvm::group_norm_channels_last: unknown activation code ", unary);
  TORCH_CHECK(input.scalar_type() == at::kFloat && input.dim() >= 2, "torchtvm::group_norm_channels_last takes a float32 [N, ..., C] tensor");
  at::Tensor x = input.contiguous();
  int64_t N = x.size(0), C = x.size(-1), L = N ? x.numel() / (N * C) : 0;
  TORCH_CHECK(groups > 0 && C % groups == 0, "torchtvm::group_norm_channels_last: ", C, " channels do not split into ", groups, " groups");
  DebugDelay("group_norm");
  at::Tensor w = weight && weight->defined() ? weight->contiguous() : at::ones({C}, x.options());
  at::Tensor b = bias && bias->defined() ? bias->contiguous() : at::zeros({C}, x.options());
  at::Tensor y = at::empty_like(x);
  const float* wp = w.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  int64_t per_group = C / groups;
  double count = static_cast<double>(L * per_group);
  std::vector<float> center(C), scale(C), shift(C);
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x.data_ptr<float>() + n * L * C;
    float* yn = y.data_ptr<float>() + n * L * C;
    std::vector<double> mean = GroupTotals(xn, L, C, groups, nullptr, false);
    for (int64_t g = 0; g < groups; ++g) mean[g] /= count;
    for (int64_t c = 0; c < C; ++c) center[c] = static_cast<float>(mean[c / per_group]);
    std::vector<double> var = GroupTotals(xn, L, C, groups, center.data(), true);
    for (int64_t c = 0; c < C; ++c) {
      double rstd = 1.0 / std::sqrt(var[c / per_group] / count + eps);
      scale[c] = static_cast<float>(rstd * wp[c]);
      shift[c] = static_cast<float>(bp[c] - mean[c / per_group] * rstd * wp[c]);
    }
    at::parallel_for(0, L, kChunk, [&](int64_t l0, int64_t l1) { AffineRows(xn, yn, C, l0, l1, scale.data(), shift.data(), unary); });
  }
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(torchtvm, m) {
  // unary: an activation applied in the same pass (backend/library.py UNARY_CODES: relu, sigmoid,
  // gelu, gelu_tanh, silu), so that GroupNorm + GELU is one pass over the activation.
  m.def("group_norm_channels_last(Tensor input, int num_groups, Tensor? weight=None, Tensor? bias=None, float eps=1e-05, int unary=0) -> Tensor",
        torch::dispatch(c10::DispatchKey::CPU, GroupNormChannelsLast));
}

}  // namespace torchtvm

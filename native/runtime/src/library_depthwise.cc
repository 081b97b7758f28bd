// Depthwise convolution (one input channel per output channel, float32, NHWC) as a loop of the
// runtime's own, vectorized over channels: oneDNN's depthwise convolution spends some 40 us per
// call on the small activations of mobile nets (bench:peers' depthwise net, 2x16x32x32 and smaller),
// where the arithmetic is a few microseconds. Bias, a residual and relu / relu6 are applied in the
// same pass.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

#include "library_kernels.h"

namespace torchtvm {
namespace {

struct DepthwiseGeometry {
  int64_t H, W, C, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw;
};

typedef float V16 __attribute__((vector_size(64)));

__attribute__((always_inline)) inline V16 Load(const float* p) {
  V16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Output rows [begin, end) of a flattened (n, oh); w is [kh * kw][C], each block of 16 channels one
// vector (one zmm on AVX-512, two ymm on AVX2). When C is not a multiple of 16 the last block
// starts at C - 16 and overlaps the one before: those channels are computed twice, to the same
// values, so every block is a full vector (DepthwiseConv refuses the one case where that would be
// wrong: a residual read from the output buffer itself). K > 0: a KxK kernel, its taps held in
// registers across the row; K = 0: any kernel size. `other` may be `out` itself (TVM may run the
// residual add in place): it is read before the output is written.
template <int K>
__attribute__((always_inline)) inline void Rows(const float* __restrict__ x, const float* __restrict__ w,
                                                const float* __restrict__ bias, const float* other, float* out,
                                                const DepthwiseGeometry& g, int clamp, int64_t begin, int64_t end) {
  const int64_t C = g.C, kh = K ? K : g.kh, kw = K ? K : g.kw;
  const V16 zero{}, six = zero + 6.f;
  const int64_t blocks = (C + 15) / 16;
  for (int64_t r = begin; r < end; ++r) {
    int64_t n = r / g.OH, oh = r % g.OH;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      int64_t c0 = std::min(blk * 16, C - 16);
      V16 taps[K ? K * K : 1];
      if (K)
        for (int t = 0; t < K * K; ++t) taps[t] = Load(w + t * C + c0);
      V16 b = bias ? Load(bias + c0) : zero;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        int64_t at = ((n * g.OH + oh) * g.OW + ow) * C + c0;
        V16 acc = b + (other ? Load(other + at) : zero);
        for (int64_t i = 0; i < kh; ++i) {
          int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t j = 0; j < kw; ++j) {
            int64_t iw = ow * g.sw - g.pw + j * g.dw;
            if (iw < 0 || iw >= g.W) continue;
            acc += Load(x + ((n * g.H + ih) * g.W + iw) * C + c0) * (K ? taps[i * K + j] : Load(w + (i * kw + j) * C + c0));
          }
        }
        if (clamp) {  // relu / relu6; NaN stays NaN (both compares are false)
          acc = acc < zero ? zero : acc;
          if (clamp == 2) acc = acc > six ? six : acc;
        }
        std::memcpy(out + at, &acc, sizeof(acc));
      }
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void DepthwiseRows(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                   const float* other, float* out, const DepthwiseGeometry& g, int clamp, int64_t begin, int64_t end) {
  if (g.kh == 3 && g.kw == 3) Rows<3>(x, w, bias, other, out, g, clamp, begin, end);
  else Rows<0>(x, w, bias, other, out, g, clamp, begin, end);
}

}  // namespace

bool DepthwiseConv(const DLTensor* x, const DLTensor* w, const DLTensor* bias, const DLTensor* other, DLTensor* out,
                   const tvm::ffi::Shape& a, int64_t unary) {
  int64_t C = x->shape[3];
  // C < 16 has no full vector; an in-place residual cannot take the overlapping last block.
  bool overlap_unsafe = C % 16 != 0 && other != nullptr && DataOf(other) == DataOf(out);
  if (ScalarTypeOf(x) != at::kFloat || C < 16 || overlap_unsafe || a[6] != C || out->shape[3] != C || w->ndim != 4 || w->shape[0] != C || w->shape[1] != 1)
    return false;
  DebugDelay("depthwise");
  DepthwiseGeometry g{x->shape[1], x->shape[2], C, out->shape[1], out->shape[2], w->shape[2], w->shape[3],
                      a[0], a[1], a[2], a[3], a[4], a[5]};
  // The weight [C, 1, kh, kw] as [kh * kw][C], so that each tap's channels are contiguous.
  at::Tensor taps = Memo<at::Tensor>(PackKey{DataOf(w), Fingerprint(w), {C, g.kh, g.kw}}, [&] {
    return View(w).reshape({C, g.kh * g.kw}).t().contiguous();
  });
  const float* xp = static_cast<const float*>(DataOf(x));
  const float* wp = taps.data_ptr<float>();
  const float* bp = bias ? static_cast<const float*>(DataOf(bias)) : nullptr;
  const float* op = other ? static_cast<const float*>(DataOf(other)) : nullptr;
  float* yp = static_cast<float*>(DataOf(out));
  int clamp = unary == 1 || unary == 2 ? int(unary) : 0;
  at::parallel_for(0, x->shape[0] * g.OH, 1, [&](int64_t b, int64_t e) { DepthwiseRows(xp, wp, bp, op, yp, g, clamp, b, e); });
  return true;
}

}  // namespace torchtvm

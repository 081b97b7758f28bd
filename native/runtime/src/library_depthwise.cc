// Depthwise convolution (one input channel per output channel, float32, NHWC) as a loop of the
// runtime's own, vectorized over channels: oneDNN's depthwise convolution spends some 40-80 us per
// call on the small activations of mobile nets (bench:peers' depthwise net and MobileNetV3, 2x16x32x32
// to 1x576x7x7), where the arithmetic is a few microseconds. Bias, a residual and relu / relu6 /
// hardswish / hardsigmoid are applied in the same pass, in registers.
//
// Compiled once per ISA (TORCHTVM_ISA_DISPATCH, so TORCHTVM_MAX_CPU_ISA caps it): a vector is one
// register of the ISA (16 floats on AVX-512, 8 on AVX2, 4 on SSE), so the 9 taps of a 3x3 kernel
// and 4 accumulators fit AVX2's 16 registers without spilling. Four output columns are computed at
// once, so 4 independent FMA chains hide the FMA latency that one chain per pixel waits on. Rows
// with "same" padding whose width is a multiple of 7 or 8 (a mobile net's 7x7, 8x8 stages and their
// multiples; 14 and 16 on AVX-512) run in groups of that many chains instead (WideGroup), with
// the taps outermost on AVX-512 and sliding along the input row on AVX2, one thread: 2x128x8x8 3x3 under the AVX2 cap 8.3 -> 4.4 us, natively 4.7 ->
// 3.0; 2x576x7x7 5x5 48 -> 25 and 29 -> 17; 2x64x16x16 3x3 under the cap 11.7 -> 9.2; natively
// 2x240x14x14 5x5 44 -> 27 and 2x16x32x32 3x3 8.2 -> 6.0 us.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu_isa.h"
#include "library_kernels.h"
#include "vector_math.h"

namespace torchtvm {
namespace {

struct DepthwiseGeometry {
  int64_t H, W, C, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw;
};

// One output pixel by the generic path (any kernel size, padding checked per tap).
template <int L>
__attribute__((always_inline)) inline typename Vec<L>::type Pixel(const float* __restrict__ x, const float* __restrict__ w,
                                                                   const DepthwiseGeometry& g, int64_t n, int64_t oh,
                                                                   int64_t ow, int64_t c0, typename Vec<L>::type acc) {
  for (int64_t i = 0; i < g.kh; ++i) {
    int64_t ih = oh * g.sh - g.ph + i * g.dh;
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t j = 0; j < g.kw; ++j) {
      int64_t iw = ow * g.sw - g.pw + j * g.dw;
      if (iw < 0 || iw >= g.W) continue;
      acc += Load<L>(x + ((n * g.H + ih) * g.W + iw) * g.C + c0) * Load<L>(w + (i * g.kw + j) * g.C + c0);
    }
  }
  return acc;
}

// Output columns [ow, ow + U) of a KxK depthwise row at stride S (dilation 1): column u's tap j
// reads input pixel u * S + j of the window, so a window of (U - 1) * S + K pixels per input row
// serves all U * K of that row's FMAs, in U independent chains. xr[i] points at input column -pw
// of row i. Checked: the group touches the padding or the row's end, so each window pixel outside
// [0, W) reads as zero (one test per pixel, not per FMA) and only columns below OW are written.
template <int L, int K, int S, int U, bool Checked, typename Finish>
__attribute__((always_inline)) inline void Group(const float* const xr[K], const bool valid[K],
                                                  const typename Vec<L>::type taps[K * K], typename Vec<L>::type b,
                                                  int64_t C, int64_t ow, int64_t pw, int64_t W, int64_t OW,
                                                  Finish& finish) {
  using V = typename Vec<L>::type;
  constexpr int kWindow = (U - 1) * S + K;
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = b;
  for (int i = 0; i < K; ++i) {
    if (!valid[i]) continue;
    const float* p = xr[i] + ow * S * C;
    V win[kWindow];
    for (int k = 0; k < kWindow; ++k) {
      if (Checked) {
        int64_t iw = ow * S + k - pw;
        win[k] = iw >= 0 && iw < W ? Load<L>(p + k * C) : V{};
      } else {
        win[k] = Load<L>(p + k * C);
      }
    }
    for (int j = 0; j < K; ++j)
      for (int u = 0; u < U; ++u) acc[u] += win[u * S + j] * taps[i * K + j];
  }
  for (int u = 0; u < U; ++u)
    if (!Checked || ow + u < OW) finish(ow + u, acc[u]);
}

// A whole output row, 4 columns at a time: the groups whose taps all fall inside the image
// ([lo, hi)) unchecked, the border groups and the last partial group checked.
template <int L, int K, int S, typename Finish>
__attribute__((always_inline)) inline void Row4(const float* const xr[K], const bool valid[K],
                                                const typename Vec<L>::type taps[K * K], typename Vec<L>::type b,
                                                int64_t C, int64_t lo, int64_t hi, int64_t pw, int64_t W, int64_t OW,
                                                Finish& finish) {
  constexpr int U = 4;  // 8 columns measured no faster on AVX-512 and slower on AVX2 (spills)
  for (int64_t ow = 0; ow < OW; ow += U) {
    if (ow >= lo && ow + U <= hi) Group<L, K, S, U, false>(xr, valid, taps, b, C, ow, pw, W, OW, finish);
    else Group<L, K, S, U, true>(xr, valid, taps, b, C, ow, pw, W, OW, finish);
  }
}

// Output columns [ow, ow + U) of a KxK row at stride S, U (7 to 16) independent multiply-add chains,
// where Group's 4 wait on their latency. Left / Right: the group starts / ends the row of an input
// S * OW wide with "same" padding (K - 1) / 2, and the taps that fall on the padding are dropped at
// compile time. Two orders, by the register file (both measured on both ISAs):
// - taps outermost (32 registers, AVX-512): each tap's vector loaded once for the U columns, each
//   input pixel an operand of its multiply-add;
// - Sliding (16 registers): a kernel row's K taps in registers and each input pixel of the row
//   loaded once for the taps it meets; taps outermost there spilled accumulators (AVX2: 2x64x16x16
//   8.3 -> 7.3 us, 2x240x14x14 5x5 48 -> 45 us; on AVX-512 Sliding was 6-26% slower).
template <int L, int K, int S, int U, bool Left, bool Right, bool Sliding, typename Finish>
__attribute__((always_inline)) inline void WideGroup(const float* const xr[K], const bool valid[K], const float* __restrict__ w,
                                                     typename Vec<L>::type b, int64_t C, int64_t ow, Finish& finish) {
  using V = typename Vec<L>::type;
  constexpr int pad = (K - 1) / 2;
  // The window's columns, from input column ow * S - pad, that are not padding.
  constexpr auto inside = [](int col) { return !(Left && col < pad) && !(Right && col - pad >= S * U); };
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = b;
  for (int i = 0; i < K; ++i) {
    if (!valid[i]) continue;
    const float* p = xr[i] + ow * S * C;
    if constexpr (Sliding) {
      V t[K];
#pragma GCC unroll 5
      for (int j = 0; j < K; ++j) t[j] = Load<L>(w + (i * K + j) * C);
#pragma GCC unroll 40
      for (int col = 0; col < (U - 1) * S + K; ++col) {
        if (!inside(col)) continue;
        const V x = Load<L>(p + col * C);
#pragma GCC unroll 5
        for (int j = 0; j < K; ++j)
          if (col >= j && (col - j) % S == 0 && (col - j) / S < U) acc[(col - j) / S] += x * t[j];
      }
    } else {
#pragma GCC unroll 5
      for (int j = 0; j < K; ++j) {
        const V t = Load<L>(w + (i * K + j) * C);
#pragma GCC unroll 16
        for (int u = 0; u < U; ++u)
          if (inside(u * S + j)) acc[u] += Load<L>(p + (u * S + j) * C) * t;
      }
    }
  }
  for (int u = 0; u < U; ++u) finish(ow + u, acc[u]);
}

// Output items [begin, end) of a flattened (n, oh, channel block): w is [kh * kw][C], each block of
// L channels one vector. When C is not a multiple of L the last block starts at C - L and overlaps
// the one before: those channels are computed twice, to the same values, so every block is a full
// vector (DepthwiseConv refuses the one case where that would be wrong: a residual read from the
// output buffer itself). `other` may be `out` itself (TVM may run the residual add in place): each
// pixel's residual is read before that pixel is written. K = 3 or 5 (mobile nets' kernels) at stride 1
// or 2: every column runs 4 at a time (Row4), the taps loaded once per item (in registers for 3x3);
// other strides and dilations run their interior that way too and their borders, like other kernel
// sizes (K = 0), by the generic path. U > 0 (GroupWidth): rows in WideGroup groups of U columns,
// one group a row or, Tiled, several, in WideGroup's Sliding order or not.
template <int L, int K, int U, bool Tiled, bool Sliding>
__attribute__((always_inline)) inline void Items(const float* __restrict__ x, const float* __restrict__ w,
                                                 const float* __restrict__ bias, const float* other, float* out,
                                                 const DepthwiseGeometry& g, int unary, int64_t begin, int64_t end,
                                                 int64_t out_row0) {
  using V = typename Vec<L>::type;
  constexpr int KK = K ? K : 1;
  const int64_t C = g.C, blocks = (C + L - 1) / L;
  // Columns [lo, hi) read no padding: ow * sw - pw >= 0 and ow * sw - pw + (kw - 1) * dw < W.
  const int64_t lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t last = g.W - 1 + g.pw - (g.kw - 1) * g.dw;
  const int64_t hi = K && last >= 0 ? std::max(lo, std::min(g.OW, last / g.sw + 1)) : lo;
  for (int64_t item = begin; item < end; ++item) {
    int64_t row = item / blocks, blk = item % blocks;
    int64_t n = row / g.OH, oh = row % g.OH;
    int64_t c0 = std::min(blk * L, C - L);
    V b = bias ? Load<L>(bias + c0) : V{};
    float* orow = out + (row - out_row0) * g.OW * C + c0;
    const float* rrow = other ? other + (n * g.OH + oh) * g.OW * C + c0 : nullptr;
    // Lambdas marked always_inline: out of line they would be compiled for the baseline ISA and
    // take their vector argument by the baseline ABI, which the AVX callers do not follow.
    auto finish = [&](int64_t ow, V acc) __attribute__((always_inline)) {
      if (rrow) acc += Load<L>(rrow + ow * C);
      acc = Activate<L>(acc, unary);
      std::memcpy(orow + ow * C, &acc, sizeof(acc));
    };
    auto generic = [&](int64_t ow) __attribute__((always_inline)) { finish(ow, Pixel<L>(x, w, g, n, oh, ow, c0, b)); };
    const bool rows4 = K != 0 && g.dw == 1 && (g.sw == 1 || g.sw == 2);
    // The input row under each kernel row (a padding row: valid false, any row's pointer).
    const float* xr[KK];
    bool valid[KK];
    for (int i = 0; i < KK; ++i) {
      int64_t ih = oh * g.sh - g.ph + i * g.dh;
      valid[i] = ih >= 0 && ih < g.H;
      xr[i] = x + ((n * g.H + (valid[i] ? ih : 0)) * g.W - g.pw) * C + c0;
    }
    if constexpr (U > 0) {
      auto groups = [&]<int S>() __attribute__((always_inline)) {
        if constexpr (!Tiled) {
          WideGroup<L, KK, S, U, true, true, Sliding>(xr, valid, w + c0, b, C, 0, finish);
        } else {
          WideGroup<L, KK, S, U, true, false, Sliding>(xr, valid, w + c0, b, C, 0, finish);
          for (int64_t ow = U; ow + U < g.OW; ow += U) WideGroup<L, KK, S, U, false, false, Sliding>(xr, valid, w + c0, b, C, ow, finish);
          WideGroup<L, KK, S, U, false, true, Sliding>(xr, valid, w + c0, b, C, g.OW - U, finish);
        }
      };
      if (g.sw == 1) groups.template operator()<1>();
      else groups.template operator()<2>();
      continue;
    }
    if (K == 0 || (hi == lo && !rows4)) {
      for (int64_t ow = 0; ow < g.OW; ++ow) generic(ow);
      continue;
    }
    V taps[KK * KK];
    for (int i = 0; i < KK; ++i)
      for (int j = 0; j < KK; ++j) taps[i * KK + j] = valid[i] ? Load<L>(w + (i * KK + j) * C + c0) : V{};
    if (rows4) {
      // Stride 1 or 2, no dilation: each pixel of the window is loaded once and feeds every FMA it
      // takes part in, border columns included (7x7 images are mostly border at 5x5).
      if (g.sw == 1) Row4<L, KK, 1>(xr, valid, taps, b, C, lo, hi, g.pw, g.W, g.OW, finish);
      else Row4<L, KK, 2>(xr, valid, taps, b, C, lo, hi, g.pw, g.W, g.OW, finish);
      continue;
    }
    // Dilated or stride > 2: the interior 4 columns at a time, the borders by the generic path.
    for (int64_t ow = 0; ow < lo; ++ow) generic(ow);
    const int64_t step = g.sw * C, tap = g.dw * C;
    int64_t ow = lo;
    for (; ow + 4 <= hi; ow += 4) {
      V acc[4] = {b, b, b, b};
      for (int i = 0; i < KK; ++i) {
        if (!valid[i]) continue;
        const float* p = xr[i] + ow * step;
        for (int j = 0; j < KK; ++j)
          for (int u = 0; u < 4; ++u) acc[u] += Load<L>(p + u * step + j * tap) * taps[i * KK + j];
      }
      for (int u = 0; u < 4; ++u) finish(ow + u, acc[u]);
    }
    for (; ow < hi; ++ow) {
      V acc = b;
      for (int i = 0; i < KK; ++i) {
        if (!valid[i]) continue;
        const float* p = xr[i] + ow * step;
        for (int j = 0; j < KK; ++j) acc += Load<L>(p + j * tap) * taps[i * KK + j];
      }
      finish(ow, acc);
    }
    for (; ow < g.OW; ++ow) generic(ow);
  }
}

template <int L, int U, bool Tiled, bool Sliding>
__attribute__((always_inline)) inline void ItemsAnyKernel(const float* __restrict__ x, const float* __restrict__ w,
                                                          const float* __restrict__ bias, const float* other, float* out,
                                                          const DepthwiseGeometry& g, int unary, int64_t begin, int64_t end,
                                                          int64_t out_row0) {
  if (g.kh == 3 && g.kw == 3) Items<L, 3, U, Tiled, Sliding>(x, w, bias, other, out, g, unary, begin, end, out_row0);
  else if (g.kh == 5 && g.kw == 5) Items<L, 5, U, Tiled, Sliding>(x, w, bias, other, out, g, unary, begin, end, out_row0);
  else if constexpr (U == 0) Items<L, 0, 0, false, false>(x, w, bias, other, out, g, unary, begin, end, out_row0);
}

// The vector width: the ISA's register (16 / 8 / 4 floats), narrower when C is smaller than that.
// `out` holds the output rows from out_row0 on (0: the whole output; the fused depthwise-pointwise
// call passes a thread's buffer of a few rows).
template <Isa I, int U = 0, bool Tiled = false>
__attribute__((always_inline)) inline void ItemsOfWidth(const float* x, const float* w, const float* bias, const float* other,
                                                        float* out, const DepthwiseGeometry& g, int unary, int64_t begin,
                                                        int64_t end, int64_t out_row0) {
  constexpr int lanes = IsaLanes(I);
  constexpr bool sliding = I != Isa::kAvx512;  // 16 vector registers (WideGroup)
  if (lanes >= 16 && g.C >= 16) ItemsAnyKernel<16, U, Tiled, sliding>(x, w, bias, other, out, g, unary, begin, end, out_row0);
  else if (lanes >= 8 && g.C >= 8) ItemsAnyKernel<8, U, Tiled, sliding>(x, w, bias, other, out, g, unary, begin, end, out_row0);
  else ItemsAnyKernel<4, U, Tiled, sliding>(x, w, bias, other, out, g, unary, begin, end, out_row0);
}

template <Isa I>
__attribute__((always_inline)) inline void RowItemsBody(const float* x, const float* w, const float* bias, const float* other,
                                                        float* out, const DepthwiseGeometry& g, int unary, int64_t begin,
                                                        int64_t end, int64_t out_row0) {
  ItemsOfWidth<I>(x, w, bias, other, out, g, unary, begin, end, out_row0);
}

// The width U of the groups a row splits into (WideGroup): rows of a 3x3 or
// 5x5 kernel at stride 1 or 2 with "same" padding over an input of S * OW columns, OW a multiple of
// U: 16 or 14 on AVX-512 (32 registers hold that many accumulators), 8 or 7 (a mobile net's 8x8,
// 7x7 stages, and their multiples); 0 for any other row (Row4's window of 4).
int GroupWidth(const DepthwiseGeometry& g, Isa isa) {
  if (!(g.kh == g.kw && (g.kw == 3 || g.kw == 5) && g.dh == 1 && g.dw == 1 && g.sw == g.sh && (g.sw == 1 || g.sw == 2) &&
        g.pw == (g.kw - 1) / 2 && g.W == g.sw * g.OW))
    return 0;
  for (int u : {16, 14, 8, 7})
    if ((u <= 8 || isa == Isa::kAvx512) && g.OW % u == 0) return u;
  return 0;
}

// Each row one group or, Tiled, several.
template <Isa I, bool Tiled>
__attribute__((always_inline)) inline void GroupItems(const float* x, const float* w, const float* bias, const float* other,
                                                      float* out, const DepthwiseGeometry& g, int unary, int64_t begin,
                                                      int64_t end, int64_t out_row0) {
  switch (GroupWidth(g, I)) {
    case 7: ItemsOfWidth<I, 7, Tiled>(x, w, bias, other, out, g, unary, begin, end, out_row0); break;
    case 8: ItemsOfWidth<I, 8, Tiled>(x, w, bias, other, out, g, unary, begin, end, out_row0); break;
    case 14: if constexpr (I == Isa::kAvx512) ItemsOfWidth<I, 14, Tiled>(x, w, bias, other, out, g, unary, begin, end, out_row0); break;
    case 16: if constexpr (I == Isa::kAvx512) ItemsOfWidth<I, 16, Tiled>(x, w, bias, other, out, g, unary, begin, end, out_row0); break;
  }
}

template <Isa I>
__attribute__((always_inline)) inline void WholeRowItemsBody(const float* x, const float* w, const float* bias,
                                                             const float* other, float* out, const DepthwiseGeometry& g,
                                                             int unary, int64_t begin, int64_t end, int64_t out_row0) {
  GroupItems<I, false>(x, w, bias, other, out, g, unary, begin, end, out_row0);
}

template <Isa I>
__attribute__((always_inline)) inline void TiledRowItemsBody(const float* x, const float* w, const float* bias,
                                                             const float* other, float* out, const DepthwiseGeometry& g,
                                                             int unary, int64_t begin, int64_t end, int64_t out_row0) {
  GroupItems<I, true>(x, w, bias, other, out, g, unary, begin, end, out_row0);
}

// Three functions: each path inlined beside another cost that one 5-25% (registers, layout).
TORCHTVM_ISA_DISPATCH(void, RowItems,
                      (const float* x, const float* w, const float* bias, const float* other, float* out,
                       const DepthwiseGeometry& g, int unary, int64_t begin, int64_t end, int64_t out_row0),
                      (x, w, bias, other, out, g, unary, begin, end, out_row0))
TORCHTVM_ISA_DISPATCH(void, WholeRowItems,
                      (const float* x, const float* w, const float* bias, const float* other, float* out,
                       const DepthwiseGeometry& g, int unary, int64_t begin, int64_t end, int64_t out_row0),
                      (x, w, bias, other, out, g, unary, begin, end, out_row0))
TORCHTVM_ISA_DISPATCH(void, TiledRowItems,
                      (const float* x, const float* w, const float* bias, const float* other, float* out,
                       const DepthwiseGeometry& g, int unary, int64_t begin, int64_t end, int64_t out_row0),
                      (x, w, bias, other, out, g, unary, begin, end, out_row0))

// Output items [begin, end) (Items), by whichever path takes the geometry.
void DepthwiseItems(const float* x, const float* w, const float* bias, const float* other, float* out,
                    const DepthwiseGeometry& g, int unary, int64_t begin, int64_t end, int64_t out_row0) {
  const int u = GroupWidth(g, KernelIsa());
  if (u == 0) RowItems(x, w, bias, other, out, g, unary, begin, end, out_row0);
  else if (u == g.OW) WholeRowItems(x, w, bias, other, out, g, unary, begin, end, out_row0);
  else TiledRowItems(x, w, bias, other, out, g, unary, begin, end, out_row0);
}

int VectorLanes(int64_t C) {
  int isa_lanes = IsaLanes(KernelIsa());
  return C >= 16 && isa_lanes >= 16 ? 16 : C >= 8 && isa_lanes >= 8 ? 8 : 4;
}

}  // namespace

bool DepthwiseFusesUnary(int64_t unary) { return FusesUnary(unary); }

namespace {

// Whether the own loop takes a depthwise convolution of x (NHWC) by w into out, with or without a
// residual `other` (a: torchtvm.conv2d's attributes).
bool DepthwiseApplies(const DLTensor* x, const DLTensor* w, const DLTensor* other, const DLTensor* out, const tvm::ffi::Shape& a) {
  int64_t C = x->shape[3];
  // C < 4 has no full vector; an in-place residual cannot take the overlapping last block.
  bool overlap_unsafe = C % VectorLanes(C) != 0 && other != nullptr && DataOf(other) == DataOf(out);
  return ScalarTypeOf(x) == at::kFloat && C >= 4 && !overlap_unsafe && a[6] == C && out->shape[3] == C && w->ndim == 4 &&
         w->shape[0] == C && w->shape[1] == 1;
}

DepthwiseGeometry GeometryOf(const DLTensor* x, const DLTensor* w, const DLTensor* out, const tvm::ffi::Shape& a) {
  return DepthwiseGeometry{x->shape[1], x->shape[2], x->shape[3], out->shape[1], out->shape[2], w->shape[2], w->shape[3],
                           a[0], a[1], a[2], a[3], a[4], a[5]};
}

// The weight [C, 1, kh, kw] as [kh * kw][C], so that each tap's channels are contiguous.
at::Tensor Taps(const DLTensor* w, const DepthwiseGeometry& g) {
  return Memo<at::Tensor>(PackKey{DataOf(w), Fingerprint(w), {g.C, g.kh, g.kw}}, [&] {
    return View(w).reshape({g.C, g.kh * g.kw}).t().contiguous();
  });
}

const float* FloatsOf(const DLTensor* t) { return t ? static_cast<const float*>(DataOf(t)) : nullptr; }

}  // namespace

bool DepthwiseConv(const DLTensor* x, const DLTensor* w, const DLTensor* bias, const DLTensor* other, DLTensor* out,
                   const tvm::ffi::Shape& a, int64_t unary) {
  if (!DepthwiseApplies(x, w, other, out, a)) return false;
  DebugDelay("depthwise");
  DepthwiseGeometry g = GeometryOf(x, w, out, a);
  at::Tensor taps = Taps(w, g);
  const float* xp = FloatsOf(x);
  const float* wp = taps.data_ptr<float>();
  const float* bp = FloatsOf(bias);
  const float* op = FloatsOf(other);
  float* yp = static_cast<float*>(DataOf(out));
  int fused = DepthwiseFusesUnary(unary) ? int(unary) : kNone;
  // Work items are (image row, channel block), so that a 7x7 image splits evenly over the threads.
  // A thread gets at least ~256 output vectors: below that, waking a thread costs more than it saves.
  int lanes = VectorLanes(g.C);
  int64_t blocks = (g.C + lanes - 1) / lanes, items = x->shape[0] * g.OH * blocks;
  int64_t grain = std::max<int64_t>(1, 256 / std::max<int64_t>(1, g.OW));
  at::parallel_for(0, items, grain, [&](int64_t b, int64_t e) { DepthwiseItems(xp, wp, bp, op, yp, g, fused, b, e, 0); });
  return true;
}

bool DepthwisePointwise(const DLTensor* x, const DLTensor* wd, const DLTensor* bd, const tvm::ffi::Shape& a, int64_t unary_d,
                        const DLTensor* wp, const DLTensor* bp, const DLTensor* other, DLTensor* out, int64_t unary_p) {
  const int64_t N = x->shape[0], C = x->shape[3], G = out->shape[3];
  if (out->ndim != 4 || !DepthwiseFusesUnary(unary_d) || !SmallGemmFusesUnary(unary_p) || ScalarTypeOf(wp) != at::kFloat ||
      wp->ndim != 4 || wp->shape[1] != C || wp->shape[0] != G || wp->shape[2] != 1 || wp->shape[3] != 1)
    return false;
  // The depthwise output's geometry: the pointwise convolution keeps the pixels.
  int64_t mid_shape[4] = {N, out->shape[1], out->shape[2], C};
  DLTensor mid = *x;
  mid.shape = mid_shape;
  if (!DepthwiseApplies(x, wd, nullptr, &mid, a)) return false;
  const int64_t pixels = N * out->shape[1] * out->shape[2];
  if ((other && (DataOf(other) == DataOf(out) || NumelOf(other) != pixels * G)) || (bd && NumelOf(bd) != C) || (bp && NumelOf(bp) != G))
    return false;
  DebugDelay("depthwise_pointwise");
  DepthwiseGeometry g = GeometryOf(x, wd, &mid, a);
  at::Tensor taps = Taps(wd, g);
  at::Tensor packed = PackedSmallGemmWeight(wp, C, G, true);
  const float *xp = FloatsOf(x), *tp = taps.data_ptr<float>(), *bdp = FloatsOf(bd), *pp = packed.data_ptr<float>(),
              *bpp = FloatsOf(bp), *op = FloatsOf(other);
  float* yp = static_cast<float*>(DataOf(out));
  const int64_t lanes = VectorLanes(C), blocks = (C + lanes - 1) / lanes, rows = N * g.OH;
  // A thread takes a few output rows at a time: their depthwise values (about 32 KB, in L1) go to
  // its own buffer and straight into the pointwise GEMM, not through memory to a second call. Every
  // thread gets rows, though, even where they would fit one buffer (a 2x8x8 output).
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t per_chunk = std::max<int64_t>(1, std::min((int64_t(8192) / C) / g.OW, (rows + threads - 1) / threads));
  const int64_t chunks = (rows + per_chunk - 1) / per_chunk;
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> buf;
    buf.resize(per_chunk * g.OW * C);
    for (int64_t chunk = b; chunk < e; ++chunk) {
      int64_t r0 = chunk * per_chunk, r1 = std::min(rows, r0 + per_chunk);
      DepthwiseItems(xp, tp, bdp, nullptr, buf.data(), g, int(unary_d), r0 * blocks, r1 * blocks, r0);
      SmallGemmStrided(buf.data(), C, pp, yp + r0 * g.OW * G, G, (r1 - r0) * g.OW, C, G, bpp,
                       op ? op + r0 * g.OW * G : nullptr, unary_p);
    }
  });
  return true;
}

}  // namespace torchtvm

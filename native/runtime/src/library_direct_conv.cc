// A convolution with few values per output pixel (an image net's stem: 3 channels x 3x3 = 27; a
// Conv1d front end: 1 channel x 80 taps) computed directly on the NHWC input, or on the model's
// NCHW input where it lies (a stem: the transpose TVM ran before it goes; a 2x3x64x64 stem with it
// 40 us, without 32): each output pixel's channels are vectors of the ISA's width, and each input
// value is broadcast into the multiply-adds of the vectors it feeds; nothing is copied. On small
// inputs oneDNN's convolution costs more per call than the arithmetic (a 2x3x64x64 stem: 45 us, here 20 us); on large ones the
// two are level (both load-bound on the broadcasts), and placement keeps whichever times faster.
//
// Register blocking per ISA (TORCHTVM_ISA_DISPATCH, so TORCHTVM_MAX_CPU_ISA caps it): T output pixels
// x P vectors of output channels accumulate in registers over the kh x kw x Cin taps, the tap's P
// weight vectors loaded once for the T pixels: up to 6 x 4 (24 of AVX-512's 32 registers), 6 x 2 on
// AVX2 (12 of 16). Pixels whose taps all fall inside the image run T at a time without bounds
// checks; the border pixels one at a time with them. Bias, a residual and relu / relu6 / hardswish /
// hardsigmoid are applied in registers.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

#include "cpu_isa.h"
#include "library_kernels.h"
#include "vector_math.h"

namespace torchtvm {
namespace {

struct DirectGeometry {
  int64_t H, W, Cin, OH, OW, Cout, Cpad, kh, kw, sh, sw, ph, pw, dh, dw;
  // Element strides of the input's channel, column and row: NHWC (1, Cin, W * Cin) or, for a model
  // input read where it lies, NCHW (H * W, 1, W).
  int64_t xc, xw, xh;
};

// Output pixels [ow, ow + T) of row (n, oh), channels [c0, c0 + P * L) (the last vector may run past
// Cout: w and bias are padded to Cpad, and the store stops at Cout). `checked`: some tap of some
// pixel may fall outside the image (then T is 1).
template <int L, int T, int P, bool checked, int XS = 0, int KW = 0, int CIN = 0>
__attribute__((always_inline)) inline void Pixels(const float* __restrict__ x, const float* __restrict__ w,
                                                  const float* __restrict__ bias, const float* other, float* out,
                                                  const DirectGeometry& g, int64_t n, int64_t oh, int64_t ow, int64_t c0,
                                                  int unary) {
  using V = typename Vec<L>::type;
  // The distance between neighbouring pixels' inputs, a constant where the caller knows it (the
  // T pixels' loads then take immediate offsets, not one index register each, which spilled).
  const int64_t step = XS ? XS : g.sw * g.xw;
  // Likewise the kernel's width and input channels (a mobile net's stem: 3 x 3 taps of 3 channels):
  // the tap loops then unroll, without their short-trip-count branches (10.9 -> 10.1 us on a
  // 2x3x64x64 stem to 16 channels).
  const int64_t kw = KW ? KW : g.kw, cin = CIN ? CIN : g.Cin;
  V acc[T][P];
  for (int p = 0; p < P; ++p) {
    V b = bias ? Load<L>(bias + c0 + p * L) : V{};
    for (int t = 0; t < T; ++t) acc[t][p] = b;
  }
  for (int64_t i = 0; i < g.kh; ++i) {
    int64_t ih = oh * g.sh - g.ph + i * g.dh;
    if (ih < 0 || ih >= g.H) continue;
    const float* xrow = x + n * g.H * g.W * g.Cin + ih * g.xh;
    if (!checked && g.dw == 1 && g.xc == 1) {
      // All taps inside the image and no dilation: a kernel row's kw x Cin values are contiguous
      // in the input, one loop over them (a stem's 3 x 3 channels: 9 iterations, not 3 of 3).
      const float* xp = xrow + (ow * g.sw - g.pw) * cin;
      const float* wp = w + i * kw * cin * g.Cpad + c0;
      for (int64_t kk = 0; kk < kw * cin; ++kk) {
        V wv[P];
        for (int p = 0; p < P; ++p) wv[p] = Load<L>(wp + kk * g.Cpad + p * L);
        for (int t = 0; t < T; ++t) {
          const float xs = xp[t * step + kk];
          for (int p = 0; p < P; ++p) acc[t][p] += xs * wv[p];
        }
      }
      continue;
    }
    for (int64_t j = 0; j < kw; ++j) {
      int64_t iw0 = ow * g.sw - g.pw + j * g.dw;
      if (checked && (iw0 < 0 || iw0 >= g.W)) continue;
      const float* xp = xrow + iw0 * g.xw;
      const float* wp = w + (i * kw + j) * cin * g.Cpad + c0;
      for (int64_t c = 0; c < cin; ++c) {
        V wv[P];
        for (int p = 0; p < P; ++p) wv[p] = Load<L>(wp + c * g.Cpad + p * L);
        for (int t = 0; t < T; ++t) {
          const float xs = xp[t * step + c * g.xc];
          for (int p = 0; p < P; ++p) acc[t][p] += xs * wv[p];
        }
      }
    }
  }
  const int64_t valid = std::min<int64_t>(P * L, g.Cout - c0);
  for (int t = 0; t < T; ++t) {
    int64_t at = ((n * g.OH + oh) * g.OW + ow + t) * g.Cout + c0;
    for (int p = 0; p < P; ++p) {
      int64_t lanes = std::min<int64_t>(L, valid - p * L);
      if (lanes <= 0) break;
      V v = acc[t][p];
      if (lanes == L) {  // a whole vector: fixed-size copies, which compile to vector moves
        if (other) v += Load<L>(other + at + p * L);
        v = Activate<L>(v, unary);
        std::memcpy(out + at + p * L, &v, sizeof(v));
        continue;
      }
      if (other) {
        float r[L] = {};
        std::memcpy(r, other + at + p * L, lanes * sizeof(float));
        V rv;
        std::memcpy(&rv, r, sizeof(rv));
        v += rv;
      }
      v = Activate<L>(v, unary);
      std::memcpy(out + at + p * L, &v, lanes * sizeof(float));
    }
  }
}

// One output row, channels [c0, c0 + P * L): the interior pixels T at a time, and what is left of
// them as one more group of T ending at the last interior pixel (recomputing a few, to the same
// values) or, where a residual is read from the output itself, 4, 2 and 1 at a time: one pixel
// alone is a chain of kh * kw * Cin dependent multiply-adds (the 7 left over from a 32-wide stem row
// took as long as the other 24). The border pixels one by one.
template <int L, int T, int P, int XS = 0, int KW = 0, int CIN = 0>
__attribute__((always_inline)) inline void Row(const float* x, const float* w, const float* bias, const float* other,
                                               float* out, const DirectGeometry& g, int64_t n, int64_t oh, int64_t c0,
                                               int unary) {
  const int64_t lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t last = g.W - 1 + g.pw - (g.kw - 1) * g.dw;
  const int64_t hi = last >= 0 ? std::max(lo, std::min(g.OW, last / g.sw + 1)) : lo;
  int64_t ow = 0;
  for (; ow < lo; ++ow) Pixels<L, 1, P, true>(x, w, bias, other, out, g, n, oh, ow, c0, unary);
  for (; ow + T <= hi; ow += T) Pixels<L, T, P, false, XS, KW, CIN>(x, w, bias, other, out, g, n, oh, ow, c0, unary);
  if (ow < hi && hi - T >= lo && other != out) {
    Pixels<L, T, P, false, XS, KW, CIN>(x, w, bias, other, out, g, n, oh, hi - T, c0, unary);
    ow = hi;
  }
  if constexpr (T > 4)
    for (; ow + 4 <= hi; ow += 4) Pixels<L, 4, P, false, XS, KW, CIN>(x, w, bias, other, out, g, n, oh, ow, c0, unary);
  if constexpr (T > 2)
    for (; ow + 2 <= hi; ow += 2) Pixels<L, 2, P, false, XS, KW, CIN>(x, w, bias, other, out, g, n, oh, ow, c0, unary);
  for (; ow < hi; ++ow) Pixels<L, 1, P, false, XS, KW, CIN>(x, w, bias, other, out, g, n, oh, ow, c0, unary);
  for (; ow < g.OW; ++ow) Pixels<L, 1, P, true>(x, w, bias, other, out, g, n, oh, ow, c0, unary);
}

template <Isa I>
struct DirectBlocking {
  static constexpr int lanes = IsaLanes(I);
  static constexpr int max_vectors = I == Isa::kAvx512 ? 4 : 2;
};

// Items [begin, end) of (row, block of output channels); a block is max_vectors vectors but the
// last, which has as many as the remaining channels need.
template <Isa I>
__attribute__((always_inline)) inline void DirectItemsBody(const float* x, const float* w, const float* bias,
                                                           const float* other, float* out, const DirectGeometry& g,
                                                           int unary, int64_t begin, int64_t end) {
  using B = DirectBlocking<I>;
  constexpr int L = B::lanes, block = B::lanes * B::max_vectors;
  const int64_t cblocks = (g.Cout + block - 1) / block;
  for (int64_t item = begin; item < end; ++item) {
    int64_t row = item / cblocks, c0 = (item % cblocks) * block;
    int64_t n = row / g.OH, oh = row % g.OH;
    // T pixels x P vectors of accumulators, plus P weight vectors and a broadcast, within the
    // register file: 8 x 3 or 6 x 4 of AVX-512's 32, 6 x 2 of AVX2's 16.
    const int64_t step = g.sw * g.xw;
    const bool stem3 = g.kw == 3 && g.Cin == 3;
    switch (std::min<int64_t>(B::max_vectors, (g.Cout - c0 + L - 1) / L)) {
      case 1:
        // A mobile net's stem (16 or fewer output channels): the pixel step as a constant for the
        // common ones (an NCHW input at stride 1 or 2, an NHWC one of 3 channels) and a 3x3 kernel
        // over 3 channels unrolled.
        if (stem3 && step == 2) Row<L, 8, 1, 2, 3, 3>(x, w, bias, other, out, g, n, oh, c0, unary);
        else if (stem3 && step == 1) Row<L, 8, 1, 1, 3, 3>(x, w, bias, other, out, g, n, oh, c0, unary);
        else if (step == 1) Row<L, 8, 1, 1>(x, w, bias, other, out, g, n, oh, c0, unary);
        else if (step == 2) Row<L, 8, 1, 2>(x, w, bias, other, out, g, n, oh, c0, unary);
        else if (step == 3) Row<L, 8, 1, 3>(x, w, bias, other, out, g, n, oh, c0, unary);
        else if (step == 6) Row<L, 8, 1, 6>(x, w, bias, other, out, g, n, oh, c0, unary);
        else Row<L, 8, 1>(x, w, bias, other, out, g, n, oh, c0, unary);
        break;
      case 2:
        // AVX2's stem of 16 channels (2 vectors): the same constants as above.
        if (stem3 && step == 2) Row<L, (B::max_vectors >= 4 ? 8 : 6), 2, 2, 3, 3>(x, w, bias, other, out, g, n, oh, c0, unary);
        else if (stem3 && step == 1) Row<L, (B::max_vectors >= 4 ? 8 : 6), 2, 1, 3, 3>(x, w, bias, other, out, g, n, oh, c0, unary);
        else Row<L, (B::max_vectors >= 4 ? 8 : 6), 2>(x, w, bias, other, out, g, n, oh, c0, unary);
        break;
      case 3: Row<L, 8, (B::max_vectors >= 3 ? 3 : 2)>(x, w, bias, other, out, g, n, oh, c0, unary); break;
      // (ResNet's 7x7 stem to 64 channels measured 2% slower with its taps unrolled: left as it is)
      default: Row<L, 6, B::max_vectors>(x, w, bias, other, out, g, n, oh, c0, unary); break;
    }
  }
}

TORCHTVM_ISA_DISPATCH(void, DirectItems,
                      (const float* x, const float* w, const float* bias, const float* other, float* out,
                       const DirectGeometry& g, int unary, int64_t begin, int64_t end),
                      (x, w, bias, other, out, g, unary, begin, end))

}  // namespace

bool DirectConv(const DLTensor* x, const DLTensor* w, const DLTensor* bias, const DLTensor* other, DLTensor* out,
                const tvm::ffi::Shape& a, int64_t unary, bool nchw) {
  int64_t H = x->shape[nchw ? 2 : 1], W = x->shape[nchw ? 3 : 2], Cin = x->shape[nchw ? 1 : 3];
  int64_t Cout = out->shape[3], kh = w->shape[2], kw = w->shape[3];
  if (ScalarTypeOf(x) != at::kFloat || ScalarTypeOf(w) != at::kFloat || a[6] != 1 || w->shape[1] != Cin || kh * kw * Cin > 512)
    return false;
  int64_t lanes = IsaLanes(KernelIsa()), Cpad = (Cout + lanes - 1) / lanes * lanes;
  DirectGeometry g{H, W, Cin, out->shape[1], out->shape[2], Cout, Cpad, kh, kw, a[0], a[1], a[2], a[3], a[4], a[5],
                   nchw ? H * W : 1, nchw ? 1 : Cin, nchw ? W : W * Cin};
  // The weight [Cout, Cin, kh, kw] as [kh][kw][Cin][Cpad] (each tap's output channels contiguous,
  // zero-padded to whole vectors), and the bias padded alike.
  at::Tensor packed = Memo<at::Tensor>(PackKey{DataOf(w), Fingerprint(w), {Cout, Cin, kh, kw, Cpad, 8}}, [&] {
    at::Tensor t = at::zeros({kh, kw, Cin, Cpad}, at::kFloat);
    t.narrow(3, 0, Cout).copy_(View(w).permute({2, 3, 1, 0}));
    return t;
  });
  at::Tensor b;
  if (bias) {
    b = Memo<at::Tensor>(PackKey{DataOf(bias), Fingerprint(bias), {Cpad, 9}}, [&] {
      at::Tensor t = at::zeros({Cpad}, at::kFloat);
      t.narrow(0, 0, Cout).copy_(View(bias));
      return t;
    });
  }
  int fused = FusesUnary(unary) ? int(unary) : kNone;
  const int64_t block = lanes * (KernelIsa() == Isa::kAvx512 ? 4 : 2);  // DirectBlocking's
  int64_t items = x->shape[0] * g.OH * ((Cout + block - 1) / block);
  // A thread gets at least ~64K multiply-adds: below that, waking it costs more than it saves.
  int64_t per_item = std::max<int64_t>(1, g.OW * std::min(block, Cout) * kh * kw * Cin);
  int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / per_item);
  const float* xp = static_cast<const float*>(DataOf(x));
  const float* op = other ? static_cast<const float*>(DataOf(other)) : nullptr;
  float* yp = static_cast<float*>(DataOf(out));
  at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    DirectItems(xp, packed.data_ptr<float>(), bias ? b.data_ptr<float>() : nullptr, op, yp, g, fused, begin, end);
  });
  if (fused != unary) {
    at::Tensor o = View(out);
    ApplyUnary(o, unary);
  }
  return true;
}

}  // namespace torchtvm

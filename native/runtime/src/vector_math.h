// Scalar math written so that the compiler vectorizes the loops that call it (libm's expf is a
// call per element that no loop vectorizes), shared by the runtime's own kernels.
#pragma once

#include <cstdint>
#include <cstring>

namespace torchtvm {

// exp for float32: Cephes' range reduction and polynomial, within 2 ulp; NaN stays NaN, overflow
// saturates.
__attribute__((always_inline)) inline float ExpF(float x) {
  x = x > 88.0f ? 88.0f : x;
  x = x < -88.0f ? -88.0f : x;
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  x = x - n * 0.693359375f + n * 2.12194440e-4f;
  float y = ((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x + 4.1665795894e-2f) * x +
             1.6666665459e-1f) * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

// Epilogue codes as the engine numbers them (backend/library.py UNARY_CODES); the own kernels apply
// these five in registers (Activate), the rest by ApplyUnary after the loop.
enum Unary : int { kNone = 0, kRelu = 1, kRelu6 = 2, kHardswish = 5, kHardsigmoid = 9 };

template <int L>
struct Vec {
  typedef float type __attribute__((vector_size(L * sizeof(float))));
};

template <int L>
__attribute__((always_inline)) inline typename Vec<L>::type Load(const float* p) {
  typename Vec<L>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// A vector of L floats (GCC's vector extension: the ISA of the calling function decides the
// instructions), and the epilogue, written as ATen's vectorized kernels compute it (hardswish: x * min(max(x + 3, 0),
// 6) / 6), so that values, NaN and inf come out as in eager PyTorch: NaN fails every compare and
// stays NaN.
template <int L>
__attribute__((always_inline)) inline typename Vec<L>::type Activate(typename Vec<L>::type v, int unary) {
  using V = typename Vec<L>::type;
  const V zero{}, three = zero + 3.f, six = zero + 6.f;
  switch (unary) {
    case kRelu: return v < zero ? zero : v;
    case kRelu6: v = v < zero ? zero : v; return v > six ? six : v;
    case kHardswish: {
      V t = v + three;
      t = t < zero ? zero : t;
      t = t > six ? six : t;
      return v * t / six;
    }
    case kHardsigmoid: {
      V t = v + three;
      t = t < zero ? zero : t;
      t = t > six ? six : t;
      return t / six;
    }
    default: return v;
  }
}

inline bool FusesUnary(int64_t unary) {
  return unary == kNone || unary == kRelu || unary == kRelu6 || unary == kHardswish || unary == kHardsigmoid;
}

}  // namespace torchtvm

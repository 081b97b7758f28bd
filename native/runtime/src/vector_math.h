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

// exp that overflows to inf and underflows to 0 as libm's does (ExpF saturates): where an
// activation's value at +-inf must come out as eager PyTorch's (silu(-inf) = -inf / inf = NaN).
__attribute__((always_inline)) inline float ExpFull(float x) {
  float e = ExpF(x);
  e = x > 88.7228f ? __builtin_inff() : e;
  return x < -103.973f ? 0.0f : e;
}

// erf for float32: the rational approximation TVM's fast_erf and Eigen use (within 1e-6 of erf;
// NaN stays NaN, +-inf give +-1).
__attribute__((always_inline)) inline float ErfF(float x) {
  x = x > 4.f ? 4.f : x;
  x = x < -4.f ? -4.f : x;
  const float x2 = x * x;
  float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = x2 * p + -2.10102402082508e-06f;
  p = x2 * p + -5.69250639462346e-05f;
  p = x2 * p + -7.34990630326855e-04f;
  p = x2 * p + -2.95459980854025e-03f;
  p = x2 * p + -1.60960333262415e-02f;
  float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
  q = x2 * q + -1.68282697438203e-03f;
  q = x2 * q + -7.37332916720468e-03f;
  q = x2 * q + -1.42647390514189e-02f;
  return x * p / q;
}

// The activations an own kernel's scalar loop applies (vectorized by the compiler), numbered as
// backend/library.py's UNARY_CODES, with eager PyTorch's values at NaN and +-inf (its GELU gives
// NaN at both infinities).
template <int U>
__attribute__((always_inline)) inline float ActivateScalar(float v) {
  if (U == 1) return v < 0.f ? 0.f : v;  // NaN fails every compare and stays NaN
  if (U == 2) return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
  if (U == 5 || U == 9) {  // hardswish, hardsigmoid
    float t = v + 3.f;
    t = t < 0.f ? 0.f : t;
    t = t > 6.f ? 6.f : t;
    return U == 5 ? v * t / 6.f : t / 6.f;
  }
  if (U == 3) return 1.f / (1.f + ExpFull(-v));
  if (U == 6) {
    float g = v * (0.5f + 0.5f * ErfF(v * 0.70710678118654752f));
    return __builtin_isinf(v) ? __builtin_nanf("") : g;
  }
  if (U == 7) {
    float z = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    return 0.5f * v * (2.f - 2.f / (1.f + ExpFull(2.f * z)));
  }
  if (U == 8) return v / (1.f + ExpFull(-v));
  return v;
}

// ActivateScalar with the code known only at run time (a loop over a few values: a squeeze-excite's
// hidden layer and gate). False for a code it does not have.
inline bool ActivateScalarCode(float& v, int64_t code) {
  switch (code) {
    case 0: return true;
    case 1: v = ActivateScalar<1>(v); return true;
    case 2: v = ActivateScalar<2>(v); return true;
    case 3: v = ActivateScalar<3>(v); return true;
    case 5: v = ActivateScalar<5>(v); return true;
    case 6: v = ActivateScalar<6>(v); return true;
    case 7: v = ActivateScalar<7>(v); return true;
    case 8: v = ActivateScalar<8>(v); return true;
    case 9: v = ActivateScalar<9>(v); return true;
  }
  return false;
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

// c > t ? c : t and c < t ? c : t: x86's max and min, which give their second operand where either
// is NaN, so t's NaN stays (`t < c ? c : t`, the same values, which GCC compiles to a compare and a
// blend). Their callers are the ISA clones of the kernels, whose ISA has the L-float instruction.
template <int L>
__attribute__((always_inline)) inline typename Vec<L>::type MaxOf(typename Vec<L>::type c, typename Vec<L>::type t) {
#if defined(__x86_64__)
  if constexpr (L == 16) return __builtin_ia32_maxps512_mask(c, t, t, static_cast<unsigned short>(-1), 4);
  if constexpr (L == 8) return __builtin_ia32_maxps256(c, t);
  if constexpr (L == 4) return __builtin_ia32_maxps(c, t);
#endif
  return t < c ? c : t;
}

template <int L>
__attribute__((always_inline)) inline typename Vec<L>::type MinOf(typename Vec<L>::type c, typename Vec<L>::type t) {
#if defined(__x86_64__)
  if constexpr (L == 16) return __builtin_ia32_minps512_mask(c, t, t, static_cast<unsigned short>(-1), 4);
  if constexpr (L == 8) return __builtin_ia32_minps256(c, t);
  if constexpr (L == 4) return __builtin_ia32_minps(c, t);
#endif
  return t > c ? c : t;
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
    case kRelu: return MaxOf<L>(zero, v);
    case kRelu6: return MinOf<L>(six, MaxOf<L>(zero, v));
    case kHardswish: return v * MinOf<L>(six, MaxOf<L>(zero, v + three)) / six;
    case kHardsigmoid: return MinOf<L>(six, MaxOf<L>(zero, v + three)) / six;
    default: return v;
  }
}

inline bool FusesUnary(int64_t unary) {
  return unary == kNone || unary == kRelu || unary == kRelu6 || unary == kHardswish || unary == kHardsigmoid;
}

}  // namespace torchtvm

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

}  // namespace torchtvm

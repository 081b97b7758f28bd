// SmallGemm: out [rows, G] = h [rows, H] (rows ldh apart) @ w [H, G], single-threaded, for products
// too small for a BLAS call to pay off (an RNN's per-step product: BLAS spends ~15 us packing the
// weight of a 3 x 128 x 512 one) or that run many at once on separate threads (Winograd's 36).
// w is packed once (PackForSmallGemm) into blocks of 64 columns, each [H][64] contiguous, so a
// block streams from memory in order and stays in L1 while every row passes through it; six rows
// at a time accumulate in registers over H (24 accumulators: GCC vector types, four zmm per row on
// AVX-512; the AVX2 and baseline clones spill some).

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "library_kernels.h"

namespace torchtvm {
namespace {

constexpr int64_t kCols = 64;
constexpr int kRows = 6;
typedef float V16 __attribute__((vector_size(64)));

template <int B>
__attribute__((always_inline)) inline void GemmBlock(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                     float* __restrict__ out, int64_t ldo, int64_t H, int64_t cols) {
  V16 acc[B][4];
  for (int b = 0; b < B; ++b) acc[b][0] = acc[b][1] = acc[b][2] = acc[b][3] = V16{};
  for (int64_t k = 0; k < H; ++k) {
    V16 w0, w1, w2, w3;
    std::memcpy(&w0, w + k * kCols, sizeof(V16));
    std::memcpy(&w1, w + k * kCols + 16, sizeof(V16));
    std::memcpy(&w2, w + k * kCols + 32, sizeof(V16));
    std::memcpy(&w3, w + k * kCols + 48, sizeof(V16));
    for (int b = 0; b < B; ++b) {
      float hb = h[b * ldh + k];
      acc[b][0] += hb * w0;
      acc[b][1] += hb * w1;
      acc[b][2] += hb * w2;
      acc[b][3] += hb * w3;
    }
  }
  for (int b = 0; b < B; ++b) {
    if (cols == kCols) {
      std::memcpy(out + b * ldo, acc[b], sizeof(acc[b]));
    } else {  // the last block of a G that is not a multiple of the block
      float tmp[kCols];
      std::memcpy(tmp, acc[b], sizeof(acc[b]));
      std::memcpy(out + b * ldo, tmp, cols * sizeof(float));
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void GemmRows(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w, float* __restrict__ out,
              int64_t ldo, int64_t rows, int64_t H, int64_t cols) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const float* hr = h + r0 * ldh;
    float* o = out + r0 * ldo;
    switch (std::min<int64_t>(kRows, rows - r0)) {
      case 1: GemmBlock<1>(hr, ldh, w, o, ldo, H, cols); break;
      case 2: GemmBlock<2>(hr, ldh, w, o, ldo, H, cols); break;
      case 3: GemmBlock<3>(hr, ldh, w, o, ldo, H, cols); break;
      case 4: GemmBlock<4>(hr, ldh, w, o, ldo, H, cols); break;
      case 5: GemmBlock<5>(hr, ldh, w, o, ldo, H, cols); break;
      default: GemmBlock<6>(hr, ldh, w, o, ldo, H, cols); break;
    }
  }
}

}  // namespace

at::Tensor PackForSmallGemm(const at::Tensor& w) {
  int64_t H = w.size(0), G = w.size(1), blocks = (G + kCols - 1) / kCols;
  at::Tensor padded = at::zeros({H, blocks * kCols}, w.options());
  padded.narrow(1, 0, G).copy_(w);
  return padded.view({H, blocks, kCols}).permute({1, 0, 2}).contiguous();
}

void SmallGemm(const float* h, int64_t ldh, const float* packed, float* out, int64_t rows, int64_t H, int64_t G) {
  for (int64_t j0 = 0; j0 < G; j0 += kCols)
    GemmRows(h, ldh, packed + (j0 / kCols) * H * kCols, out + j0, G, rows, H, std::min(kCols, G - j0));
}

}  // namespace torchtvm

// SmallGemm: out [rows, G] = h [rows, H] (rows ldh apart) @ w [H, G], single-threaded, for products
// too small for a BLAS call to pay off (an RNN's per-step product: BLAS spends ~15 us packing the
// weight of a 3 x 128 x 512 one) or that run many at once on separate threads (Winograd's 36).
// w is packed once (PackForSmallGemm) into blocks of 64 columns, each [H][64] contiguous, so a
// block streams from memory in order and stays in L1 while every row passes through it. Six rows
// at a time accumulate in registers over H, in as many columns as the ISA's register file holds
// without spilling: 64 on AVX-512 (24 of 32 zmm), 16 on AVX2 (12 of 16 ymm), 8 on SSE (12 of 16
// xmm); the narrower ISAs pass over a 64-column block in 4 or 8 strips.

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu_isa.h"
#include "library_kernels.h"

namespace torchtvm {
namespace {

constexpr int64_t kCols = 64;
constexpr int kRows = 6;

template <int Lanes>
struct Vec {
  typedef float type __attribute__((vector_size(Lanes * sizeof(float))));
};

// The register blocking of each ISA: vectors of `lanes` floats, `per_row` of them per row.
template <Isa I>
struct Blocking {
  static constexpr int lanes = I == Isa::kAvx512 ? 16 : I == Isa::kAvx2 ? 8 : 4;
  static constexpr int per_row = I == Isa::kAvx512 ? 4 : 2;
  static constexpr int cols = lanes * per_row;
};

// B rows x Blocking<I>::cols columns of out; w's rows are kCols apart (a packed block).
template <Isa I, int B>
__attribute__((always_inline)) inline void GemmBlock(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                     float* __restrict__ out, int64_t ldo, int64_t H, int64_t cols) {
  using K = Blocking<I>;
  using V = typename Vec<K::lanes>::type;
  V acc[B][K::per_row];
  for (int b = 0; b < B; ++b)
    for (int v = 0; v < K::per_row; ++v) acc[b][v] = V{};
  for (int64_t k = 0; k < H; ++k) {
    V wv[K::per_row];
    for (int v = 0; v < K::per_row; ++v) std::memcpy(&wv[v], w + k * kCols + v * K::lanes, sizeof(V));
    for (int b = 0; b < B; ++b) {
      float hb = h[b * ldh + k];
      for (int v = 0; v < K::per_row; ++v) acc[b][v] += hb * wv[v];
    }
  }
  for (int b = 0; b < B; ++b) {
    if (cols == K::cols) {
      std::memcpy(out + b * ldo, acc[b], sizeof(acc[b]));
    } else {  // the last strip of a G that is not a multiple of it
      float tmp[K::cols];
      std::memcpy(tmp, acc[b], sizeof(acc[b]));
      std::memcpy(out + b * ldo, tmp, cols * sizeof(float));
    }
  }
}

// One packed block (up to kCols columns) for all rows, in the ISA's strips.
template <Isa I>
__attribute__((always_inline)) inline void GemmRowsBody(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                        float* __restrict__ out, int64_t ldo, int64_t rows, int64_t H,
                                                        int64_t cols) {
  constexpr int64_t strip = Blocking<I>::cols;
  for (int64_t c0 = 0; c0 < cols; c0 += strip) {
    int64_t n = std::min(strip, cols - c0);
    for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
      const float* hr = h + r0 * ldh;
      float* o = out + r0 * ldo + c0;
      switch (std::min<int64_t>(kRows, rows - r0)) {
        case 1: GemmBlock<I, 1>(hr, ldh, w + c0, o, ldo, H, n); break;
        case 2: GemmBlock<I, 2>(hr, ldh, w + c0, o, ldo, H, n); break;
        case 3: GemmBlock<I, 3>(hr, ldh, w + c0, o, ldo, H, n); break;
        case 4: GemmBlock<I, 4>(hr, ldh, w + c0, o, ldo, H, n); break;
        case 5: GemmBlock<I, 5>(hr, ldh, w + c0, o, ldo, H, n); break;
        default: GemmBlock<I, 6>(hr, ldh, w + c0, o, ldo, H, n); break;
      }
    }
  }
}

TORCHTVM_ISA_DISPATCH(void, GemmRows,
                      (const float* __restrict__ h, int64_t ldh, const float* __restrict__ w, float* __restrict__ out,
                       int64_t ldo, int64_t rows, int64_t H, int64_t cols),
                      (h, ldh, w, out, ldo, rows, H, cols))

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

// SmallGemm: out [rows, G] = h [rows, H] (rows ldh apart) @ w [H, G], single-threaded, for products
// too small for a BLAS call to pay off (an RNN's per-step product: BLAS spends ~15 us packing the
// weight of a 3 x 128 x 512 one) or that run many at once on separate threads (Winograd's 36).
// w is packed once (PackForSmallGemm) into blocks of 64 columns, each [H][64] contiguous, so a
// block streams from memory in order and stays in L1 while every row passes through it. Six rows
// at a time accumulate in registers over H, in as many columns as the ISA's register file holds
// without spilling: 64 on AVX-512 (24 of 32 zmm), 16 on AVX2 (12 of 16 ymm), 8 on SSE (12 of 16
// xmm); the narrower ISAs pass over a 64-column block in 4 or 8 strips, and for 1-3 rows (whose
// few accumulators would wait on the FMA latency) accumulate even and odd k apart.

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu_isa.h"
#include "library_kernels.h"
#include "vector_math.h"

namespace torchtvm {
namespace {

constexpr int64_t kCols = 64;
constexpr int kRows = 6;

// The register blocking of each ISA: vectors of `lanes` floats, `per_row` of them per row.
template <Isa I>
struct Blocking {
  static constexpr int lanes = IsaLanes(I);
  static constexpr int per_row = I == Isa::kAvx512 ? 4 : 2;
  static constexpr int cols = lanes * per_row;
};

// B rows x P vectors of columns of out (P <= Blocking<I>::per_row: a narrow last strip, such as the
// 8 columns of a 72-column product, computes only the vectors it needs); w's rows are kCols apart
// (a packed block).
template <Isa I, int B, int P>
__attribute__((always_inline)) inline void GemmBlock(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                     float* __restrict__ out, int64_t ldo, int64_t H, int64_t cols) {
  using K = Blocking<I>;
  using V = typename Vec<K::lanes>::type;
  V acc[B][P];
  for (int b = 0; b < B; ++b)
    for (int v = 0; v < P; ++v) acc[b][v] = V{};
  for (int64_t k = 0; k < H; ++k) {
    V wv[P];
    for (int v = 0; v < P; ++v) std::memcpy(&wv[v], w + k * kCols + v * K::lanes, sizeof(V));
    for (int b = 0; b < B; ++b) {
      float hb = h[b * ldh + k];
      for (int v = 0; v < P; ++v) acc[b][v] += hb * wv[v];
    }
  }
  for (int b = 0; b < B; ++b) {
    if (cols == P * K::lanes) {
      std::memcpy(out + b * ldo, acc[b], sizeof(acc[b]));
    } else {  // the last strip of a G that is not a multiple of the vector
      float tmp[P * K::lanes];
      std::memcpy(tmp, acc[b], sizeof(acc[b]));
      std::memcpy(out + b * ldo, tmp, cols * sizeof(float));
    }
  }
}

// GemmBlock for B <= 3 rows and a whole strip (Blocking<I>::per_row vectors), with two sets of
// accumulators (even and odd k) so that twice as many multiply-adds are in flight.
template <Isa I, int B>
__attribute__((always_inline)) inline void GemmBlockSplitK(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                           float* __restrict__ out, int64_t ldo, int64_t H, int64_t cols) {
  using K = Blocking<I>;
  using V = typename Vec<K::lanes>::type;
  constexpr int P = K::per_row;
  V even[B][P], odd[B][P];
  for (int b = 0; b < B; ++b)
    for (int v = 0; v < P; ++v) even[b][v] = odd[b][v] = V{};
  int64_t k = 0;
  for (; k + 2 <= H; k += 2) {
    V wv[P];
    for (int v = 0; v < P; ++v) std::memcpy(&wv[v], w + k * kCols + v * K::lanes, sizeof(V));
    for (int b = 0; b < B; ++b)
      for (int v = 0; v < P; ++v) even[b][v] += h[b * ldh + k] * wv[v];
    for (int v = 0; v < P; ++v) std::memcpy(&wv[v], w + (k + 1) * kCols + v * K::lanes, sizeof(V));
    for (int b = 0; b < B; ++b)
      for (int v = 0; v < P; ++v) odd[b][v] += h[b * ldh + k + 1] * wv[v];
  }
  if (k < H) {
    V wv[P];
    for (int v = 0; v < P; ++v) std::memcpy(&wv[v], w + k * kCols + v * K::lanes, sizeof(V));
    for (int b = 0; b < B; ++b)
      for (int v = 0; v < P; ++v) even[b][v] += h[b * ldh + k] * wv[v];
  }
  for (int b = 0; b < B; ++b) {
    V sum[P];
    for (int v = 0; v < P; ++v) sum[v] = even[b][v] + odd[b][v];
    if (cols == P * K::lanes) {
      std::memcpy(out + b * ldo, sum, sizeof(sum));
    } else {
      float tmp[P * K::lanes];
      std::memcpy(tmp, sum, sizeof(sum));
      std::memcpy(out + b * ldo, tmp, cols * sizeof(float));
    }
  }
}

template <Isa I, int P>
__attribute__((always_inline)) inline void GemmStrip(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                     float* __restrict__ out, int64_t ldo, int64_t rows, int64_t H, int64_t n) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const float* hr = h + r0 * ldh;
    float* o = out + r0 * ldo;
    switch (std::min<int64_t>(kRows, rows - r0)) {
      case 1: GemmBlock<I, 1, P>(hr, ldh, w, o, ldo, H, n); break;
      case 2: GemmBlock<I, 2, P>(hr, ldh, w, o, ldo, H, n); break;
      case 3: GemmBlock<I, 3, P>(hr, ldh, w, o, ldo, H, n); break;
      case 4: GemmBlock<I, 4, P>(hr, ldh, w, o, ldo, H, n); break;
      case 5: GemmBlock<I, 5, P>(hr, ldh, w, o, ldo, H, n); break;
      default: GemmBlock<I, 6, P>(hr, ldh, w, o, ldo, H, n); break;
    }
  }
}

// One packed block (up to kCols columns) for all rows, in the ISA's strips.
template <Isa I>
__attribute__((always_inline)) inline void GemmRowsBody(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                        float* __restrict__ out, int64_t ldo, int64_t rows, int64_t H,
                                                        int64_t cols) {
  using K = Blocking<I>;
  if (K::per_row < 4 && rows <= 3) {
    // Few rows (an RNN step's batch): 3 rows x 2 vectors are only 6 independent multiply-add
    // chains, which leave the FMA units waiting on their latency; even and odd k accumulate apart.
    for (int64_t c0 = 0; c0 < cols; c0 += K::cols) {
      int64_t n = std::min<int64_t>(K::cols, cols - c0);
      switch (rows) {
        case 1: GemmBlockSplitK<I, 1>(h, ldh, w + c0, out + c0, ldo, H, n); break;
        case 2: GemmBlockSplitK<I, 2>(h, ldh, w + c0, out + c0, ldo, H, n); break;
        default: GemmBlockSplitK<I, 3>(h, ldh, w + c0, out + c0, ldo, H, n); break;
      }
    }
    return;
  }
  for (int64_t c0 = 0; c0 < cols; c0 += K::cols) {
    int64_t n = std::min<int64_t>(K::cols, cols - c0);
    switch ((n + K::lanes - 1) / K::lanes) {
      case 1: GemmStrip<I, 1>(h, ldh, w + c0, out + c0, ldo, rows, H, n); break;
      case 2: GemmStrip<I, K::per_row >= 2 ? 2 : 1>(h, ldh, w + c0, out + c0, ldo, rows, H, n); break;
      case 3: GemmStrip<I, K::per_row >= 3 ? 3 : 1>(h, ldh, w + c0, out + c0, ldo, rows, H, n); break;
      default: GemmStrip<I, K::per_row>(h, ldh, w + c0, out + c0, ldo, rows, H, n); break;
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

int64_t SmallGemmPackedSize(int64_t H, int64_t G) { return (G + kCols - 1) / kCols * kCols * H; }

void PackForSmallGemmInto(const float* w, int64_t ld_row, int64_t ld_col, int64_t H, int64_t G, float* packed) {
  for (int64_t j0 = 0; j0 < G; j0 += kCols) {
    int64_t n = std::min(kCols, G - j0);
    float* dst = packed + (j0 / kCols) * H * kCols;
    if (ld_col == 1) {
      for (int64_t k = 0; k < H; ++k) {
        float* d = dst + k * kCols;
        std::memcpy(d, w + k * ld_row + j0, n * sizeof(float));
        std::fill(d + n, d + kCols, 0.f);
      }
      continue;
    }
    // A transposed source (w[k][j] at j * ld_col + k, ld_row 1 or not): read along its rows, write
    // the block's columns, which stay in L1, rather than gather from n rows apart.
    for (int64_t j = 0; j < n; ++j) {
      const float* src = w + (j0 + j) * ld_col;
      for (int64_t k = 0; k < H; ++k) dst[k * kCols + j] = src[k * ld_row];
    }
    if (n < kCols)
      for (int64_t k = 0; k < H; ++k) std::fill(dst + k * kCols + n, dst + (k + 1) * kCols, 0.f);
  }
}

void SmallGemm(const float* h, int64_t ldh, const float* packed, float* out, int64_t rows, int64_t H, int64_t G) {
  for (int64_t j0 = 0; j0 < G; j0 += kCols)
    GemmRows(h, ldh, packed + (j0 / kCols) * H * kCols, out + j0, G, rows, H, std::min(kCols, G - j0));
}

// The epilogue of a product: out = act(out + bias + other) over [rows, cols] (rows ld apart), with act one
// of none / relu / relu6 / hardswish / hardsigmoid written as ATen's vectorized kernels compute
// them (vector_math.h's ActivateScalar), so that NaN and inf come out as in eager PyTorch. A plain
// loop per ISA and activation (the activation a template argument, so that each loop is
// branch-free and the compiler vectorizes it for each ISA).
template <int U>
__attribute__((always_inline)) inline void Epilogue(float* __restrict__ out, const float* __restrict__ bias,
                                                    const float* __restrict__ other, int64_t ld, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* __restrict__ o = out + r * ld;
    if (other) {
      const float* __restrict__ q = other + r * ld;
      if (bias)
        for (int64_t c = 0; c < cols; ++c) o[c] = ActivateScalar<U>(o[c] + bias[c] + q[c]);
      else
        for (int64_t c = 0; c < cols; ++c) o[c] = ActivateScalar<U>(o[c] + q[c]);
    } else if (bias) {
      for (int64_t c = 0; c < cols; ++c) o[c] = ActivateScalar<U>(o[c] + bias[c]);
    } else if (U != 0) {
      for (int64_t c = 0; c < cols; ++c) o[c] = ActivateScalar<U>(o[c]);
    }
  }
}

template <Isa>
__attribute__((always_inline)) inline void EpilogueRowsBody(float* __restrict__ out, const float* __restrict__ bias,
                                                            const float* __restrict__ other, int64_t ld, int64_t rows,
                                                            int64_t cols, int unary) {
  switch (unary) {
    case 1: return Epilogue<1>(out, bias, other, ld, rows, cols);
    case 2: return Epilogue<2>(out, bias, other, ld, rows, cols);
    case 5: return Epilogue<5>(out, bias, other, ld, rows, cols);
    case 9: return Epilogue<9>(out, bias, other, ld, rows, cols);
    default: return Epilogue<0>(out, bias, other, ld, rows, cols);
  }
}

TORCHTVM_ISA_DISPATCH(void, EpilogueRows,
                      (float* __restrict__ out, const float* __restrict__ bias, const float* __restrict__ other,
                       int64_t ld, int64_t rows, int64_t cols, int unary),
                      (out, bias, other, ld, rows, cols, unary))

bool SmallGemmFusesUnary(int64_t unary) {
  return unary == 0 || unary == 1 || unary == 2 || unary == 5 || unary == 9;
}

void SmallGemmParallel(const float* h, const float* packed, float* out, int64_t rows, int64_t H, int64_t G,
                       const float* bias, const float* other, int64_t unary) {
  // Work items are (block of 6 rows, block of 64 columns): a 1-row product (a linear layer at
  // batch 1, a squeeze-excite's 1x1 convolution) still splits over the threads by columns. A thread
  // gets at least ~32K multiply-adds: below that, waking one costs more than it saves.
  const int64_t row_blocks = (rows + kRows - 1) / kRows, col_blocks = (G + kCols - 1) / kCols;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, kRows * kCols * H));
  int fused = SmallGemmFusesUnary(unary) ? int(unary) : 0;
  at::parallel_for(0, row_blocks * col_blocks, grain, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      int64_t rb = item / col_blocks, cb = item % col_blocks;
      int64_t r0 = rb * kRows, n = std::min<int64_t>(kRows, rows - r0), j0 = cb * kCols, cols = std::min(kCols, G - j0);
      GemmRows(h + r0 * H, H, packed + cb * H * kCols, out + r0 * G + j0, G, n, H, cols);
      EpilogueRows(out + r0 * G + j0, bias ? bias + j0 : nullptr, other ? other + r0 * G + j0 : nullptr, G, n, cols, fused);
    }
  });
}

void SmallGemmStrided(const float* h, int64_t ldh, const float* packed, float* out, int64_t ldo, int64_t rows, int64_t H,
                      int64_t G, const float* bias, const float* other, int64_t unary) {
  int fused = SmallGemmFusesUnary(unary) ? int(unary) : 0;
  for (int64_t j0 = 0; j0 < G; j0 += kCols) {
    int64_t cols = std::min(kCols, G - j0);
    GemmRows(h, ldh, packed + (j0 / kCols) * H * kCols, out + j0, ldo, rows, H, cols);
    if (bias || other || fused) EpilogueRows(out + j0, bias ? bias + j0 : nullptr, other ? other + j0 : nullptr, ldo, rows, cols, fused);
  }
}

}  // namespace torchtvm

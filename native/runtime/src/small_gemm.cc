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

// What a block does to its accumulators before storing them: out = act(acc + bias + other), bias
// and other already offset to the block's first column (other's rows ldo apart, as out's). Applied
// in registers, not as a second pass over the stored block (which cost a third of the product's
// time on the depthwise net's pointwise convolutions, 16-32 deep).
struct Epilogue {
  const float* bias = nullptr;
  const float* other = nullptr;
  int unary = kNone;
};

// The epilogue of the columns from c0 on.
inline Epilogue Shifted(Epilogue e, int64_t c0) {
  if (e.bias) e.bias += c0;
  if (e.other) e.other += c0;
  return e;
}

// Stores row b's P vectors (acc) at out, `cols` columns of them, after the epilogue; the vector
// epilogue computes what the scalar one (ActivateScalar) does, in the same order. Full (all P * L
// columns) is known at compile time: with the partial store's path beside the full one, every
// block's accumulators went to the stack before its epilogue (AVX2's depthwise net: 1-2% of its
// time). (An activation chosen once per call, not per vector, was slower: its constants stayed in
// registers across the multiply-add loop, which then spilled accumulators.)
template <int L, int P, bool Full>
__attribute__((always_inline)) inline void StoreRow(typename Vec<L>::type (&acc)[P], float* __restrict__ out,
                                                    const float* other_row, int64_t cols, const Epilogue& e) {
  using V = typename Vec<L>::type;
  if constexpr (Full) {
    for (int v = 0; v < P; ++v) {
      V a = acc[v];
      if (e.bias) a += Load<L>(e.bias + v * L);
      if (other_row) a += Load<L>(other_row + v * L);
      a = Activate<L>(a, e.unary);
      std::memcpy(out + v * L, &a, sizeof(V));
    }
    return;
  }
  // The last strip of a G that is not a multiple of the vector: bias and other end at `cols`.
  float tmp[P * L];
  std::memcpy(tmp, acc, sizeof(tmp));
  for (int64_t c = 0; c < cols; ++c) {
    float a = tmp[c];
    if (e.bias) a += e.bias[c];
    if (other_row) a += other_row[c];
    ActivateScalarCode(a, e.unary);
    out[c] = a;
  }
}

// B rows x P vectors of columns of out (P <= Blocking<I>::per_row: a narrow last strip, such as the
// 8 columns of a 72-column product, computes only the vectors it needs); w's rows are kCols apart
// (a packed block).
template <Isa I, int B, int P, bool Full>
__attribute__((always_inline)) inline void GemmBlock(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                     float* __restrict__ out, int64_t ldo, int64_t H, int64_t cols,
                                                     const Epilogue& e) {
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
  for (int b = 0; b < B; ++b) StoreRow<K::lanes, P, Full>(acc[b], out + b * ldo, e.other ? e.other + b * ldo : nullptr, cols, e);
}

// GemmBlock for B <= 3 rows and a whole strip (Blocking<I>::per_row vectors), with two sets of
// accumulators (even and odd k) so that twice as many multiply-adds are in flight.
template <Isa I, int B, bool Full>
__attribute__((always_inline)) inline void GemmBlockSplitK(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                           float* __restrict__ out, int64_t ldo, int64_t H, int64_t cols,
                                                           const Epilogue& e) {
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
    StoreRow<K::lanes, P, Full>(sum, out + b * ldo, e.other ? e.other + b * ldo : nullptr, cols, e);
  }
}

template <Isa I, int P, bool Full>
__attribute__((always_inline)) inline void GemmStrip(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                     float* __restrict__ out, int64_t ldo, int64_t rows, int64_t H, int64_t n,
                                                     const Epilogue& epi) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const float* hr = h + r0 * ldh;
    float* o = out + r0 * ldo;
    Epilogue e = epi;
    if (e.other) e.other += r0 * ldo;
    switch (std::min<int64_t>(kRows, rows - r0)) {
      case 1: GemmBlock<I, 1, P, Full>(hr, ldh, w, o, ldo, H, n, e); break;
      case 2: GemmBlock<I, 2, P, Full>(hr, ldh, w, o, ldo, H, n, e); break;
      case 3: GemmBlock<I, 3, P, Full>(hr, ldh, w, o, ldo, H, n, e); break;
      case 4: GemmBlock<I, 4, P, Full>(hr, ldh, w, o, ldo, H, n, e); break;
      case 5: GemmBlock<I, 5, P, Full>(hr, ldh, w, o, ldo, H, n, e); break;
      default: GemmBlock<I, 6, P, Full>(hr, ldh, w, o, ldo, H, n, e); break;
    }
  }
}

// A strip of n columns (P vectors, the last one full or not).
template <Isa I, int P>
__attribute__((always_inline)) inline void GemmStripOf(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                       float* __restrict__ out, int64_t ldo, int64_t rows, int64_t H, int64_t n,
                                                       const Epilogue& e) {
  if (n == P * Blocking<I>::lanes) GemmStrip<I, P, true>(h, ldh, w, out, ldo, rows, H, n, e);
  else GemmStrip<I, P, false>(h, ldh, w, out, ldo, rows, H, n, e);
}

// One packed block (up to kCols columns) for all rows, in the ISA's strips.
template <Isa I>
__attribute__((always_inline)) inline void GemmRowsBody(const float* __restrict__ h, int64_t ldh, const float* __restrict__ w,
                                                        float* __restrict__ out, int64_t ldo, int64_t rows, int64_t H,
                                                        int64_t cols, const Epilogue& epi) {
  using K = Blocking<I>;
  if (K::per_row < 4 && rows <= 3) {
    // Few rows (an RNN step's batch): 3 rows x 2 vectors are only 6 independent multiply-add
    // chains, which leave the FMA units waiting on their latency; even and odd k accumulate apart.
    for (int64_t c0 = 0; c0 < cols; c0 += K::cols) {
      int64_t n = std::min<int64_t>(K::cols, cols - c0);
      Epilogue e = Shifted(epi, c0);
      auto block = [&]<bool Full>() __attribute__((always_inline)) {
        switch (rows) {
          case 1: GemmBlockSplitK<I, 1, Full>(h, ldh, w + c0, out + c0, ldo, H, n, e); break;
          case 2: GemmBlockSplitK<I, 2, Full>(h, ldh, w + c0, out + c0, ldo, H, n, e); break;
          default: GemmBlockSplitK<I, 3, Full>(h, ldh, w + c0, out + c0, ldo, H, n, e); break;
        }
      };
      if (n == K::cols) block.template operator()<true>();
      else block.template operator()<false>();
    }
    return;
  }
  for (int64_t c0 = 0; c0 < cols; c0 += K::cols) {
    int64_t n = std::min<int64_t>(K::cols, cols - c0);
    Epilogue e = Shifted(epi, c0);
    switch ((n + K::lanes - 1) / K::lanes) {
      case 1: GemmStripOf<I, 1>(h, ldh, w + c0, out + c0, ldo, rows, H, n, e); break;
      case 2: GemmStripOf<I, K::per_row >= 2 ? 2 : 1>(h, ldh, w + c0, out + c0, ldo, rows, H, n, e); break;
      case 3: GemmStripOf<I, K::per_row >= 3 ? 3 : 1>(h, ldh, w + c0, out + c0, ldo, rows, H, n, e); break;
      default: GemmStripOf<I, K::per_row>(h, ldh, w + c0, out + c0, ldo, rows, H, n, e); break;
    }
  }
}

TORCHTVM_ISA_DISPATCH(void, GemmRows,
                      (const float* __restrict__ h, int64_t ldh, const float* __restrict__ w, float* __restrict__ out,
                       int64_t ldo, int64_t rows, int64_t H, int64_t cols, const Epilogue& e),
                      (h, ldh, w, out, ldo, rows, H, cols, e))

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
    GemmRows(h, ldh, packed + (j0 / kCols) * H * kCols, out + j0, G, rows, H, std::min(kCols, G - j0), Epilogue{});
}

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
  const int fused = SmallGemmFusesUnary(unary) ? int(unary) : kNone;
  at::parallel_for(0, row_blocks * col_blocks, grain, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      int64_t rb = item / col_blocks, cb = item % col_blocks;
      int64_t r0 = rb * kRows, n = std::min<int64_t>(kRows, rows - r0), j0 = cb * kCols, cols = std::min(kCols, G - j0);
      Epilogue epi{bias ? bias + j0 : nullptr, other ? other + r0 * G + j0 : nullptr, fused};
      GemmRows(h + r0 * H, H, packed + cb * H * kCols, out + r0 * G + j0, G, n, H, cols, epi);
    }
  });
}

void SmallGemmStrided(const float* h, int64_t ldh, const float* packed, float* out, int64_t ldo, int64_t rows, int64_t H,
                      int64_t G, const float* bias, const float* other, int64_t unary) {
  const int fused = SmallGemmFusesUnary(unary) ? int(unary) : kNone;
  for (int64_t j0 = 0; j0 < G; j0 += kCols) {
    Epilogue epi{bias ? bias + j0 : nullptr, other ? other + j0 : nullptr, fused};
    GemmRows(h, ldh, packed + (j0 / kCols) * H * kCols, out + j0, ldo, rows, H, std::min(kCols, G - j0), epi);
  }
}

}  // namespace torchtvm

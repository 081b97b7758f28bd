// Winograd F(4x4, 3x3) for float32 3x3 stride-1 convolutions over NHWC: a candidate that placement
// (the untuned default too) times against oneDNN's direct convolution (torchtvm.conv2d's attribute
// 10 asks for it; the build never picks it without having timed it faster in the model's shapes).
//
// A 4x4 output tile needs 36 multiplies per (input, output) channel pair instead of 144: the input
// is transformed tile by tile into V [36][tiles][Cin], the 36 products V[e] @ U[e] go into
// M [36][tiles][Cout] (U, the transformed weights, is made once per weight, packed for SmallGemm
// and cached), and the output transform writes TVM's buffer with the bias, the residual and relu /
// relu6 applied. The transforms are vectorized over 16 channels at a time (NHWC keeps them
// contiguous).
//
// Winograd spreads one input value over a whole tile: an inf or NaN in the input (or an overflow
// in the transforms) makes NaN in outputs that eager PyTorch computes finite. So the output
// transform notes any non-finite value before the activation, and such a call is computed again
// by the direct convolution: the result is always what oneDNN gives there, as in PyTorch.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "cpu_isa.h"
#include "library_kernels.h"

namespace torchtvm {
namespace {

constexpr int64_t kCB = 16;  // channels per block: one AVX-512 vector, two AVX2 ones
// Tiles per chunk of a thread's share: a chunk's V and M (330 KB each at 64 channels) stay in L2.
constexpr int64_t kMaxChunk = 48;
const float kZeros[kCB] = {};

struct WinoGeometry {
  int64_t N, H, W, C, K, OH, OW, ph, pw, TH, TW, T;
};

// Tiles [begin, end) of the flattened (n, th, tw) into V [36][end - begin][C]: V = B^T d B per 16 channels.
template <Isa>
__attribute__((always_inline)) inline void InputTransformBody(const float* __restrict__ x, float* __restrict__ V, const WinoGeometry& g, int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; ++t) {
    int64_t n = t / (g.TH * g.TW), th = (t / g.TW) % g.TH, tw = t % g.TW;
    int64_t ih0 = th * 4 - g.ph, iw0 = tw * 4 - g.pw;
    bool inside = ih0 >= 0 && iw0 >= 0 && ih0 + 6 <= g.H && iw0 + 6 <= g.W;
    for (int64_t c0 = 0; c0 < g.C; c0 += kCB) {
      float r[6][6][kCB];
      const float* d[6][6];  // the tile's pixels, zeros outside the image
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          int64_t ih = ih0 + i, iw = iw0 + j;
          d[i][j] = inside || (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? x + ((n * g.H + ih) * g.W + iw) * g.C + c0 : kZeros;
        }
      for (int j = 0; j < 6; ++j)  // r = B^T d (over rows)
        for (int c = 0; c < kCB; ++c) {
          float d0 = d[0][j][c], d1 = d[1][j][c], d2 = d[2][j][c], d3 = d[3][j][c], d4 = d[4][j][c], d5 = d[5][j][c];
          r[0][j][c] = 4.f * d0 - 5.f * d2 + d4;
          r[1][j][c] = -4.f * (d1 + d2) + d3 + d4;
          r[2][j][c] = 4.f * (d1 - d2) - d3 + d4;
          r[3][j][c] = 2.f * (d3 - d1) - d2 + d4;
          r[4][j][c] = 2.f * (d1 - d3) - d2 + d4;
          r[5][j][c] = 4.f * d1 - 5.f * d3 + d5;
        }
      for (int i = 0; i < 6; ++i) {  // V = r B (over columns)
        float v[6][kCB];
        for (int c = 0; c < kCB; ++c) {
          float d0 = r[i][0][c], d1 = r[i][1][c], d2 = r[i][2][c], d3 = r[i][3][c], d4 = r[i][4][c], d5 = r[i][5][c];
          v[0][c] = 4.f * d0 - 5.f * d2 + d4;
          v[1][c] = -4.f * (d1 + d2) + d3 + d4;
          v[2][c] = 4.f * (d1 - d2) - d3 + d4;
          v[3][c] = 2.f * (d3 - d1) - d2 + d4;
          v[4][c] = 2.f * (d1 - d3) - d2 + d4;
          v[5][c] = 4.f * d1 - 5.f * d3 + d5;
        }
        for (int j = 0; j < 6; ++j) std::memcpy(V + ((i * 6 + j) * (end - begin) + t - begin) * g.C + c0, v[j], sizeof(v[j]));
      }
    }
  }
}

TORCHTVM_ISA_DISPATCH(void, InputTransform, (const float* __restrict__ x, float* __restrict__ V, const WinoGeometry& g, int64_t begin, int64_t end), (x, V, g, begin, end))

// Tiles [begin, end) from M [36][end - begin][K] into out (NHWC): y = A^T m A + bias + other, then relu /
// relu6 (clamp 1 / 2, NaN kept). Returns false when a value before the activation is not finite.
template <Isa>
__attribute__((always_inline)) inline bool OutputTransformBody(const float* __restrict__ M, const float* __restrict__ bias, const float* other, float* out,
                     const WinoGeometry& g, int clamp, int64_t begin, int64_t end) {
  float bad[kCB] = {};
  for (int64_t t = begin; t < end; ++t) {
    int64_t n = t / (g.TH * g.TW), th = (t / g.TW) % g.TH, tw = t % g.TW;
    int64_t oh0 = th * 4, ow0 = tw * 4;
    for (int64_t c0 = 0; c0 < g.K; c0 += kCB) {
      float s[4][6][kCB], y[4][4][kCB];
      for (int j = 0; j < 6; ++j) {  // s = A^T m (over rows)
        const float* m[6];
        for (int i = 0; i < 6; ++i) m[i] = M + ((i * 6 + j) * (end - begin) + t - begin) * g.K + c0;
        for (int c = 0; c < kCB; ++c) {
          float m0 = m[0][c], m1 = m[1][c], m2 = m[2][c], m3 = m[3][c], m4 = m[4][c], m5 = m[5][c];
          float a = m1 + m2, b = m1 - m2, p = m3 + m4, q = m3 - m4;
          s[0][j][c] = m0 + a + p;
          s[1][j][c] = b + 2.f * q;
          s[2][j][c] = a + 4.f * p;
          s[3][j][c] = b + 8.f * q + m5;
        }
      }
      for (int i = 0; i < 4; ++i)  // y = s A (over columns)
        for (int c = 0; c < kCB; ++c) {
          float m0 = s[i][0][c], m1 = s[i][1][c], m2 = s[i][2][c], m3 = s[i][3][c], m4 = s[i][4][c], m5 = s[i][5][c];
          float a = m1 + m2, b = m1 - m2, p = m3 + m4, q = m3 - m4;
          float bc = bias ? bias[c0 + c] : 0.f;
          y[i][0][c] = m0 + a + p + bc;
          y[i][1][c] = b + 2.f * q + bc;
          y[i][2][c] = a + 4.f * p + bc;
          y[i][3][c] = b + 8.f * q + m5 + bc;
        }
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          int64_t oh = oh0 + i, ow = ow0 + j;
          if (oh >= g.OH || ow >= g.OW) continue;
          int64_t at = ((n * g.OH + oh) * g.OW + ow) * g.K + c0;
          float* __restrict__ o = out + at;
          for (int c = 0; c < kCB; ++c) {
            float v = y[i][j][c] + (other ? other[at + c] : 0.f);
            bad[c] += v - v;  // NaN once any v is inf or NaN
            if (clamp) v = v < 0.f ? 0.f : ((clamp == 2 && v > 6.f) ? 6.f : v);
            o[c] = v;
          }
        }
    }
  }
  for (int c = 0; c < kCB; ++c)
    if (bad[c] != 0.f) return false;
  return true;
}

TORCHTVM_ISA_DISPATCH(bool, OutputTransform, (const float* __restrict__ M, const float* __restrict__ bias, const float* other, float* out,
                     const WinoGeometry& g, int clamp, int64_t begin, int64_t end), (M, bias, other, out, g, clamp, begin, end))

// U [36][Cin][Cout] = G g G^T for each (out, in) channel pair, computed in double, each of the 36
// packed for SmallGemm.
at::Tensor TransformWeight(const at::Tensor& w) {
  static const double G[6][3] = {{1.0 / 4, 0, 0},          {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                 {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  at::Tensor g = at::empty({6, 3}, at::kDouble);
  std::memcpy(g.data_ptr<double>(), G, sizeof(G));
  at::Tensor u = at::einsum("ak,oikl,bl->abio", {g, w.to(at::kDouble), g});
  u = u.reshape({36, w.size(1), w.size(0)}).to(at::kFloat);
  std::vector<at::Tensor> packed;
  for (int64_t e = 0; e < 36; ++e) packed.push_back(PackForSmallGemm(u[e]));
  return at::stack(packed);  // [36][packed [Cin][Cout]]
}

// Each thread's scratch for V and M, kept between calls: allocating per call costs page faults.
at::Tensor Scratch(int which, int64_t numel) {
  static thread_local at::Tensor buf[2];
  if (!buf[which].defined() || buf[which].numel() < numel) buf[which] = at::empty({numel}, at::kFloat);
  return buf[which].narrow(0, 0, numel);
}

}  // namespace

bool WinogradApplies(const DLTensor* x, const DLTensor* w, const DLTensor* out) {
  return ScalarTypeOf(x) == at::kFloat && x->ndim == 4 && w->ndim == 4 && w->shape[2] == 3 && w->shape[3] == 3 &&
         x->shape[3] % kCB == 0 && out->shape[3] % kCB == 0 && w->shape[1] == x->shape[3];
}

bool WinogradConv(const DLTensor* x, const DLTensor* w, const DLTensor* bias, const DLTensor* other, DLTensor* out,
                  int64_t pad_h, int64_t pad_w, int64_t unary) {
  WinoGeometry g{x->shape[0], x->shape[1], x->shape[2], x->shape[3], out->shape[3], out->shape[1], out->shape[2], pad_h, pad_w, 0, 0, 0};
  g.TH = (g.OH + 3) / 4, g.TW = (g.OW + 3) / 4, g.T = g.N * g.TH * g.TW;
  if (g.T == 0) return true;
  // U depends on the weight alone; this call site has its own cache.
  PackKey key{DataOf(w), Fingerprint(w), {w->shape[0], w->shape[1]}};
  at::Tensor U = Memo<at::Tensor>(key, [&] { return TransformWeight(View(w)); });
  const float* xp = static_cast<const float*>(DataOf(x));
  const float* bp = bias ? static_cast<const float*>(DataOf(bias)) : nullptr;
  const float* op = other ? static_cast<const float*>(DataOf(other)) : nullptr;
  float* yp = static_cast<float*>(DataOf(out));
  int clamp = unary == 1 || unary == 2 ? int(unary) : 0;
  const float* up = U.data_ptr<float>();
  std::atomic<bool> finite{true};
  // Each thread takes its tiles through all three stages: what it transforms, multiplies and writes
  // stays in its own core's cache, and no stage waits for the other thread. (MKL's batched GEMM for
  // the products, tried first, lost whenever the host was busy and read the transformed weights of
  // 7x7 layers, 38 MB at 512 channels, twice as slowly.)
  at::parallel_for(0, g.T, 1, [&](int64_t b, int64_t e) {
    // A thread's tiles go through in chunks of at most kMaxChunk (rows a multiple of SmallGemm's 6):
    // layer 1 of ResNet-18 ran 4-6% faster than with all of a thread's tiles at once.
    int64_t chunks = (e - b + kMaxChunk - 1) / kMaxChunk, step = ((e - b + chunks - 1) / chunks + 5) / 6 * 6;
    float* vp = Scratch(0, 36 * step * g.C).data_ptr<float>();
    float* mp = Scratch(1, 36 * step * g.K).data_ptr<float>();
    for (int64_t t0 = b; t0 < e; t0 += step) {
      int64_t t1 = std::min(e, t0 + step), n = t1 - t0;
      InputTransform(xp, vp, g, t0, t1);
      for (int64_t i = 0; i < 36; ++i) SmallGemm(vp + i * n * g.C, g.C, up + i * U.stride(0), mp + i * n * g.K, n, g.C, g.K);
      if (!OutputTransform(mp, bp, op, yp, g, clamp, t0, t1)) finite = false;
    }
  });
  return finite.load();
}

}  // namespace torchtvm

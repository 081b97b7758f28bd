// Whole LSTM and GRU layers (all layers and directions of one nn.LSTM / nn.GRU) as library kernels,
// in place of the per-time-step cells a graph compiler would unroll. Registered beside
// library_kernels.cc's ops and called through R.call_dps_packed (backend/recurrent.py emits the
// calls at import):
//
//   torchtvm.lstm(x, h0, c0, params..., attrs, out, h_n, c_n)
//   torchtvm.gru(x, h0, params..., attrs, out, h_n)
//   attrs = [has_biases, num_layers, bidirectional, batch_first(, algorithm: 0 the runtime's own
//            recurrence where it applies, 1 torch's at::lstm / at::gru; absent before it)]
//
// params are the op's flat weight list, in torch's order (w_ih, w_hh[, b_ih, b_hh][, w_hr] per layer
// and direction). float32 layers run Recurrent below, writing TVM's buffers directly; projections
// and other dtypes run torch's at::lstm / at::gru, whose results (no out= form) are copied in.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu_isa.h"
#include "library_kernels.h"
#include "vector_math.h"

namespace torchtvm {
namespace {

namespace ffi = tvm::ffi;

// The inputs before the attributes (x, the states, the weights) and the outputs after them.
struct RnnArgs {
  std::vector<at::Tensor> inputs, outputs;
  ffi::Shape attrs;
  std::vector<const DLTensor*> dl;  // the inputs as given (for cache keys)
};

RnnArgs Unpack(const char* name, ffi::PackedArgs args, int states) {
  // x, the states, at least two weights; then the attributes and 1 + states outputs
  int n = args.size(), at_attrs = n - 2 - states;
  TORCH_CHECK(at_attrs >= 1 + states + 2, name, " got ", n, " arguments; this is a torchtvm bug.");
  RnnArgs r{{}, {}, args[at_attrs].cast<ffi::Shape>(), {}};
  TORCH_CHECK(r.attrs.size() == 4 || r.attrs.size() == 5, name, " got ", r.attrs.size(), " attributes; this is a torchtvm bug.");
  for (int i = 0; i < at_attrs; ++i) {
    r.dl.push_back(args[i].cast<DLTensor*>());
    r.inputs.push_back(View(r.dl.back()));
  }
  for (int i = at_attrs + 1; i < n; ++i) r.outputs.push_back(View(args[i].cast<DLTensor*>()));
  return r;
}

// ---- the recurrence, float32 -------------------------------------------------------------

__attribute__((always_inline)) inline float Sigmoid(float x) { return 1.0f / (1.0f + ExpF(-x)); }
__attribute__((always_inline)) inline float Tanh(float x) { return 1.0f - 2.0f / (1.0f + ExpF(2.0f * x)); }

// One time step of one LSTM row (a batch element): gates = xg + hg + bias (i, f, g, o blocks of H),
// c = f * c + i * g, h = o * tanh(c).
template <Isa>
__attribute__((always_inline)) inline void LstmRowBody(const float* __restrict__ xg, const float* __restrict__ hg, const float* __restrict__ bias,
             float* __restrict__ c, float* __restrict__ h, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    float i = Sigmoid(xg[j] + hg[j] + bias[j]);
    float f = Sigmoid(xg[H + j] + hg[H + j] + bias[H + j]);
    float g = Tanh(xg[2 * H + j] + hg[2 * H + j] + bias[2 * H + j]);
    float o = Sigmoid(xg[3 * H + j] + hg[3 * H + j] + bias[3 * H + j]);
    float cj = f * c[j] + i * g;
    c[j] = cj;
    h[j] = o * Tanh(cj);
  }
}

TORCHTVM_ISA_DISPATCH(void, LstmRow, (const float* __restrict__ xg, const float* __restrict__ hg, const float* __restrict__ bias,
             float* __restrict__ c, float* __restrict__ h, int64_t H), (xg, hg, bias, c, h, H))

// One GRU row: r, z from the sums; n = tanh(xn + b_in + r * (hn + b_hn)); h = n + z * (h_prev - n).
template <Isa>
__attribute__((always_inline)) inline void GruRowBody(const float* __restrict__ xg, const float* __restrict__ hg, const float* __restrict__ b_ih,
            const float* __restrict__ b_hh, const float* __restrict__ h_prev, float* __restrict__ h, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    float r = Sigmoid(xg[j] + b_ih[j] + hg[j] + b_hh[j]);
    float z = Sigmoid(xg[H + j] + b_ih[H + j] + hg[H + j] + b_hh[H + j]);
    float n = Tanh(xg[2 * H + j] + b_ih[2 * H + j] + r * (hg[2 * H + j] + b_hh[2 * H + j]));
    h[j] = n + z * (h_prev[j] - n);
  }
}

TORCHTVM_ISA_DISPATCH(void, GruRow, (const float* __restrict__ xg, const float* __restrict__ hg, const float* __restrict__ b_ih,
            const float* __restrict__ b_hh, const float* __restrict__ h_prev, float* __restrict__ h, int64_t H), (xg, hg, b_ih, b_hh, h_prev, h, H))

// Up to this many rows SmallGemm beats a BLAS call (whose packing costs ~15 us on a 3 x 128 x 512
// product); beyond, BLAS's blocking and threads win.
constexpr int64_t kSmallGemmRows = 256;

// A weight [G, K], transposed and packed for SmallGemm, once per weight.
at::Tensor PackedTransposed(const DLTensor* w, const at::Tensor& t) {
  return Memo<at::Tensor>(PackKey{DataOf(w), Fingerprint(w), {t.size(0), t.size(1)}}, [&] { return PackForSmallGemm(t.t()); });
}

// C [m, n] = A [m, k] @ B^T, B [n, k]; row-major with leading dimensions: the products too large
// for SmallGemm, through ATen (MKL).
void GemmABt(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc) {
  auto opts = at::TensorOptions().dtype(at::kFloat);
  at::Tensor c = at::from_blob(C, {m, n}, {ldc, 1}, opts);
  at::mm_out(c, at::from_blob(const_cast<float*>(A), {m, k}, {lda, 1}, opts),
             at::from_blob(const_cast<float*>(B), {n, k}, {ldb, 1}, opts).t());
}

// A whole multi-layer, possibly bidirectional LSTM or GRU over x [T, B, F] (or [B, T, F]):
// each layer-direction multiplies all steps' inputs by W_ih in one GEMM, then steps through time
// with one small GEMM (h @ W_hh^T) and one fused elementwise pass per step, reading h where the
// previous step wrote it into the output sequence. Returns false where torch's own kernel is
// needed (a projection, another dtype, an empty sequence).
bool Recurrent(bool lstm, RnnArgs& r) {
  DebugDelay("recurrent");
  int states = lstm ? 2 : 1;
  const at::Tensor& x = r.inputs[0];
  std::vector<at::Tensor> params(r.inputs.begin() + 1 + states, r.inputs.end());
  bool has_biases = r.attrs[0] != 0, batch_first = r.attrs[3] != 0;
  int64_t L = r.attrs[1], D = r.attrs[2] != 0 ? 2 : 1, per = has_biases ? 4 : 2;
  if (x.scalar_type() != at::kFloat || x.dim() != 3 || static_cast<int64_t>(params.size()) != L * D * per) return false;
  int64_t T = batch_first ? x.size(1) : x.size(0), B = batch_first ? x.size(0) : x.size(1);
  int64_t H = params[1].size(1), G = params[1].size(0);
  if (T == 0 || B == 0 || G != (lstm ? 4 : 3) * H) return false;
  for (const auto& p : params)
    if (!p.is_contiguous() || p.scalar_type() != at::kFloat) return false;
  at::Tensor& out = r.outputs[0];
  // step t, batch b -> row of the [T*B, width] matrices (the input, the output, the input gates)
  auto row = [&](int64_t t, int64_t b) { return batch_first ? b * T + t : t * B + b; };
  int64_t ld_step = batch_first ? T : 1;  // rows between consecutive batch elements of one step
  at::Tensor xg = at::empty({T * B, G}, x.options()), hg = at::empty({B, G}, x.options());
  at::Tensor bias = at::zeros({G}, x.options()), c = at::empty({B, H}, x.options());
  at::Tensor layer_out[2];
  at::Tensor in = x;
  for (int64_t l = 0; l < L; ++l) {
    at::Tensor dst = l == L - 1 ? out : (layer_out[l % 2] = at::empty({x.size(0), x.size(1), D * H}, x.options()));
    int64_t width = D * H, fin = in.size(2);
    for (int64_t d = 0; d < D; ++d) {
      const at::Tensor* p = &params[(l * D + d) * per];
      const DLTensor* const* w = &r.dl[1 + states + (l * D + d) * per];  // w_ih, w_hh as given
      if (T * B <= kSmallGemmRows) {
        // All steps' input gates at once, the rows split over torch's threads (in blocks of
        // SmallGemm's 6): the steps after this run on one thread.
        const float *src = in.data_ptr<float>(), *wp = PackedTransposed(w[0], p[0]).data_ptr<float>();
        float* dst_gates = xg.data_ptr<float>();
        at::parallel_for(0, (T * B + 5) / 6, 1, [&](int64_t b0, int64_t b1) {
          int64_t r0 = b0 * 6, r1 = std::min(T * B, b1 * 6);
          SmallGemm(src + r0 * fin, fin, wp, dst_gates + r0 * G, r1 - r0, fin, G);
        });
      } else GemmABt(T * B, G, fin, in.data_ptr<float>(), fin, p[0].data_ptr<float>(), fin, xg.data_ptr<float>(), G);
      const float* b_ih = has_biases ? p[2].data_ptr<float>() : bias.data_ptr<float>();
      const float* b_hh = has_biases ? p[3].data_ptr<float>() : bias.data_ptr<float>();
      if (lstm && has_biases) at::add_out(bias, p[2], p[3]);
      int64_t slot = l * D + d;
      if (lstm) c.copy_(r.inputs[2][slot]);
      const float* h = r.inputs[1][slot].data_ptr<float>();
      int64_t ldh = H;
      float* o = dst.data_ptr<float>() + d * H;
      at::Tensor whh_t = B <= kSmallGemmRows ? PackedTransposed(w[1], p[1]) : at::Tensor();  // held while used
      for (int64_t s = 0; s < T; ++s) {
        int64_t t = d == 1 ? T - 1 - s : s;
        if (whh_t.defined()) SmallGemm(h, ldh, whh_t.data_ptr<float>(), hg.data_ptr<float>(), B, H, G);
        else GemmABt(B, G, H, h, ldh, p[1].data_ptr<float>(), H, hg.data_ptr<float>(), G);
        for (int64_t b = 0; b < B; ++b) {
          const float* xr = xg.data_ptr<float>() + row(t, b) * G;
          const float* hr = hg.data_ptr<float>() + b * G;
          float* hn = o + row(t, b) * width;
          if (lstm) LstmRow(xr, hr, bias.data_ptr<float>(), c.data_ptr<float>() + b * H, hn, H);
          else GruRow(xr, hr, b_ih, b_hh, h + b * ldh, hn, H);
        }
        h = o + row(t, 0) * width;  // this step's h, read by the next one in place
        ldh = ld_step * width;
      }
      // final states: the last step's h (and c)
      at::Tensor hn = r.outputs[1][slot];
      hn.copy_(at::from_blob(const_cast<float*>(h), {B, H}, {ldh, 1}, x.options()));
      if (lstm) r.outputs[2][slot].copy_(c);
    }
    in = dst;
  }
  return true;
}

// Whether the call asks for torch's kernel (placement timed it faster than the runtime's own).
bool TorchAlgorithm(const RnnArgs& r) { return r.attrs.size() == 5 && r.attrs[4] == 1; }

void Lstm(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  RnnArgs r = Unpack("torchtvm.lstm", args, 2);
  if (!TorchAlgorithm(r) && Recurrent(true, r)) return;
  std::vector<at::Tensor> params(r.inputs.begin() + 3, r.inputs.end());
  auto [out, hy, cy] = at::lstm(r.inputs[0], {r.inputs[1], r.inputs[2]}, params, r.attrs[0] != 0, r.attrs[1], 0.0,
                                false, r.attrs[2] != 0, r.attrs[3] != 0);
  r.outputs[0].copy_(out);
  r.outputs[1].copy_(hy);
  r.outputs[2].copy_(cy);
}

void Gru(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  RnnArgs r = Unpack("torchtvm.gru", args, 1);
  if (!TorchAlgorithm(r) && Recurrent(false, r)) return;
  std::vector<at::Tensor> params(r.inputs.begin() + 2, r.inputs.end());
  auto [out, hy] = at::gru(r.inputs[0], r.inputs[1], params, r.attrs[0] != 0, r.attrs[1], 0.0, false, r.attrs[2] != 0,
                           r.attrs[3] != 0);
  r.outputs[0].copy_(out);
  r.outputs[1].copy_(hy);
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def_packed("torchtvm.lstm", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.lstm", Lstm, a, rv); })
      .def_packed("torchtvm.gru", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.gru", Gru, a, rv); });
}

}  // namespace torchtvm

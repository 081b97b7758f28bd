// Library kernels for whole ops that torch has fused CPU kernels for: scaled dot-product attention
// (torch's flash attention for CPU), layer_norm and softmax. Registered beside library_kernels.cc's
// conv2d / linear / matmul, called by compiled modules through R.call_dps_packed, destination-passing
// (inputs, integer attributes, then the output buffer TVM allocated).
//
// Attention reads q, k and v where they already are: each is a strided view (element offset, sizes,
// strides, all in the attributes, possibly symbolic in the compiled module) of a dense buffer, so the
// head split (reshape / permute / select of a packed qkv projection) costs no copy, and the output is
// written straight into the layout its consumer wants (the merge of the heads). This is why the torch
// kernels are called through their dispatch stubs (at::native::flash_attention_kernel,
// LayerNormKernel, both exported by libtorch_cpu): the public ops allocate their outputs, the stubs
// write into a given tensor. The export records the public ops' schemas (aten::
// _scaled_dot_product_flash_attention_for_cpu, aten::native_layer_norm) for the load-time check;
// the stubs themselves are bound when this library is linked against libtorch.

// DispatchStub picks the AVX2 / AVX-512 kernels only where these are defined (as in torch's own
// build); without them every call would run the DEFAULT (non-vectorized) kernel.
#if defined(__x86_64__) || defined(_M_X64)
#ifndef HAVE_AVX2_CPU_DEFINITION
#define HAVE_AVX2_CPU_DEFINITION
#endif
#ifndef HAVE_AVX512_CPU_DEFINITION
#define HAVE_AVX512_CPU_DEFINITION
#endif
#endif

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/native/layer_norm.h>
#include <ATen/native/transformers/attention.h>
#include <torch/library.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "cpu_isa.h"
#include "library_kernels.h"
#include "vector_math.h"

namespace torchtvm {
namespace {

namespace ffi = tvm::ffi;

// A strided view of a dense buffer: a[at] = element offset, then 4 sizes, then 4 strides.
at::Tensor Strided(const DLTensor* base, const ffi::Shape& a, size_t at) {
  int64_t numel = 1;
  for (int i = 0; i < base->ndim; ++i) numel *= base->shape[i];
  std::vector<int64_t> sizes(a.begin() + at + 1, a.begin() + at + 5), strides(a.begin() + at + 5, a.begin() + at + 9);
  int64_t lo = a[at], hi = a[at];
  for (int i = 0; i < 4; ++i) {
    if (sizes[i] == 0) return at::empty(sizes, at::TensorOptions().dtype(ScalarTypeOf(base)));
    (strides[i] < 0 ? lo : hi) += (sizes[i] - 1) * strides[i];
  }
  // The planner derives views from the buffer's own shape; one out of bounds is a torchtvm bug.
  TORCH_CHECK(lo >= 0 && hi < numel, "A library attention view falls outside its buffer; this is a torchtvm bug.");
  auto elem = static_cast<int64_t>((base->dtype.bits + 7) / 8);
  return at::from_blob(static_cast<char*>(base->data) + base->byte_offset + a[at] * elem, sizes, strides,
                       at::TensorOptions().dtype(ScalarTypeOf(base)));
}

// ---- the runtime's own attention (algorithm 1), float32 ---------------------------------------
//
// Per (batch, head) and block of query rows: scores = q @ k^T by the runtime's GEMM (SmallGemmStrided,
// k^T and v packed once per item), a softmax per row in place, then out = p @ v written straight
// into the output view. torch's flash attention for CPU runs the same products through its own
// blocking and GEMM calls, which on short sequences (the 128 tokens of an encoder layer) cost 2-3x
// the arithmetic. Placement times the two and keeps the faster.

// One row of scores in place: s = s * scale + mask, then softmax. False when the row is not clean
// (a NaN or infinite score or mask, an all -inf row): the call then runs torch's kernels, whose
// semantics those rows have.
template <Isa I>
__attribute__((always_inline)) inline bool SoftmaxRowBody(float* __restrict__ s, const float* __restrict__ mask, int64_t n,
                                                          float scale) {
  // The max and the sum are reductions, which the compiler keeps scalar (it may not reorder float
  // additions): they run on explicit vectors of the ISA's width, the exp loop beside them.
  constexpr int L = IsaLanes(I);
  using V = typename Vec<L>::type;
  if (mask) {
    for (int64_t j = 0; j < n; ++j) s[j] = s[j] * scale + mask[j];
  } else {
    for (int64_t j = 0; j < n; ++j) s[j] = s[j] * scale;
  }
  const int64_t whole = n / L * L;
  float m = -std::numeric_limits<float>::infinity();
  if (whole) {
    V mv = Load<L>(s);
    for (int64_t j = L; j < whole; j += L) {
      V v = Load<L>(s + j);
      mv = v > mv ? v : mv;
    }
    for (int i = 0; i < L; ++i) m = mv[i] > m ? mv[i] : m;
  }
  for (int64_t j = whole; j < n; ++j) m = s[j] > m ? s[j] : m;
  if (!std::isfinite(m)) return false;
  for (int64_t j = 0; j < n; ++j) {
    float d = s[j] - m;
    float e = ExpF(d);
    s[j] = d < -87.f ? 0.f : e;  // ExpF saturates at exp(-88); below float's normal range exp is 0
  }
  V sv{};
  for (int64_t j = 0; j < whole; j += L) sv += Load<L>(s + j);
  float sum = 0.f;
  for (int i = 0; i < L; ++i) sum += sv[i];
  for (int64_t j = whole; j < n; ++j) sum += s[j];
  if (!std::isfinite(sum)) return false;  // a NaN score (the max is a term, so a finite sum is >= 1)
  const float r = 1.f / sum;
  for (int64_t j = 0; j < n; ++j) s[j] *= r;
  return true;
}

TORCHTVM_ISA_DISPATCH(bool, SoftmaxRow, (float* __restrict__ s, const float* __restrict__ mask, int64_t n, float scale),
                      (s, mask, n, scale))

// q, k, v, o: [B, H, L|S, D] views whose last dim is dense; mask: [B, H, L, S] (broadcast dims of
// stride 0), last dim dense. False when a row was not clean (SoftmaxRow): o is then partly written.
bool OwnAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask,
                  at::Tensor& o, double scale) {
  int64_t B = q.size(0), H = q.size(1), L = q.size(2), S = k.size(2), D = q.size(3), Dv = v.size(3);
  // Items are (batch, head, block of query rows): as many blocks as it takes to give every thread
  // work when there are fewer heads than threads (k and v are then packed once per block).
  int64_t heads = B * H, threads = at::get_num_threads();
  int64_t blocks = heads >= threads ? 1 : std::min<int64_t>(L, (threads + heads - 1) / heads);
  int64_t rows_per = (L + blocks - 1) / blocks;
  const float* mp = mask ? mask->data_ptr<float>() : nullptr;
  std::atomic<bool> clean{true};
  at::parallel_for(0, heads * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(rows_per * S), kt(SmallGemmPackedSize(D, S)), vp(SmallGemmPackedSize(S, Dv));
    for (int64_t item = begin; item < end && clean.load(std::memory_order_relaxed); ++item) {
      int64_t bh = item / blocks, i0 = (item % blocks) * rows_per, i1 = std::min(L, i0 + rows_per);
      if (i0 >= i1) continue;
      int64_t b = bh / H, h = bh % H, rows = i1 - i0;
      const float* kp = k.data_ptr<float>() + b * k.stride(0) + h * k.stride(1);
      const float* vsrc = v.data_ptr<float>() + b * v.stride(0) + h * v.stride(1);
      PackForSmallGemmInto(kp, 1, k.stride(2), D, S, kt.data());  // k^T: [D, S]
      PackForSmallGemmInto(vsrc, v.stride(2), 1, S, Dv, vp.data());
      const float* qp = q.data_ptr<float>() + b * q.stride(0) + h * q.stride(1) + i0 * q.stride(2);
      SmallGemmStrided(qp, q.stride(2), kt.data(), scores.data(), S, rows, D, S, nullptr);
      for (int64_t r = 0; r < rows; ++r) {
        const float* mr = mp ? mp + b * mask->stride(0) + h * mask->stride(1) + (i0 + r) * mask->stride(2) : nullptr;
        if (!SoftmaxRow(scores.data() + r * S, mr, S, static_cast<float>(scale))) {
          clean.store(false);
          return;
        }
      }
      float* op = o.data_ptr<float>() + b * o.stride(0) + h * o.stride(1) + i0 * o.stride(2);
      SmallGemmStrided(scores.data(), S, vp.data(), op, o.stride(2), rows, S, Dv, nullptr);
    }
  });
  return clean.load();
}

// torchtvm.attention(q, k, v, [mask], attrs, scale, out)
// attrs = [has_mask, safe, q view (9), k view (9), v view (9), out view (9), algorithm (0: torch's
// flash attention, 1: the runtime's own; absent: 0)]; a view is
// [offset, B, H, L, D, stride_B, stride_H, stride_L, stride_D] into that argument's buffer.
// out = softmax(q @ k^T * scale (+ mask)) @ v per (B, H), by torch's flash attention for CPU, which
// is what torch.nn.functional.scaled_dot_product_attention runs for these inputs (and so what the
// model gave in PyTorch). `safe` says the graph had SDPA's semantics. Without it the graph was a
// plain softmax, whose NaN / all -inf rows give NaN: inputs that can make such rows are computed
// again by the composite ops (matmul, softmax, matmul), as eager PyTorch computes them.
void Attention(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  int n = args.size();
  TORCH_CHECK(n == 6 || n == 7, "torchtvm.attention got ", n, " arguments; this is a torchtvm bug.");
  ffi::Shape a = args[n - 3].cast<ffi::Shape>();
  TORCH_CHECK(a.size() == 38 || a.size() == 39, "torchtvm.attention got ", a.size(), " attributes; this is a torchtvm bug.");
  int64_t algorithm = a.size() == 39 ? a[38] : 0;
  bool has_mask = a[0] != 0, safe = a[1] != 0;
  TORCH_CHECK(n == 6 + int(has_mask), "torchtvm.attention got ", n, " arguments for its attributes; this is a torchtvm bug.");
  double scale = args[n - 2].cast<double>();
  at::Tensor q = Strided(args[0].cast<DLTensor*>(), a, 2);
  at::Tensor k = Strided(args[1].cast<DLTensor*>(), a, 11);
  at::Tensor v = Strided(args[2].cast<DLTensor*>(), a, 20);
  at::Tensor out = Strided(args[n - 1].cast<DLTensor*>(), a, 29);
  if (out.numel() == 0) return;
  int64_t B = q.size(0), H = q.size(1), L = q.size(2), S = k.size(2);
  std::optional<at::Tensor> mask, mask_given;
  if (has_mask) {
    at::Tensor m = View(args[3].cast<DLTensor*>());
    mask_given = m;
    while (m.dim() < 4) m = m.unsqueeze(0);
    m = m.expand({B, H, L, S});  // broadcast dims get stride 0, which the kernel reads
    if (m.stride(3) != 1) m = m.contiguous();
    mask = m;
  }
  // The kernel reads the last dim densely.
  if (q.stride(3) != 1) q = q.contiguous();
  if (k.stride(3) != 1) k = k.contiguous();
  if (v.stride(3) != 1) v = v.contiguous();
  bool direct = out.stride(3) == 1;
  at::Tensor o = direct ? out : at::empty_like(out, at::MemoryFormat::Contiguous);
  if (algorithm == 1 && q.scalar_type() == at::kFloat && (!mask || mask->scalar_type() == at::kFloat)) {
    DebugDelay("attention");
    if (OwnAttention(q, k, v, mask, o, scale)) {
      if (!direct) out.copy_(o);
      return;
    }
  }
  at::Tensor lse = at::empty({B, L, H}, q.options().dtype(at::toOpMathType(q.scalar_type())));
  at::native::flash_attention_kernel(at::kCPU, o.transpose(1, 2), lse, q, k, v, 0.0, false, mask, scale);
  // Eager softmax gives NaN for a row of NaN, +inf or all -inf scores, where flash attention may
  // give 0 or a number: possible only with non-finite q or k, a mask of NaN / +inf / an all -inf
  // row, or an overflow (which leaves a non-finite logsumexp). A sum is non-finite when any term
  // is (or it overflows, which only sends the call the slow, exact way): one pass, no allocation
  // of a mask, 20x cheaper on q's strided view than isfinite().all(). The mask is checked as given,
  // before its broadcast.
  auto nonfinite = [](const at::Tensor& t) { return !std::isfinite(at::sum(t, at::kFloat).item<float>()); };
  if (!safe && (nonfinite(lse) || nonfinite(q) || nonfinite(k) ||
                (mask_given && (at::isnan(*mask_given).any().item<bool>() || at::isposinf(*mask_given).any().item<bool>() ||
                                at::isneginf(*mask_given).all(-1).any().item<bool>())))) {
    at::Tensor s = at::matmul(q, k.transpose(-2, -1)).mul_(scale);
    if (mask) s.add_(*mask);
    at::matmul_out(o, at::softmax(s, -1), v);
  }
  if (!direct) out.copy_(o);
}

// out = layer_norm(x) over its last `axes` dims, by torch's LayerNormKernel writing into `out`
// (dense tensors of x's shape; gamma and beta of the normalized shape).
void LayerNormInto(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta, int64_t axes, double eps, at::Tensor& out) {
  TORCH_CHECK(axes >= 1 && axes <= x.dim(), "torchtvm.layer_norm got ", axes, " axes; this is a torchtvm bug.");
  int64_t N = 1;
  for (int64_t i = x.dim() - axes; i < x.dim(); ++i) N *= x.size(i);
  int64_t M = N == 0 ? 0 : x.numel() / N;
  if (M == 0) return;
  // mean and rstd: the kernel writes them too; they are not used here.
  auto stat = x.options().dtype(at::toOpMathType(x.scalar_type()));
  at::Tensor mean = at::empty({M}, stat), rstd = at::empty({M}, stat);
  at::native::LayerNormKernel(at::kCPU, x, gamma, beta, M, N, eps, &out, &mean, &rstd);
}

// torchtvm.layer_norm(x [M..., N...], gamma [N...], beta [N...], attrs=[n_axes], eps, out)
// Over the last n_axes dims, by torch's LayerNormKernel writing into TVM's buffer.
void LayerNorm(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  TORCH_CHECK(args.size() == 6, "torchtvm.layer_norm got ", args.size(), " arguments; this is a torchtvm bug.");
  at::Tensor out = View(args[5].cast<DLTensor*>());
  LayerNormInto(View(args[0].cast<DLTensor*>()), View(args[1].cast<DLTensor*>()), View(args[2].cast<DLTensor*>()),
                args[3].cast<ffi::Shape>()[0], args[4].cast<double>(), out);
}

// The same as a torch op with an out= argument, so that library_aten.py can offer it (placement
// times it against TVM's kernel and aten::layer_norm): PyTorch's kernel with no copy of its result.
at::Tensor& LayerNormOut(const at::Tensor& input, int64_t axes, const at::Tensor& weight, const at::Tensor& bias, double eps, at::Tensor& out) {
  TORCH_CHECK(out.is_contiguous() && input.is_contiguous() && out.sizes() == input.sizes(),
              "torchtvm::layer_norm_out takes dense input and out of the same shape");
  LayerNormInto(input, weight.contiguous(), bias.contiguous(), axes, eps, out);
  return out;
}

// torchtvm.softmax(x, attrs=[axis], out): torch's softmax kernel, written in place.
void Softmax(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  TORCH_CHECK(args.size() == 3, "torchtvm.softmax got ", args.size(), " arguments; this is a torchtvm bug.");
  at::Tensor x = View(args[0].cast<DLTensor*>());
  ffi::Shape a = args[1].cast<ffi::Shape>();
  at::Tensor out = View(args[2].cast<DLTensor*>());
  at::_softmax_out(out, x, a[0], false);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(torchtvm, m) {
  m.def("layer_norm_out(Tensor input, int axes, Tensor weight, Tensor bias, float eps, *, Tensor(a!) out) -> Tensor(a!)",
        torch::dispatch(c10::DispatchKey::CPU, LayerNormOut));
}

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def_packed("torchtvm.attention", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.attention", Attention, a, rv); })
      .def_packed("torchtvm.layer_norm", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.layer_norm", LayerNorm, a, rv); })
      .def_packed("torchtvm.softmax", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.softmax", Softmax, a, rv); });
}

}  // namespace torchtvm

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
#include <ATen/native/layer_norm.h>
#include <ATen/native/transformers/attention.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "library_kernels.h"

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

// torchtvm.attention(q, k, v, [mask], attrs, scale, out)
// attrs = [has_mask, safe, q view (9), k view (9), v view (9), out view (9)]; a view is
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
  TORCH_CHECK(a.size() == 38, "torchtvm.attention got ", a.size(), " attributes; this is a torchtvm bug.");
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

// torchtvm.layer_norm(x [M..., N...], gamma [N...], beta [N...], attrs=[n_axes], eps, out)
// Over the last n_axes dims, by torch's LayerNormKernel writing into TVM's buffer.
void LayerNorm(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  TORCH_CHECK(args.size() == 6, "torchtvm.layer_norm got ", args.size(), " arguments; this is a torchtvm bug.");
  at::Tensor x = View(args[0].cast<DLTensor*>());
  at::Tensor gamma = View(args[1].cast<DLTensor*>());
  at::Tensor beta = View(args[2].cast<DLTensor*>());
  ffi::Shape a = args[3].cast<ffi::Shape>();
  double eps = args[4].cast<double>();
  at::Tensor out = View(args[5].cast<DLTensor*>());
  int64_t axes = a[0];
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

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def_packed("torchtvm.attention", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.attention", Attention, a, rv); })
      .def_packed("torchtvm.layer_norm", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.layer_norm", LayerNorm, a, rv); })
      .def_packed("torchtvm.softmax", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.softmax", Softmax, a, rv); });
}

}  // namespace torchtvm

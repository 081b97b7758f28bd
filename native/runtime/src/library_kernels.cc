// Library kernels: tvm-ffi global functions that a compiled Relax module calls through
// R.call_dps_packed, running PyTorch's own oneDNN / MKL kernels on TVM's buffers without copying.
//
// Every function is destination-passing: the inputs, then a shape of integer attributes, then the
// output buffer that TVM allocated. Activations of convolutions are NHWC (what oneDNN wants); the
// DLTensors are viewed as channels-last NCHW torch tensors (at::from_blob, no copy).
//
// Convolution weights are reordered into oneDNN's blocked format once per weight and cached (the
// compiled module passes the same constant buffer at every call), so a call never repacks.
//
// The ops come from TORCH_LIBRARY(mkldnn) and have no at:: wrappers: they are called through the
// dispatcher, boxed, so that a schema change is an error with a sentence (see CheckLibrarySchemas),
// never a wrong call. The one exception, TensorExpr's entry point for prepacked convolutions (the
// only way torch runs one into a caller's buffer), is looked up by name and, when absent, skipped.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <string>
#include <tuple>
#include <vector>

#include "cpu_isa.h"
#include "library_kernels.h"

namespace torchtvm {
namespace {

namespace ffi = tvm::ffi;

}  // namespace

at::ScalarType ScalarTypeOf(const DLTensor* t) {
  if (t->dtype.code == kDLFloat && t->dtype.bits == 32) return at::kFloat;
  if (t->dtype.code == kDLBfloat && t->dtype.bits == 16) return at::kBFloat16;
  if (t->dtype.code == kDLFloat && t->dtype.bits == 16) return at::kHalf;
  // integer index tensors (an embedding's tokens through torchtvm.aten)
  if (t->dtype.code == kDLInt && t->dtype.bits == 64) return at::kLong;
  if (t->dtype.code == kDLInt && t->dtype.bits == 32) return at::kInt;
  TORCH_CHECK(false, "A library kernel was given a tensor of an unsupported dtype (code ",
              int(t->dtype.code), ", ", int(t->dtype.bits), " bits); this is a torchtvm bug.");
}

void* DataOf(const DLTensor* t) { return static_cast<char*>(t->data) + t->byte_offset; }

static std::vector<int64_t> ShapeOf(const DLTensor* t) { return {t->shape, t->shape + t->ndim}; }

// TVM's buffers are dense (strides == nullptr, or compact ones); a strided one would be a torchtvm
// bug. The runtime's own loops check it on the DLTensor, without making a tensor.
static void CheckDense(const DLTensor* t) {
  if (t == nullptr || t->strides == nullptr) return;
  int64_t expected = 1;
  for (int i = t->ndim - 1; i >= 0; --i) {
    TORCH_CHECK(t->shape[i] == 1 || t->strides[i] == expected, "A library kernel was given a strided tensor; this is a torchtvm bug.");
    expected *= t->shape[i];
  }
}

// A dense row-major DLTensor as a torch tensor sharing its memory.
at::Tensor View(const DLTensor* t) {
  CheckDense(t);
  return at::from_blob(DataOf(t), at::IntArrayRef(t->shape, t->ndim), at::TensorOptions().dtype(ScalarTypeOf(t)));
}

namespace {

// An NHWC buffer seen as a channels-last NCHW tensor (what oneDNN's convolution takes and gives).
at::Tensor ViewNHWC(const DLTensor* t) {
  TORCH_CHECK(t->ndim == 4, "A library convolution was given a ", t->ndim,
              "-D tensor where NHWC was expected; this is a torchtvm bug.");
  return View(t).permute({0, 3, 1, 2});
}

// Handles are stable for the process: each call site looks its op up once.
#define TORCHTVM_OP(name, overload)                                                             \
  ([]() -> const c10::OperatorHandle& {                                                       \
    static const c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(name, overload); \
    return op;                                                                                \
  }())

at::Tensor CallBoxed(const c10::OperatorHandle& op, torch::jit::Stack stack) {
  op.callBoxed(&stack);
  return stack.at(0).toTensor();
}

// out = act(out) in place for relu (1) and relu6 (2), which oneDNN cannot fuse without dropping NaN
// (it uses a max/min instruction): a NaN fails both comparisons and stays, as in eager PyTorch.
template <Isa>
__attribute__((always_inline)) inline void ClampRangeBody(float* __restrict__ p, int64_t n, bool six) {
  if (six) {
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] < 0.f ? 0.f : (p[i] > 6.f ? 6.f : p[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] < 0.f ? 0.f : p[i];
  }
}

TORCHTVM_ISA_DISPATCH(void, ClampRange, (float* __restrict__ p, int64_t n, bool six), (p, n, six))

// `t` views a dense buffer in any dimension order, so a flat loop covers it.
void ClampInPlace(at::Tensor& t, int64_t code) {
  TORCH_CHECK(t.is_non_overlapping_and_dense(), "A library epilogue was given a strided tensor; this is a torchtvm bug.");
  if (t.scalar_type() != at::kFloat) {  // bfloat16 / float16: PyTorch's own kernels
    if (code == 1) t.clamp_min_(0);
    else t.clamp_(0, 6);
    return;
  }
  float* p = t.data_ptr<float>();
  at::parallel_for(0, t.numel(), 1 << 16, [&](int64_t b, int64_t e) { ClampRange(p + b, e - b, code == 2); });
}

}  // namespace

// These run after the library op: oneDNN fuses only relu after a sum, and its relu drops NaN;
// PyTorch's kernels (and ClampInPlace) keep NaN and inf as eager PyTorch does.
void ApplyUnary(at::Tensor& t, int64_t code) {
  switch (code) {
    case 0: return;
    case 1:
    case 2: ClampInPlace(t, code); return;
    case 3: t.sigmoid_(); return;
    case 4: t.tanh_(); return;
    case 5: at::hardswish_(t); return;
    case 6: at::gelu_(t, "none"); return;
    case 7: at::gelu_(t, "tanh"); return;
    case 8: at::silu_(t); return;
    case 9: at::hardsigmoid_(t); return;
  }
  TORCH_CHECK(false, "Unknown library epilogue code ", code, "; this is a torchtvm bug.");
}

namespace {

// dst = src (or zeros when src is null) for a dense buffer, split over torch's threads when large.
void FillFrom(void* dst, const void* src, size_t bytes) {
  constexpr size_t kChunk = 1 << 18;
  at::parallel_for(0, static_cast<int64_t>((bytes + kChunk - 1) / kChunk), 1, [&](int64_t b, int64_t e) {
    size_t lo = b * kChunk, hi = std::min(bytes, static_cast<size_t>(e) * kChunk);
    if (src) std::memcpy(static_cast<char*>(dst) + lo, static_cast<const char*>(src) + lo, hi - lo);
    else std::memset(static_cast<char*>(dst) + lo, 0, hi - lo);
  });
}

size_t BytesOf(const DLTensor* t) {
  return static_cast<size_t>(at::detail::computeStorageNbytesContiguous(ShapeOf(t), (t->dtype.bits + 7) / 8));
}

}  // namespace

int64_t NumelOf(const DLTensor* t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; ++i) n *= t->shape[i];
  return n;
}

// ---- prepacked convolution weights --------------------------------------------------------

// A cheap fingerprint of a weight's contents: a buffer freed and reused for another weight at the
// same address must not hit the cache.
uint64_t Fingerprint(const DLTensor* w) {
  const auto* p = static_cast<const unsigned char*>(DataOf(w));
  size_t bytes = BytesOf(w);
  uint64_t h = 1469598103934665603ull ^ bytes;
  // 16 words (a small buffer: each word once): weights of two models differ nearly everywhere, and
  // every library call pays for each sample (64, and a byte-by-byte walk of small buffers, were
  // 0.7% of a mobile net's perf profile).
  size_t step = std::max<size_t>(8, bytes / 16);
  for (size_t i = 0; i < bytes; i += step) {
    uint64_t v = 0;
    std::memcpy(&v, p + i, std::min<size_t>(8, bytes - i));
    h = (h ^ v) * 1099511628211ull;
  }
  return h;
}

// What a packed convolution weight depends on: the weight (address and contents), the geometry,
// and the activation's shape without its batch. The shape matters: without it oneDNN picks a
// weight format that, for some 1x1 convolutions (256->512 channels at 28x28, 512->1024 at
// 14x14), runs 4-12x slower. The first call's batch is used, so a symbolic batch packs once.
PackKey ConvKey(const DLTensor* w, const std::vector<int64_t>& padding, const std::vector<int64_t>& stride,
                const std::vector<int64_t>& dilation, int64_t groups, const at::Tensor& x) {
  std::vector<int64_t> cfg = ShapeOf(w);
  for (const auto* v : {&padding, &stride, &dilation}) cfg.insert(cfg.end(), v->begin(), v->end());
  cfg.push_back(groups);
  cfg.push_back(static_cast<int64_t>(ScalarTypeOf(w)));
  cfg.insert(cfg.end(), x.sizes().begin() + 1, x.sizes().end());
  return {DataOf(w), Fingerprint(w), std::move(cfg)};
}

namespace {

at::Tensor PackedConvWeight(const DLTensor* w, const std::vector<int64_t>& padding,
                            const std::vector<int64_t>& stride, const std::vector<int64_t>& dilation,
                            int64_t groups, const at::Tensor& x) {
  return Memo<at::Tensor>(ConvKey(w, padding, stride, dilation, groups, x), [&] {
    std::vector<int64_t> input_size(x.sizes().begin(), x.sizes().end());
    return CallBoxed(TORCHTVM_OP("mkldnn::_reorder_convolution_weight", ""),
                     {View(w).clone(), padding, stride, dilation, groups, input_size});
  });
}

// ---- convolutions that write straight into TVM's buffer --------------------------------------

// torch's prepacked convolution (mkldnn_prepacked::conv2d_prepack, the op context that TorchScript
// freezing builds) can run into a caller's buffer, but only through TensorExpr's external-call
// entry point, which is exported without a header. Looked up at run time: a torch without it
// leaves the in-place path below, never a failed load.
using NncCall = void (*)(int64_t, void**, int64_t*, int64_t*, int64_t*, int8_t*, int64_t, int64_t*);

// Off with TORCHTVM_DIRECT_CONV=0 or torchtvm.library_direct_conv(false): for comparison and tests.
std::atomic<bool> g_direct_conv{[] {
  const char* v = std::getenv("TORCHTVM_DIRECT_CONV");
  return !(v && std::string(v) == "0");
}()};

NncCall PrepackedConvRun() {
  static NncCall f = []() -> NncCall {
    void* lib = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return nullptr;
    void* sym = dlsym(lib, "_ZN5torch3jit10tensorexpr29nnc_mkldnn_prepacked_conv_runElPPvPlS4_S4_PalS4_");
    dlclose(lib);
    return reinterpret_cast<NncCall>(sym);
  }();
  return g_direct_conv.load(std::memory_order_relaxed) ? f : nullptr;
}

struct ConvContext {
  c10::IValue holder;  // keeps the torch object alive
  void* raw = nullptr;  // what the entry point takes
};

// One op context per weight, bias and geometry (the weight prepacked inside it), built at first call.
ConvContext ConvContextFor(const DLTensor* w, const DLTensor* bias, const std::vector<int64_t>& padding,
                           const std::vector<int64_t>& stride, const std::vector<int64_t>& dilation, int64_t groups,
                           const at::Tensor& x) {
  PackKey key = ConvKey(w, padding, stride, dilation, groups, x);
  if (bias) {  // the context holds a copy of the bias too
    std::get<2>(key).push_back(reinterpret_cast<int64_t>(DataOf(bias)));
    std::get<2>(key).push_back(static_cast<int64_t>(Fingerprint(bias)));
  }
  return Memo<ConvContext>(key, [&] {
    std::optional<at::Tensor> b;
    if (bias) b = View(bias).clone();
    std::vector<int64_t> input_size(x.sizes().begin(), x.sizes().end());
    // A channels-last weight makes torch prepack it for channels-last activations (which these are).
    torch::jit::Stack stack{View(w).contiguous(at::MemoryFormat::ChannelsLast).clone(), b, stride, padding,
                            dilation, groups, input_size, std::string("none")};
    TORCHTVM_OP("mkldnn_prepacked::conv2d_prepack", "").callBoxed(&stack);
    ConvContext c{stack.at(0), nullptr};
    c.raw = c.holder.toObjectRef().getSlot(0).toCapsule().get();
    return c;
  });
}

// out = conv(x) + bias, written by oneDNN into `out`; false when this path does not apply.
bool ConvIntoBuffer(const at::Tensor& xt, at::Tensor& ot, const DLTensor* w, const DLTensor* bias,
                    const std::vector<int64_t>& padding, const std::vector<int64_t>& stride,
                    const std::vector<int64_t>& dilation, int64_t groups) {
  NncCall run = PrepackedConvRun();
  // The entry point picks the output layout from the input's: an input whose layout reads as NCHW
  // too (one channel) would be written NCHW into the NHWC buffer.
  if (!run || xt.scalar_type() != at::kFloat || xt.suggest_memory_format() != at::MemoryFormat::ChannelsLast ||
      ot.suggest_memory_format() != at::MemoryFormat::ChannelsLast)
    return false;
  ConvContext ctx = ConvContextFor(w, bias, padding, stride, dilation, groups, xt);
  void* data[3] = {ot.data_ptr(), xt.data_ptr(), ctx.raw};
  int64_t ranks[2] = {4, 4};
  int64_t dims[8], strides[8];
  for (int i = 0; i < 4; ++i) {
    dims[i] = ot.size(i), strides[i] = ot.stride(i);
    dims[4 + i] = xt.size(i), strides[4 + i] = xt.stride(i);
  }
  int8_t dtypes[2] = {static_cast<int8_t>(at::kFloat), static_cast<int8_t>(at::kFloat)};
  run(3, data, ranks, dims, strides, dtypes, 0, nullptr);
  return true;
}

// ---- the kernels --------------------------------------------------------------------------

// o2 = x2 @ wt + bias + other, written by MKL into o2 (rows x cols): with a residual, o2 first
// holds other + bias and the product accumulates onto it (beta = 1), so no pass follows.
void GemmInto(at::Tensor& o2, const at::Tensor& x2, const at::Tensor& wt, const std::optional<at::Tensor>& bias,
              const std::optional<at::Tensor>& other2) {
  if (other2) {
    if (bias) at::add_out(o2, *other2, *bias);
    else o2.copy_(*other2);
    o2.addmm_(x2, wt);
  } else if (bias) {
    at::addmm_out(o2, bias->expand(o2.sizes()), x2, wt);
  } else {
    at::mm_out(o2, x2, wt);
  }
}

// MKL's packed GEMM: the weight packed once for one M, then sgemm_compute straight into TVM's
// buffer. It is what torch's mkl_linear (Inductor's frozen float32 linear) runs, and for few rows
// it can run 2x faster than sgemm (a transformer's 8 tokens against a 768x3072 weight); elsewhere
// it is slower, so placement times it against the plain GEMM. libtorch_cpu exports MKL's CBLAS
// symbols when torch is built with MKL; looked up at run time, so a torch without them keeps
// the plain GEMM.
struct PackedGemmApi {
  size_t (*get_size)(int identifier, int m, int n, int k);
  void (*pack)(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src, int ld, float* dest);
  void (*compute)(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda, const float* b,
                  int ldb, float beta, float* c, int ldc);
};

const PackedGemmApi* PackedGemm() {
  static const std::optional<PackedGemmApi> api = []() -> std::optional<PackedGemmApi> {
    void* lib = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return std::nullopt;
    PackedGemmApi f{reinterpret_cast<decltype(f.get_size)>(dlsym(lib, "cblas_sgemm_pack_get_size")),
                    reinterpret_cast<decltype(f.pack)>(dlsym(lib, "cblas_sgemm_pack")),
                    reinterpret_cast<decltype(f.compute)>(dlsym(lib, "cblas_sgemm_compute"))};
    dlclose(lib);
    if (!f.get_size || !f.pack || !f.compute) return std::nullopt;
    return f;
  }();
  return api ? &*api : nullptr;
}

// o2 = x2 @ B + bias + other by the packed GEMM, where B is `w` [K, N], or its transpose when
// `w_is_nk` (a 1x1 convolution's [N, K] weight); false where it does not apply (no MKL, not
// float32, not dense, a size past MKL's 32-bit ints), leaving o2 untouched.
bool PackedGemmInto(at::Tensor& o2, const at::Tensor& x2, const DLTensor* w, bool w_is_nk,
                    const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& other2) {
  constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
  const PackedGemmApi* api = PackedGemm();
  int64_t m = x2.size(0), k = x2.size(1), cols = o2.size(1);
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  if (!api || x2.scalar_type() != at::kFloat || ScalarTypeOf(w) != at::kFloat || !x2.is_contiguous() ||
      !o2.is_contiguous() || m == 0 || m > kMax || k > kMax || cols > kMax)
    return false;
  at::Tensor packed = Memo<at::Tensor>(PackKey{DataOf(w), Fingerprint(w), {m, k, cols, int64_t(w_is_nk)}}, [&] {
    size_t bytes = api->get_size(kBMatrix, int(m), int(cols), int(k));
    at::Tensor buf = at::empty({int64_t(bytes / sizeof(float)) + 1}, at::kFloat);
    api->pack(kRowMajor, kBMatrix, w_is_nk ? kTrans : kNoTrans, int(m), int(cols), int(k), 1.0f,
              static_cast<const float*>(DataOf(w)), int(w_is_nk ? k : cols), buf.data_ptr<float>());
    return buf;
  });
  // As GemmInto: o2 first holds bias + other, and the product accumulates onto it.
  float beta = 1.0f;
  if (other2 && bias) at::add_out(o2, *other2, *bias);
  else if (bias) o2.copy_(bias->expand(o2.sizes()));
  else if (other2) { if (other2->data_ptr() != o2.data_ptr()) o2.copy_(*other2); }
  else beta = 0.0f;
  api->compute(kRowMajor, kNoTrans, kPacked, int(m), int(cols), int(k), x2.data_ptr<float>(), int(k),
               packed.data_ptr<float>(), int(cols), beta, o2.data_ptr<float>(), int(cols));
  return true;
}

// A small 1x1 convolution (stride 1, no padding, one group) over NHWC is a GEMM over the rows of
// pixels: MKL runs it into TVM's buffer at a fraction of oneDNN's per-call cost (16-26 us against
// 38-60 us for the depthwise net's pointwise convolutions). Large ones stay with oneDNN, which
// is as fast or faster there, unless placement timed MKL's packed GEMM (`packed`) faster.
bool PointwiseAsGemm(const DLTensor* x, const DLTensor* w, const DLTensor* out, const ffi::Shape& a,
                     const std::optional<at::Tensor>& bias, const DLTensor* other, bool packed) {
  constexpr int64_t kMaxMacs = int64_t(1) << 24;
  bool pointwise = w->shape[2] == 1 && w->shape[3] == 1 && a[0] == 1 && a[1] == 1 && a[2] == 0 && a[3] == 0 && a[6] == 1;
  if (!pointwise || ScalarTypeOf(x) != at::kFloat) return false;
  int64_t rows = x->shape[0] * x->shape[1] * x->shape[2], cin = x->shape[3], cout = out->shape[3];
  if (!packed && rows * cin * cout > kMaxMacs) return false;
  at::Tensor o2 = View(out).view({rows, cout}), x2 = View(x).view({rows, cin});
  std::optional<at::Tensor> other2;
  if (other) other2 = View(other).view({rows, cout});
  if (packed && PackedGemmInto(o2, x2, w, true, bias, other2)) return true;
  GemmInto(o2, x2, View(w).view({cout, cin}).t(), bias, other2);
  return true;
}

}  // namespace

at::Tensor PackedSmallGemmWeight(const DLTensor* w, int64_t cin, int64_t cout, bool w_is_nk) {
  return Memo<at::Tensor>(PackKey{DataOf(w), Fingerprint(w), {cin, cout, int64_t(w_is_nk), 5}}, [&] {
    at::Tensor wt = w_is_nk ? View(w).reshape({cout, cin}).t() : View(w).reshape({cin, cout});
    return PackForSmallGemm(wt.contiguous());
  });
}

namespace {

// out [rows, cout] = act(x [rows, cin] @ W + bias + other) by the runtime's SmallGemm over torch's
// threads (small_gemm.cc), W being w as [cin, cout] (w_is_nk: w is [cout, cin], a 1x1 convolution's
// weight; else [cin, cout], torchtvm.linear's). For the small products of mobile nets (2048 x 16 x
// 32, a squeeze-excite's 1 x 72 x 288) MKL's per-call cost is several times the arithmetic;
// placement times it against MKL. False where it does not apply (not float32, an in-place or
// broadcast residual).
bool SmallGemmInto(const DLTensor* x, const DLTensor* w, const DLTensor* bias, const DLTensor* other, DLTensor* out,
                   int64_t rows, int64_t cin, int64_t cout, bool w_is_nk, int64_t code) {
  if (ScalarTypeOf(x) != at::kFloat || ScalarTypeOf(w) != at::kFloat ||
      (other && (DataOf(other) == DataOf(out) || NumelOf(other) != rows * cout)) || (bias && NumelOf(bias) != cout))
    return false;
  at::Tensor packed = PackedSmallGemmWeight(w, cin, cout, w_is_nk);
  float* op = static_cast<float*>(DataOf(out));
  SmallGemmParallel(static_cast<const float*>(DataOf(x)), packed.data_ptr<float>(), op, rows, cin, cout,
                    bias ? static_cast<const float*>(DataOf(bias)) : nullptr,
                    other ? static_cast<const float*>(DataOf(other)) : nullptr, code);
  if (!SmallGemmFusesUnary(code)) {
    at::Tensor o = View(out);
    ApplyUnary(o, code);
  }
  return true;
}

// torchtvm.depthwise_pointwise(x NHWC, w_dw [C, 1, kh, kw], [b_dw], w_pw [G, C, 1, 1], [b_pw],
// [other NHWC], attrs, out NHWC): a depthwise convolution whose output only a 1x1 convolution reads,
// as one call (library_depthwise.cc DepthwisePointwise); placement times it against the two calls.
// attrs = [stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups (= C), unary_dw, has_b_dw,
//          unary_pw, has_b_pw, has_other]
void DepthwisePointwiseCall(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  int n = args.size();
  TORCH_CHECK(n >= 5, "torchtvm.depthwise_pointwise got ", n, " arguments; this is a torchtvm bug.");
  ffi::Shape a = args[n - 2].cast<ffi::Shape>();
  TORCH_CHECK(a.size() == 12, "torchtvm.depthwise_pointwise got ", a.size(), " attributes; this is a torchtvm bug.");
  bool has_bd = a[8] != 0, has_bp = a[10] != 0, has_other = a[11] != 0;
  TORCH_CHECK(n == 5 + int(has_bd) + int(has_bp) + int(has_other), "torchtvm.depthwise_pointwise got ", n,
              " arguments for its attributes; this is a torchtvm bug.");
  int i = 0;
  const DLTensor* x = args[i++].cast<DLTensor*>();
  const DLTensor* wd = args[i++].cast<DLTensor*>();
  const DLTensor* bd = has_bd ? args[i++].cast<DLTensor*>() : nullptr;
  const DLTensor* wp = args[i++].cast<DLTensor*>();
  const DLTensor* bp = has_bp ? args[i++].cast<DLTensor*>() : nullptr;
  const DLTensor* other = has_other ? args[i++].cast<DLTensor*>() : nullptr;
  DLTensor* out = args[n - 1].cast<DLTensor*>();
  for (const DLTensor* t : {x, static_cast<const DLTensor*>(out), bd, bp, other}) CheckDense(t);
  TORCH_CHECK(DepthwisePointwise(x, wd, bd, a, a[7], wp, bp, other, out, a[9]),
              "torchtvm.depthwise_pointwise does not take these shapes; this is a torchtvm bug (placement offers it only where it applies).");
}

// torchtvm.conv2d(x NHWC (or NCHW, see attrs), w OIHW, [b], [other NHWC], attrs, out NHWC)
// attrs = [stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, unary, has_bias, has_other,
//          (algorithm: 0 the default below, 1 Winograd, 2 oneDNN only (not the runtime's depthwise
//           loop or a GEMM for a small 1x1), 3 MKL's packed GEMM for a 1x1, 4 ATen's own
//           convolution, 5 the runtime's SmallGemm for a 1x1, 6 the runtime's direct convolution
//           for few values per output pixel (library_direct_conv.cc); absent in models exported
//           before it),
//          (1: x is NCHW (the model's input), read where it lies by the direct convolution, the only
//           algorithm that takes it; absent: NHWC)]
void Conv2d(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  int n = args.size();
  TORCH_CHECK(n >= 4, "torchtvm.conv2d got ", n, " arguments; this is a torchtvm bug.");
  ffi::Shape a = args[n - 2].cast<ffi::Shape>();
  TORCH_CHECK(a.size() >= 10 && a.size() <= 12, "torchtvm.conv2d got ", a.size(), " attributes; this is a torchtvm bug.");
  bool has_bias = a[8] != 0, has_other = a[9] != 0;
  TORCH_CHECK(n == 4 + int(has_bias) + int(has_other), "torchtvm.conv2d got ", n,
              " arguments for its attributes; this is a torchtvm bug.");
  DLTensor* x = args[0].cast<DLTensor*>();
  DLTensor* w = args[1].cast<DLTensor*>();
  DLTensor* out = args[n - 1].cast<DLTensor*>();
  const DLTensor* b = has_bias ? args[2].cast<DLTensor*>() : nullptr;
  const DLTensor* other = has_other ? args[2 + int(has_bias)].cast<DLTensor*>() : nullptr;
  int64_t groups = a[6], code = a[7];
  int64_t algorithm = a.size() >= 11 ? a[10] : 0;
  bool nchw = a.size() == 12 && a[11] == 1;
  for (const DLTensor* t : {static_cast<const DLTensor*>(x), static_cast<const DLTensor*>(out), b, other}) CheckDense(t);
  // Every path writes straight into TVM's buffer (oneDNN's out-of-place forms allocate their
  // output per call, which costs page faults and a copy on every large activation). The runtime's
  // own loops (a small 1x1 as its GEMM, the direct convolution, Winograd, depthwise) take TVM's
  // buffers as they are, before any torch tensor is made (each is an allocation, and a mobile net's
  // small convolutions are a few microseconds); a small 1x1 conv may also be an MKL GEMM; one
  // without a residual runs torch's prepacked op context into `out`; the rest use oneDNN's in-place
  // form, which accumulates onto `out` (a sum post-op), so `out` first holds the residual, or zeros.
  if (algorithm == 5 && w->shape[2] == 1 && w->shape[3] == 1 && a[0] == 1 && a[1] == 1 && a[2] == 0 && a[3] == 0 && groups == 1 &&
      SmallGemmInto(x, w, b, other, out, x->shape[0] * x->shape[1] * x->shape[2], x->shape[3], out->shape[3], true, code))
    return;
  if (algorithm == 6 && DirectConv(x, w, b, other, out, a, code, nchw)) return;
  TORCH_CHECK(!nchw, "torchtvm.conv2d: an NCHW input for a convolution the direct loop does not take; this is a torchtvm bug.");
  bool winograd = algorithm == 1 && a[0] == 1 && a[1] == 1 && a[4] == 1 && a[5] == 1 && groups == 1 &&
                  WinogradApplies(x, w, out) && (!other || DataOf(other) != DataOf(out));
  if (winograd && WinogradConv(x, w, b, other, out, a[2], a[3], code)) {
    if (code > 2) {
      at::Tensor o = View(out);
      ApplyUnary(o, code);
    }
    return;
  }
  if (algorithm != 2 && algorithm != 4 && groups > 1 && DepthwiseConv(x, w, b, other, out, a, code)) {
    if (!DepthwiseFusesUnary(code)) {
      at::Tensor o = View(out);
      ApplyUnary(o, code);
    }
    return;
  }
  std::vector<int64_t> stride{a[0], a[1]}, padding{a[2], a[3]}, dilation{a[4], a[5]};
  std::optional<at::Tensor> bias;
  if (has_bias) bias = View(b);
  at::Tensor xt = ViewNHWC(x), ot = ViewNHWC(out);
  if (algorithm == 4) {
    // ATen's own convolution, as TorchScript runs the model as loaded: out of place, then into
    // TVM's buffer. For a small convolution (an 8x8 image) it takes a fraction of the per-call
    // cost of oneDNN's prepacked and in-place forms (12 us against 50 us); placement times it.
    at::Tensor y = at::convolution(xt, View(w), bias, stride, padding, dilation, false, std::vector<int64_t>{0, 0}, groups);
    if (other) y.add_(ViewNHWC(other));
    ot.copy_(y);
    ApplyUnary(ot, code);
    return;
  }
  if (algorithm != 2 && PointwiseAsGemm(x, w, out, a, bias, other, algorithm == 3)) {
    ApplyUnary(ot, code);
    return;
  }
  if (other || !ConvIntoBuffer(xt, ot, w, b, padding, stride, dilation, groups)) {
    if (!other || DataOf(other) != DataOf(out)) FillFrom(DataOf(out), other ? DataOf(other) : nullptr, BytesOf(out));
    CallBoxed(TORCHTVM_OP("mkldnn::_convolution_pointwise_", "binary"),
              {ot, xt, PackedConvWeight(w, padding, stride, dilation, groups, xt), bias, padding, stride, dilation,
               groups, std::string("add"), c10::IValue(), c10::IValue(), c10::List<std::optional<at::Scalar>>(),
               c10::IValue()});
  }
  ApplyUnary(ot, code);
}

// torchtvm.linear(x [..., K], wt [K, N], [b [N]], [other [..., N]], attrs, out [..., N])
// attrs = [unary, has_bias, has_other, (algorithm: 0 MKL's sgemm, 1 its packed GEMM, 2 the
// runtime's SmallGemm; absent in models exported before it)]. out = act(x @ wt + b + other),
// written in place.
void Linear(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  int n = args.size();
  ffi::Shape a = args[n - 2].cast<ffi::Shape>();
  TORCH_CHECK(a.size() == 3 || a.size() == 4, "torchtvm.linear got ", a.size(), " attributes; this is a torchtvm bug.");
  bool has_bias = a[1] != 0, has_other = a[2] != 0;
  TORCH_CHECK(n == 4 + int(has_bias) + int(has_other), "torchtvm.linear got ", n,
              " arguments for its attributes; this is a torchtvm bug.");
  const DLTensor* wd = args[1].cast<DLTensor*>();
  TORCH_CHECK(wd->ndim == 2, "torchtvm.linear got a ", wd->ndim, "-D weight; this is a torchtvm bug.");
  int64_t k = wd->shape[0], cols = wd->shape[1];
  // The runtime's GEMM takes TVM's (dense) buffers as they are, before any torch tensor is made.
  for (int i = 0; i < n; ++i)
    if (i != n - 2) CheckDense(args[i].cast<DLTensor*>());
  if (a.size() == 4 && a[3] == 2 && k > 0 &&
      SmallGemmInto(args[0].cast<DLTensor*>(), wd, has_bias ? args[2].cast<DLTensor*>() : nullptr,
                    has_other ? args[2 + int(has_bias)].cast<DLTensor*>() : nullptr, args[n - 1].cast<DLTensor*>(),
                    NumelOf(args[0].cast<DLTensor*>()) / k, k, cols, false, a[0]))
    return;
  at::Tensor x = View(args[0].cast<DLTensor*>());
  at::Tensor wt = View(wd);
  at::Tensor out = View(args[n - 1].cast<DLTensor*>());
  at::Tensor x2 = x.reshape({-1, k}), o2 = out.view({-1, cols});
  std::optional<at::Tensor> bias, other;
  if (has_bias) bias = View(args[2].cast<DLTensor*>());
  if (has_other) other = View(args[2 + int(has_bias)].cast<DLTensor*>()).reshape({-1, cols});
  bool packed = a.size() == 4 && a[3] == 1 && PackedGemmInto(o2, x2, args[1].cast<DLTensor*>(), false, bias, other);
  if (!packed) GemmInto(o2, x2, wt, bias, other);
  ApplyUnary(o2, a[0]);
}

// torchtvm.matmul(a [..., M, K], b [..., K, N], attrs=[unary], out [..., M, N]); batch dims broadcast.
void Matmul(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  TORCH_CHECK(args.size() == 4, "torchtvm.matmul got ", args.size(), " arguments; this is a torchtvm bug.");
  ffi::Shape a = args[2].cast<ffi::Shape>();
  at::Tensor out = View(args[3].cast<DLTensor*>());
  at::matmul_out(out, View(args[0].cast<DLTensor*>()), View(args[1].cast<DLTensor*>()));
  ApplyUnary(out, a.size() ? a[0] : 0);
}

struct PoolGeometry {
  int64_t H, W, C, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw;
};

// Output rows [begin, end) of a flattened (n, oh). Cloned per ISA: the channel loop is the whole
// cost, and AVX-512 / AVX2 run it 4-2x wider than the baseline SSE2 build.
template <Isa>
__attribute__((always_inline)) inline void MaxPoolRowsBody(const float* xp, float* yp, const PoolGeometry& g, int64_t begin, int64_t end) {
  const int64_t C = g.C;
  for (int64_t r = begin; r < end; ++r) {
    int64_t n = r / g.OH, oh = r % g.OH;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      float* __restrict__ y = yp + ((n * g.OH + oh) * g.OW + ow) * C;
      for (int64_t c = 0; c < C; ++c) y[c] = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < g.kh; ++i) {
        int64_t ih = oh * g.sh - g.ph + i * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t j = 0; j < g.kw; ++j) {
          int64_t iw = ow * g.sw - g.pw + j * g.dw;
          if (iw < 0 || iw >= g.W) continue;
          const float* __restrict__ v = xp + ((n * g.H + ih) * g.W + iw) * C;
          for (int64_t c = 0; c < C; ++c) y[c] = (v[c] > y[c] || v[c] != v[c]) ? v[c] : y[c];
        }
      }
    }
  }
}

TORCHTVM_ISA_DISPATCH(void, MaxPoolRows, (const float* xp, float* yp, const PoolGeometry& g, int64_t begin, int64_t end), (xp, yp, g, begin, end))

// Max pooling of a float32 NHWC buffer into TVM's: one pass, vectorized over channels, NaN
// winning a window as in PyTorch. The window positions come from the output's size, so ceil mode
// needs nothing more.
void MaxPoolNHWC(const DLTensor* x, DLTensor* out, const ffi::Shape& a) {
  PoolGeometry g{x->shape[1], x->shape[2], x->shape[3], out->shape[1], out->shape[2],
                 a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]};
  const float* xp = static_cast<const float*>(DataOf(x));
  float* yp = static_cast<float*>(DataOf(out));
  at::parallel_for(0, x->shape[0] * g.OH, 1, [&](int64_t begin, int64_t end) { MaxPoolRows(xp, yp, g, begin, end); });
}

// torchtvm.max_pool2d(x, attrs, out), NHWC or NCHW.
// attrs = [kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, ceil_mode, nhwc]
// TVM's default schedule for pooling is several times slower than a plain channels-inner loop.
// Other layouts and dtypes run PyTorch's kernel (no out= form), copied into TVM's buffer.
void MaxPool2d(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  TORCH_CHECK(args.size() == 3, "torchtvm.max_pool2d got ", args.size(), " arguments; this is a torchtvm bug.");
  ffi::Shape a = args[1].cast<ffi::Shape>();
  TORCH_CHECK(a.size() == 10, "torchtvm.max_pool2d got ", a.size(), " attributes; this is a torchtvm bug.");
  bool nhwc = a[9] != 0;
  DLTensor* x = args[0].cast<DLTensor*>();
  DLTensor* out = args[2].cast<DLTensor*>();
  if (nhwc && ScalarTypeOf(x) == at::kFloat && x->ndim == 4 && out->ndim == 4) return MaxPoolNHWC(x, out, a);
  at::Tensor xt = nhwc ? ViewNHWC(x) : View(x), ot = nhwc ? ViewNHWC(out) : View(out);
  ot.copy_(at::max_pool2d(xt, {a[0], a[1]}, {a[2], a[3]}, {a[4], a[5]}, {a[6], a[7]}, a[8] != 0));
}

// Per-call timings for the placement report: off unless the engine asks (one relaxed load per call).
std::atomic<bool> g_profiling{false};
std::mutex g_profile_mu;
std::vector<std::pair<std::string, int64_t>> g_profile;  // (function, nanoseconds), in call order

// Runs a kernel; torch's errors become plain runtime errors, which tvm-ffi turns into an FFI error
// carrying the message (a c10::Error must not unwind through TVM's frames as its own type).
void Run(const char* name, void (*f)(ffi::PackedArgs, ffi::Any*), ffi::PackedArgs args, ffi::Any* rv) {
  bool timed = g_profiling.load(std::memory_order_relaxed);
  auto t0 = std::chrono::steady_clock::now();
  try {
    f(args, rv);
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string(name) + ": " + e.what_without_backtrace());
  }
  if (timed) {
    int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(g_profile_mu);
    g_profile.emplace_back(name, ns);
  }
}

// ---- one thread pool ----------------------------------------------------------------------

// TVM's generated code runs its parallel loops through the function pointer
// __TVMBackendParallelLaunch, which the loader points at TVM's own thread pool. Beside oneDNN (which
// runs on torch's OpenMP pool) two pools would spin and fight over the same cores, so compiled
// modules are pointed at this launcher instead: TVM's parallel tasks run on torch's pool, with
// torch's thread count.
struct ParallelGroupEnv {  // TVMParallelGroupEnv (tvm/runtime/c_backend_api.h)
  void* sync_handle;
  int32_t num_task;
};
using ParallelLambda = int (*)(int task_id, ParallelGroupEnv* penv, void* cdata);

extern "C" int TorchtvmParallelLaunch(ParallelLambda flambda, void* cdata, int num_task) {
  int n = num_task > 0 ? num_task : at::get_num_threads();
  if (n <= 1 || at::in_parallel_region()) {
    ParallelGroupEnv env{nullptr, 1};
    return flambda(0, &env, cdata);
  }
  ParallelGroupEnv env{nullptr, n};
  std::atomic<int> rc{0};
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      int r = flambda(static_cast<int>(i), &env, cdata);
      if (r != 0) rc = r;
    }
  });
  return rc.load();
}

}  // namespace

void RunLibraryKernel(const char* name, void (*f)(ffi::PackedArgs, ffi::Any*), ffi::PackedArgs args, ffi::Any* rv) {
  Run(name, f, args, rv);
}

bool RouteParallelToTorch(const std::string& so_path) {
  // TORCHTVM_THREAD_POOL=tvm keeps TVM's own pool (for comparison: scripts/bench_threads.py).
  const char* pool = std::getenv("TORCHTVM_THREAD_POOL");
  if (pool && std::string(pool) == "tvm") return false;
  void* handle = dlopen(so_path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!handle) return false;
  void** slot = reinterpret_cast<void**>(dlsym(handle, "__TVMBackendParallelLaunch"));
  if (slot) *slot = reinterpret_cast<void*>(&TorchtvmParallelLaunch);
  dlclose(handle);  // RTLD_NOLOAD took a reference; the module keeps its own
  return slot != nullptr;
}

std::string LibrarySchema(const std::string& qualified) {
  auto dot = qualified.find('.', qualified.find("::"));
  std::string name = qualified.substr(0, dot);
  std::string overload = dot == std::string::npos ? "" : qualified.substr(dot + 1);
  auto op = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!op.has_value()) return "";
  std::ostringstream s;
  s << op->schema();
  return s.str();
}

const char* BuiltTorchVersion() { return TORCH_VERSION; }

namespace {
std::atomic<int64_t> g_delay_depthwise_us{0}, g_delay_depthwise_pointwise_us{0}, g_delay_recurrent_us{0}, g_delay_group_norm_us{0}, g_delay_squeeze_excite_us{0}, g_delay_attention_us{0};

std::atomic<int64_t>* DelayOf(const std::string& name) {
  if (name == "depthwise") return &g_delay_depthwise_us;
  if (name == "depthwise_pointwise") return &g_delay_depthwise_pointwise_us;
  if (name == "recurrent") return &g_delay_recurrent_us;
  if (name == "group_norm") return &g_delay_group_norm_us;
  if (name == "squeeze_excite") return &g_delay_squeeze_excite_us;
  if (name == "attention") return &g_delay_attention_us;
  return nullptr;
}
}  // namespace

void DebugDelay(const char* name) {
  int64_t us = DelayOf(name)->load(std::memory_order_relaxed);
  if (us <= 0) return;
  auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < until) {
  }
}

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("torchtvm.debug_delay_kernel",
           [](std::string name, int64_t us) {
             auto* d = DelayOf(name);
             TORCH_CHECK(d != nullptr, "torchtvm.debug_delay_kernel: no own kernel named ", name);
             d->store(us);
           })
      .def_packed("torchtvm.conv2d", [](ffi::PackedArgs a, ffi::Any* rv) { Run("torchtvm.conv2d", Conv2d, a, rv); })
      .def_packed("torchtvm.depthwise_pointwise",
                  [](ffi::PackedArgs a, ffi::Any* rv) { Run("torchtvm.depthwise_pointwise", DepthwisePointwiseCall, a, rv); })
      .def_packed("torchtvm.linear", [](ffi::PackedArgs a, ffi::Any* rv) { Run("torchtvm.linear", Linear, a, rv); })
      .def_packed("torchtvm.matmul", [](ffi::PackedArgs a, ffi::Any* rv) { Run("torchtvm.matmul", Matmul, a, rv); })
      .def_packed("torchtvm.max_pool2d", [](ffi::PackedArgs a, ffi::Any* rv) { Run("torchtvm.max_pool2d", MaxPool2d, a, rv); })
      // Timings of every library call between start and stop, as "function nanoseconds" lines.
      .def("torchtvm.library_profile_start", []() {
        std::lock_guard<std::mutex> lock(g_profile_mu);
        g_profile.clear();
        g_profiling = true;
      })
      .def("torchtvm.library_profile_stop", []() {
        g_profiling = false;
        std::lock_guard<std::mutex> lock(g_profile_mu);
        std::string out;
        for (auto& [name, ns] : g_profile) out += name + " " + std::to_string(ns) + "\n";
        g_profile.clear();
        return ffi::String(out);
      })
      // Whether convolutions without a residual use the direct path; returns what it was.
      .def("torchtvm.library_direct_conv", [](bool on) { return g_direct_conv.exchange(on); })
      // Whether algorithm "packed" runs MKL's packed GEMM here (else the plain GEMM): for tests.
      .def("torchtvm.library_has_packed_gemm", []() { return PackedGemm() != nullptr; })
      .def("torchtvm.library_clear_caches", []() { MemoGeneration().fetch_add(1); })
      // How many of torch's threads one parallel loop of the runtime reaches (its kernels' loops
      // and TVM's go the same way): 1 with several threads set means a build without OpenMP.
      .def("torchtvm.library_parallel_threads", []() {
        std::mutex mu;
        std::set<std::thread::id> ids;
        at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
          std::lock_guard<std::mutex> lock(mu);
          ids.insert(std::this_thread::get_id());
        });
        return static_cast<int64_t>(ids.size());
      })
      .def("torchtvm.library_schema", [](ffi::String op) { return ffi::String(LibrarySchema(op)); })
      .def("torchtvm.route_parallel_to_torch", [](ffi::String path) { return RouteParallelToTorch(std::string(path)); });
}

}  // namespace torchtvm

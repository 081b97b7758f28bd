// A transposed convolution whose kernel equals its stride (a UNet's 2x2 / stride-2 up-convolution),
// channels-last, as the runtime's own kernel: each input pixel writes its own kh x kw block of
// output pixels, so the op is kh * kw products x [W, Cin] @ w[:, :, i, j] [Cin, Cout] per input
// row, each written straight to its strided output rows by SmallGemm (small_gemm.cc). torch's
// conv_transpose2d on a channels-last view takes 90-150 us on 1x64x16x16 -> 32 channels, its
// arithmetic a few. Registered as the torch op torchtvm::conv_transpose2d_channels_last, so that
// library_aten.py emits it through the generic torchtvm.aten call beside PyTorch's kernel, and
// placement times the two against TVM's.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "library_kernels.h"

namespace torchtvm {
namespace {

at::Tensor ConvTranspose2dChannelsLast(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                       at::IntArrayRef stride) {
  TORCH_CHECK(input.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat && input.dim() == 4 && weight.dim() == 4,
              "torchtvm::conv_transpose2d_channels_last takes float32 x [N, H, W, Cin] and w [Cin, Cout, kh, kw]");
  int64_t N = input.size(0), H = input.size(1), W = input.size(2), Cin = input.size(3);
  int64_t Cout = weight.size(1), kh = weight.size(2), kw = weight.size(3);
  TORCH_CHECK(weight.size(0) == Cin && stride.size() == 2 && stride[0] == kh && stride[1] == kw,
              "torchtvm::conv_transpose2d_channels_last: the kernel must equal the stride and w be [Cin, Cout, kh, kw]");
  at::Tensor x = input.contiguous();
  at::Tensor w = weight.contiguous();
  // One packed [Cin, Cout] matrix per kernel tap, made once per weight.
  DLTensor wd{};
  std::vector<int64_t> wshape(w.sizes().begin(), w.sizes().end());
  wd.data = w.data_ptr();
  wd.ndim = 4;
  wd.shape = wshape.data();
  wd.dtype = DLDataType{kDLFloat, 32, 1};
  at::Tensor packed = Memo<at::Tensor>(PackKey{w.data_ptr(), Fingerprint(&wd), {Cin, Cout, kh, kw, 6}}, [&] {
    std::vector<at::Tensor> taps;
    for (int64_t i = 0; i < kh; ++i)
      for (int64_t j = 0; j < kw; ++j) taps.push_back(PackForSmallGemm(w.select(3, j).select(2, i).contiguous()));
    return at::stack(taps);
  });
  at::Tensor b = bias && bias->defined() ? bias->contiguous() : at::Tensor();
  int64_t OH = H * kh, OW = W * kw, taps = kh * kw, per_tap = packed.numel() / taps;
  at::Tensor y = at::empty({N, OH, OW, Cout}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* pp = packed.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Items are (image row, kernel tap): output row oh = h * kh + i gets columns w * kw + j.
  at::parallel_for(0, N * H * taps, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t row = item / taps, t = item % taps, n = row / H, h = row % H, i = t / kw, j = t % kw;
      float* out = yp + ((n * OH + h * kh + i) * OW + j) * Cout;
      SmallGemmStrided(xp + row * W * Cin, Cin, pp + t * per_tap, out, kw * Cout, W, Cin, Cout, bp);
    }
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(torchtvm, m) {
  m.def("conv_transpose2d_channels_last(Tensor input, Tensor weight, Tensor? bias, int[] stride) -> Tensor",
        torch::dispatch(c10::DispatchKey::CPU, ConvTranspose2dChannelsLast));
}

}  // namespace torchtvm

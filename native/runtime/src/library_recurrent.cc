// Whole LSTM and GRU layers (all layers and directions of one nn.LSTM / nn.GRU) as library kernels:
// torch's at::lstm / at::gru, which run oneDNN's fused RNN primitive on CPU, in place of the
// per-time-step cells a graph compiler would unroll. Registered beside library_kernels.cc's ops and
// called through R.call_dps_packed (backend/recurrent.py emits the calls at import):
//
//   torchtvm.lstm(x, h0, c0, params..., attrs, out, h_n, c_n)
//   torchtvm.gru(x, h0, params..., attrs, out, h_n)
//   attrs = [has_biases, num_layers, bidirectional, batch_first]
//
// params are the op's flat weight list, in torch's order (w_ih, w_hh[, b_ih, b_hh][, w_hr] per layer
// and direction). torch's RNN ops have no out= form: their results (a few KB for typical taggers)
// are copied into TVM's buffers.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <vector>

#include "library_kernels.h"

namespace torchtvm {
namespace {

namespace ffi = tvm::ffi;

// The inputs before the attributes (x, the states, the weights) and the outputs after them.
struct RnnArgs {
  std::vector<at::Tensor> inputs, outputs;
  ffi::Shape attrs;
};

RnnArgs Unpack(const char* name, ffi::PackedArgs args, int states) {
  // x, the states, at least two weights; then the attributes and 1 + states outputs
  int n = args.size(), at_attrs = n - 2 - states;
  TORCH_CHECK(at_attrs >= 1 + states + 2 && n == at_attrs + 2 + states, name, " got ", n, " arguments; this is a torchtvm bug.");
  RnnArgs r{{}, {}, args[at_attrs].cast<ffi::Shape>()};
  TORCH_CHECK(r.attrs.size() == 4, name, " got ", r.attrs.size(), " attributes; this is a torchtvm bug.");
  for (int i = 0; i < at_attrs; ++i) r.inputs.push_back(View(args[i].cast<DLTensor*>()));
  for (int i = at_attrs + 1; i < n; ++i) r.outputs.push_back(View(args[i].cast<DLTensor*>()));
  return r;
}

void Lstm(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  RnnArgs r = Unpack("torchtvm.lstm", args, 2);
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

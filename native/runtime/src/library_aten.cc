// torchtvm.aten: any ATen op of the imported program as a library call, run by torch's dispatcher
// on TVM's buffers (no copy in; an op's out= variant writes into the buffer TVM planned, any other
// op's result is copied there once). It makes
// PyTorch's own kernel a candidate for ops the runtime has no kernel of its own for (GroupNorm,
// instance norm, pooling, transposed convolution...): backend/library_aten.py emits the calls, and
// placement times them against TVM's kernels.
//
//   torchtvm.aten(op, template, inputs..., outputs...)
//   op        "aten::group_norm" or "aten::name.overload"
//   template  "<argument>;<argument>;...|<output>;<output>...": the boxed arguments in schema order,
//             then one entry per output. An argument is T (the next input tensor), T:p0,p1,... (it,
//             permuted: a channels-last buffer seen in the layout the op expects), i<int>,
//             f<float>, b0/b1, L<int>,<int>,... (an int list, empty as L), N (None), O or O:p0,...
//             (the next output buffer, permuted: an out= argument, which the op writes itself).
//             An output entry is empty or p0,p1,... (the output buffer permuted the same way).

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "library_kernels.h"

namespace torchtvm {
namespace {

namespace ffi = tvm::ffi;

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) out.push_back(part);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

std::vector<int64_t> Ints(const std::string& s) {
  std::vector<int64_t> out;
  for (const auto& p : Split(s, ','))
    if (!p.empty()) out.push_back(std::stoll(p));
  return out;
}

at::Tensor Permuted(const at::Tensor& t, const std::string& perm) { return perm.empty() ? t : t.permute(Ints(perm)); }

// The op's handle, found once per name.
const c10::OperatorHandle& Op(const std::string& qualified) {
  static std::mutex mu;
  static std::map<std::string, c10::OperatorHandle> ops;
  std::lock_guard<std::mutex> lock(mu);
  auto it = ops.find(qualified);
  if (it != ops.end()) return it->second;
  auto dot = qualified.find('.');
  std::string name = qualified.substr(0, dot), overload = dot == std::string::npos ? "" : qualified.substr(dot + 1);
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  TORCH_CHECK(handle.has_value(), "torchtvm.aten: this torch has no op ", qualified,
              "; the model was built with a torch that had it: rebuild it with this one.");
  return ops.emplace(qualified, *handle).first->second;
}

// Parsed templates, by their text (a model calls the same few many times).
struct Template {
  std::vector<std::string> args, outs;
};

const Template& Parse(const std::string& text) {
  static std::mutex mu;
  static std::map<std::string, Template> parsed;
  std::lock_guard<std::mutex> lock(mu);
  auto it = parsed.find(text);
  if (it != parsed.end()) return it->second;
  auto bar = text.find('|');
  TORCH_CHECK(bar != std::string::npos, "torchtvm.aten: bad template ", text, "; this is a torchtvm bug.");
  Template t{Split(text.substr(0, bar), ';'), Split(text.substr(bar + 1), ';')};
  if (bar == 0) t.args.clear();
  // A destination-passing call has at least one output: "...|" is one output, written as it is
  // (Split gives no entry for an empty text).
  if (t.outs.empty()) t.outs.emplace_back();
  return parsed.emplace(text, t).first->second;
}

void Aten(ffi::PackedArgs args, ffi::Any* rv) {
  c10::InferenceMode guard;
  TORCH_CHECK(args.size() >= 3, "torchtvm.aten got ", args.size(), " arguments; this is a torchtvm bug.");
  std::string name = args[0].cast<std::string>();
  const Template& t = Parse(args[1].cast<std::string>());
  int n_out = static_cast<int>(t.outs.size()), first_out = args.size() - n_out, next = 2, written = 0;
  torch::jit::Stack stack;
  for (const auto& a : t.args) {
    TORCH_CHECK(!a.empty(), "torchtvm.aten: empty argument in the template of ", name, "; this is a torchtvm bug.");
    switch (a[0]) {
      case 'T': {
        TORCH_CHECK(next < first_out, "torchtvm.aten: ", name, " has more tensor arguments than inputs; this is a torchtvm bug.");
        at::Tensor x = View(args[next++].cast<DLTensor*>());
        stack.emplace_back(a.size() > 2 ? Permuted(x, a.substr(2)) : x);
        break;
      }
      case 'O': {
        TORCH_CHECK(written < n_out, "torchtvm.aten: ", name, " has more out= arguments than outputs; this is a torchtvm bug.");
        at::Tensor o = View(args[first_out + written++].cast<DLTensor*>());
        stack.emplace_back(a.size() > 2 ? Permuted(o, a.substr(2)) : o);
        break;
      }
      case 'i': stack.emplace_back(static_cast<int64_t>(std::stoll(a.substr(1)))); break;
      case 'f': stack.emplace_back(std::stod(a.substr(1))); break;
      case 'b': stack.emplace_back(a == "b1"); break;
      case 'L': stack.emplace_back(Ints(a.substr(1))); break;
      case 'N': stack.emplace_back(); break;
      default: TORCH_CHECK(false, "torchtvm.aten: unknown argument ", a, " for ", name, "; this is a torchtvm bug.");
    }
  }
  Op(name).callBoxed(&stack);
  if (written == n_out) return;  // an out= op: it wrote into TVM's buffers
  TORCH_CHECK(written == 0 && static_cast<int>(stack.size()) >= n_out, "torchtvm.aten: ", name, " returned ", stack.size(),
              " values for ", n_out, " outputs; this is a torchtvm bug.");
  for (int i = 0; i < n_out; ++i) {
    at::Tensor out = Permuted(View(args[first_out + i].cast<DLTensor*>()), t.outs[i]);
    out.copy_(stack[i].toTensor());
  }
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def_packed(
      "torchtvm.aten", [](ffi::PackedArgs a, ffi::Any* rv) { RunLibraryKernel("torchtvm.aten", Aten, a, rv); });
}

}  // namespace torchtvm

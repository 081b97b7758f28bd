// Load a TorchTVM-exported .pt with libtorch alone (no Python) and run it on random inputs.
//
//   run_exported model_tvm.pt 1x3x224x224[:float32] [2x8:int64 ...] [--runs N]
//
// Linking libtorchtvm_runtime.so registers torch.classes.torchtvm.Module; torch::jit::load then
// restores the compiled TVM code embedded in the .pt.
//
// An export is called as the model it came from: its tensors as arguments, m.forward({x, y}), and
// back comes what the model returned (a Tensor, or a tuple / list of them). An export written by the
// seed API torchtvm.compile, or before torchtvm recorded "calling_convention", takes one
// List[Tensor] and returns one: this program tells them apart by the forward's schema.
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

/** A mistake in the command line: printed as one sentence, exit code 2. */
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

static const char* kInputForm = "give each input as SIZES[:DTYPE], sizes joined by x, e.g. 1x3x224x224 or 2x8:int64";

/** A positive integer of at most 2^40, or nullopt ("12abc", "-1", "0", "" and overflow are not). */
static bool ParsePositive(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 13) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > (int64_t(1) << 40)) return false;
  *out = v;
  return true;
}

static at::Tensor RandomInput(const std::string& arg) {
  std::string shape = arg, dtype = "float32";
  auto colon = arg.find(':');
  if (colon != std::string::npos) {
    shape = arg.substr(0, colon);
    dtype = arg.substr(colon + 1);
  }
  static const char* kDtypes[] = {"float32", "float16", "bfloat16", "int64", "int32", "bool"};
  if (std::find(std::begin(kDtypes), std::end(kDtypes), dtype) == std::end(kDtypes)) {
    throw UsageError("input \"" + arg + "\": dtype \"" + dtype + "\" is not supported; use float32, float16, bfloat16, int64, int32 or bool.");
  }
  std::vector<int64_t> dims;
  std::stringstream ss(shape);
  std::string d;
  while (std::getline(ss, d, 'x')) {
    int64_t v = 0;
    if (!ParsePositive(d, &v)) throw UsageError("input \"" + arg + "\": \"" + d + "\" is not a size (a positive integer); " + kInputForm + ".");
    dims.push_back(v);
  }
  if (dims.empty() || shape.back() == 'x') throw UsageError("input \"" + arg + "\" has no sizes; " + std::string(kInputForm) + ".");
  if (dtype == "float32") return torch::rand(dims);
  if (dtype == "float16") return torch::rand(dims).to(torch::kHalf);
  if (dtype == "bfloat16") return torch::rand(dims).to(torch::kBFloat16);
  if (dtype == "int64") return torch::randint(0, 10, dims, torch::kLong);
  if (dtype == "int32") return torch::randint(0, 10, dims, torch::kInt);
  if (dtype == "bool") return torch::randint(0, 2, dims).to(torch::kBool);
  throw UsageError("unknown dtype " + dtype);
}

/** The message of a torch error without its C++ backtrace ("Exception raised from …", "frame #N: …"). */
static std::string Sentence(const std::exception& e) {
  std::string text = e.what();
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) text = ce->what_without_backtrace();
  for (const char* marker : {"\nException raised from", "Exception raised from", "\nframe #"}) {
    size_t p = text.find(marker);
    if (p != std::string::npos) text = text.substr(0, p);
  }
  // An error raised inside TorchScript carries the interpreter's traceback first and the real
  // message on its last "SomethingError: …" line (then, sometimes, that message again).
  if (text.find("Traceback of TorchScript") != std::string::npos) {
    size_t line = text.rfind("Error: ");
    if (line != std::string::npos) {
      size_t start = text.rfind('\n', line);
      std::string msg = text.substr(line + 7);
      msg = msg.substr(0, msg.find('\n'));
      if (start == std::string::npos || line - start < 40) text = msg;
    }
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "unknown error" : text;
}

/** Whether forward takes the seed API's single List[Tensor] (else: the model's own tensors). */
static bool TakesTensorList(torch::jit::Module& m) {
  const auto& args = m.get_method("forward").function().getSchema().arguments();
  if (args.size() != 2) return false;  // self + one argument
  auto list = args[1].type()->cast<c10::ListType>();
  return list && list->getElementType()->kind() == c10::TypeKind::TensorType;
}

/** Prints every tensor of an output (a Tensor, or tuples / lists of them, nested) in order. */
static void PrintOutputs(const c10::IValue& v, size_t& index) {
  if (v.isTensor()) {
    at::Tensor t = v.toTensor();
    std::cout << "output " << index++ << ": " << t.sizes() << " " << t.scalar_type() << "\n";
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) PrintOutputs(e, index);
  } else if (v.isList()) {
    for (const c10::IValue& e : v.toListRef()) PrintOutputs(e, index);
  } else {
    std::cout << "output " << index++ << ": " << v.tagKind() << "\n";
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " model.pt SIZES[:DTYPE] [SIZES[:DTYPE] ...] [--runs N]\n";
    return 2;
  }
  int runs = 1;
  std::vector<at::Tensor> inputs;
  try {
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--runs") {
        int64_t n = 0;
        if (i + 1 >= argc || !ParsePositive(argv[i + 1], &n) || n > 1000000000) throw UsageError("--runs needs a positive integer, e.g. --runs 100.");
        runs = static_cast<int>(n);
        ++i;
        continue;
      }
      inputs.push_back(RandomInput(a));
    }
    if (inputs.empty()) throw UsageError(std::string("no input given; ") + kInputForm + ".");
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\nusage: " << argv[0] << " model.pt SIZES[:DTYPE] [SIZES[:DTYPE] ...] [--runs N]\n";
    return 2;
  } catch (const std::exception& e) {
    // e.g. an input too large to allocate
    std::cerr << "error: could not make the inputs: " << Sentence(e) << "\n";
    return 2;
  }
  try {
    torch::jit::Module module = torch::jit::load(argv[1]);
    module.eval();
    std::vector<torch::jit::IValue> args;
    if (TakesTensorList(module)) {  // the seed API's convention: m.forward({List[Tensor]})
      c10::List<at::Tensor> list;
      for (auto& t : inputs) list.push_back(t);
      args.emplace_back(list);
    } else {  // the model's own: m.forward({x, y})
      args.assign(inputs.begin(), inputs.end());
    }
    torch::NoGradGuard no_grad;
    c10::IValue out;
    for (int r = 0; r < runs; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      out = module.forward(args);
      auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (runs > 1) std::cout << "run " << r << ": " << ms << " ms\n";
    }
    size_t index = 0;
    PrintOutputs(out, index);
  } catch (const std::exception& e) {
    std::cerr << "error: " << Sentence(e) << "\n";
    return 1;
  }
  return 0;
}

// Load a TorchTVM-exported .pt with libtorch alone (no Python) and run it on random inputs.
//
//   run_exported model_tvm.pt 1x3x224x224[:float32] [2x8:int64 ...] [--runs N]
//
// Linking libtorchtvm_runtime.so registers torch.classes.torchtvm.Module; torch::jit::load then
// restores the compiled TVM code embedded in the .pt.
#include <torch/script.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static at::Tensor RandomInput(const std::string& arg) {
  std::string shape = arg, dtype = "float32";
  auto colon = arg.find(':');
  if (colon != std::string::npos) {
    shape = arg.substr(0, colon);
    dtype = arg.substr(colon + 1);
  }
  std::vector<int64_t> dims;
  std::stringstream ss(shape);
  std::string d;
  while (std::getline(ss, d, 'x')) dims.push_back(std::stoll(d));
  if (dtype == "float32") return torch::rand(dims);
  if (dtype == "float16") return torch::rand(dims).to(torch::kHalf);
  if (dtype == "bfloat16") return torch::rand(dims).to(torch::kBFloat16);
  if (dtype == "int64") return torch::randint(0, 10, dims, torch::kLong);
  if (dtype == "int32") return torch::randint(0, 10, dims, torch::kInt);
  if (dtype == "bool") return torch::randint(0, 2, dims).to(torch::kBool);
  throw std::runtime_error("unknown dtype " + dtype);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " model.pt SHAPE[:dtype] [SHAPE[:dtype] ...] [--runs N]\n";
    return 2;
  }
  int runs = 1;
  std::vector<at::Tensor> inputs;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
      continue;
    }
    inputs.push_back(RandomInput(a));
  }
  try {
    torch::jit::Module module = torch::jit::load(argv[1]);
    module.eval();
    c10::List<at::Tensor> list;
    for (auto& t : inputs) list.push_back(t);
    std::vector<torch::jit::IValue> args{list};
    torch::NoGradGuard no_grad;
    c10::IValue out;
    for (int r = 0; r < runs; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      out = module.forward(args);
      auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (runs > 1) std::cout << "run " << r << ": " << ms << " ms\n";
    }
    auto outs = out.toTensorList();
    for (size_t i = 0; i < outs.size(); ++i) {
      at::Tensor t = outs.get(i);
      std::cout << "output " << i << ": " << t.sizes() << " " << t.scalar_type() << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

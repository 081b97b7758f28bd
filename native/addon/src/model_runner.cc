// libtorch C++: loading, inspecting and timing TorchScript models exactly as a C++ server would
// (torch::jit::load, InferenceMode, forward). See model_runner.h for the boundary.
#include "model_runner.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

namespace torchtvm_addon {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_runtime_loaded{false};
std::mutex g_load_mu;

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

bool Contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

/**
 * One sentence out of a torch error. Errors raised inside TorchScript carry a traceback with the
 * real message on the last "SomethingError: …" line; plain errors carry it on the first line.
 */
std::string Sentence(const std::string& raw) {
  // A C++ backtrace (TORCH_SHOW_CPP_STACKTRACES=1, or an error wrapped by the interpreter) is detail:
  // the lines from "Exception raised from …" or "frame #N:" on are never part of the sentence.
  std::vector<std::string> lines;
  std::istringstream in(raw);
  for (std::string l; std::getline(in, l);) {
    l = Trim(l);
    if (l.rfind("Exception raised from", 0) == 0 || l.rfind("frame #", 0) == 0) break;
    if (!l.empty()) lines.push_back(l);
  }
  if (lines.empty()) return "unknown error";
  if (Contains(raw, "The following operation failed in the TorchScript interpreter") || Contains(raw, "Traceback of TorchScript")) {
    for (size_t i = lines.size(); i-- > 0;) {
      const std::string& l = lines[i];
      size_t p = l.find("Error: ");
      if (p != std::string::npos && p < 40 && l.find(' ') > p) {
        // the message may continue on the following lines
        std::string msg = l.substr(p + 7);
        for (size_t j = i + 1; j < lines.size() && msg.size() < 400; ++j) {
          if (lines[j] == msg) continue;  // torch repeats the inner error's text
          msg += " " + lines[j];
        }
        return msg;
      }
    }
  }
  std::string first = lines[0];
  if (first.size() > 500) first = first.substr(0, 500) + "…";
  return first;
}

std::string ErrorText(const std::exception& e) {
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

void CheckFile(const std::string& path) {
  if (path.empty()) throw Error("file_not_found", "No model file was given; pass the path of a TorchScript .pt file.");
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw Error("file_not_found", path + " does not exist; check the path.");
  if (S_ISDIR(st.st_mode)) throw Error("not_a_file", path + " is a folder; give the path of a TorchScript .pt file.");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error("unreadable", path + " cannot be read (" + std::strerror(errno) + ").");
  char magic[4] = {0, 0, 0, 0};
  size_t n = std::fread(magic, 1, 4, f);
  std::fclose(f);
  if (n < 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0) {
    throw Error("not_torchscript", path + " is not a TorchScript file (it is not a zip archive); save the model with torch.jit.save.");
  }
}

torch::jit::Module LoadModel(const std::string& path) {
  CheckFile(path);
  try {
    torch::jit::Module m = torch::jit::load(path, c10::Device(c10::kCPU));
    m.eval();
    return m;
  } catch (const std::exception& e) {
    std::string raw = ErrorText(e);
    if (Contains(raw, "torchtvm") && !g_runtime_loaded.load() &&
        (Contains(raw, "Unknown type") || Contains(raw, "nonexistent") || Contains(raw, "not find") ||
         Contains(raw, "Unknown builtin") || Contains(raw, "classes"))) {
      throw Error("runtime_missing",
                  path + " was exported by TorchTVM Workbench and needs its runtime library (libtorchtvm_runtime.so), "
                         "which is not loaded here; build it with \"npm run setup\" or pass its path.",
                  raw);
    }
    if (Contains(raw, "PytorchStreamReader") || Contains(raw, "constants.pkl") || Contains(raw, "file not found")) {
      throw Error("not_torchscript",
                  path + " is a zip archive but not a TorchScript module (a torch.save()d state dict or object?); "
                         "convert the model with torch.jit.trace or torch.jit.script and save it with torch.jit.save.",
                  raw);
    }
    // The runtime's own checks (format version, SHA-256, CPU features) are sentences: pass them on.
    throw Error("load_failed", path + " could not be loaded: " + Sentence(raw), raw);
  }
}

const char* DtypeName(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return "float32";
    case c10::kHalf: return "float16";
    case c10::kBFloat16: return "bfloat16";
    case c10::kLong: return "int64";
    case c10::kInt: return "int32";
    case c10::kBool: return "bool";
    case c10::kDouble: return "float64";
    case c10::kByte: return "uint8";
    case c10::kChar: return "int8";
    case c10::kShort: return "int16";
    default: return "";
  }
}

c10::ScalarType ParseDtype(const std::string& s) {
  if (s == "float32") return c10::kFloat;
  if (s == "float16") return c10::kHalf;
  if (s == "bfloat16") return c10::kBFloat16;
  if (s == "int64") return c10::kLong;
  if (s == "int32") return c10::kInt;
  if (s == "bool") return c10::kBool;
  throw Error("bad_request", "dtype \"" + s + "\" is not supported; use float32, float16, bfloat16, int64, int32 or bool.");
}

bool IsTensorList(const c10::TypePtr& t) {
  auto lt = t->cast<c10::ListType>();
  return lt && lt->getElementType()->kind() == c10::TypeKind::TensorType;
}

struct Forward {
  std::vector<c10::Argument> args;  // without self
  bool list_input = false;
};

Forward ForwardOf(torch::jit::Module& m, const std::string& path) {
  auto method = m.find_method("forward");
  if (!method) throw Error("no_forward", path + " has no forward method; benchmark and inspect need one.");
  Forward f;
  const auto& schema = method->function().getSchema();
  for (size_t i = 1; i < schema.arguments().size(); ++i) f.args.push_back(schema.arguments()[i]);
  f.list_input = f.args.size() == 1 && IsTensorList(f.args[0].type());
  return f;
}

void VisitOps(torch::jit::Block* b, std::map<std::string, int64_t>& counts) {
  static const char* kKeep[] = {"prim::If", "prim::Loop", "prim::CallMethod", "prim::CallFunction"};
  for (torch::jit::Node* n : b->nodes()) {
    std::string kind = n->kind().toQualString();
    bool keep = kind.rfind("prim::", 0) != 0;
    for (const char* k : kKeep) keep = keep || kind == k;
    if (keep) counts[kind]++;
    for (torch::jit::Block* sub : n->blocks()) VisitOps(sub, counts);
  }
}

bool IsTorchtvmObject(const c10::IValue& v) {
  if (!v.isObject()) return false;
  auto name = v.toObjectRef().type()->name();
  return name && Contains(name->qualifiedName(), "torchtvm");
}

/** Calls a no-argument method of a custom-class object (torch.classes.torchtvm.*) if it has it. */
bool CallObjectMethod(const c10::IValue& obj, const char* name, c10::IValue* out) {
  auto type = obj.toObjectRef().type();
  torch::jit::Function* fn = type->findMethod(name);
  if (!fn) return false;
  torch::jit::Stack stack{obj};
  fn->run(stack);
  if (stack.empty()) return false;
  *out = stack.back();
  return true;
}

void FindExport(torch::jit::Module& m, InspectResult& r) {
  // 1. A method on the wrapper module itself.
  for (const char* name : {"metadata", "torchtvm_metadata", "get_metadata"}) {
    if (auto meth = m.find_method(name)) {
      if (meth->function().getSchema().arguments().size() != 1) continue;
      c10::IValue v = (*meth)(std::vector<c10::IValue>{});
      if (v.isString()) {
        r.metadata_json = v.toStringRef();
        r.metadata_source = std::string("method ") + name + "()";
        break;
      }
    }
  }
  // 2. torch.classes.torchtvm objects and string attributes anywhere in the module tree.
  for (const auto& attr : m.named_attributes(/*recurse=*/true)) {
    const c10::IValue& v = attr.value;
    if (IsTorchtvmObject(v)) {
      r.exported = true;
      c10::IValue meta;
      if (r.metadata_json.empty() && CallObjectMethod(v, "metadata", &meta) && meta.isString()) {
        r.metadata_json = meta.toStringRef();
        r.metadata_source = attr.name + ".metadata()";
      }
    } else if (r.metadata_json.empty() && v.isString() && Contains(attr.name, "metadata")) {
      const std::string& s = v.toStringRef();
      if (!s.empty() && s[0] == '{') {
        r.metadata_json = s;
        r.metadata_source = "attribute " + attr.name;
      }
    }
  }
  if (!r.metadata_json.empty()) r.exported = r.exported || Contains(r.metadata_json, "format_version");
}

int64_t SampleSize(const DimSpec& d) {
  if (d.value >= 1) return d.value;
  int64_t s = std::max<int64_t>(d.min, 2);
  if (d.max > 0) s = std::min(s, d.max);
  return s;
}

at::Tensor MakeInput(const InputSpec& s) {
  std::vector<int64_t> shape;
  for (const auto& d : s.dims) shape.push_back(SampleSize(d));
  c10::ScalarType dt = ParseDtype(s.dtype);
  if (dt == c10::kBool) return at::randint(0, 2, shape, at::TensorOptions().dtype(c10::kLong)).to(c10::kBool);
  if (!c10::isFloatingType(dt)) {
    int64_t lo = s.has_range ? (int64_t)std::ceil(s.lo) : 0, hi = s.has_range ? (int64_t)std::floor(s.hi) : 100;
    if (hi <= lo) hi = lo + 1;
    return at::randint(lo, hi, shape, at::TensorOptions().dtype(dt));
  }
  double lo = s.has_range ? s.lo : -1.0, hi = s.has_range ? s.hi : 1.0;
  return (at::rand(shape, at::TensorOptions().dtype(c10::kFloat)) * (hi - lo) + lo).to(dt);
}

std::string ShapeText(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

struct Loaded {
  std::string path;
  torch::jit::Module module;
  torch::jit::Method forward;
  bool list_input;
  std::vector<c10::IValue> stack;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

void LoadLibrary(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_load_mu);
  if (g_runtime_loaded.load()) return;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    throw Error("runtime_missing", "The TorchTVM runtime library " + path + " does not exist; build it with \"npm run setup\".");
  }
  if (!dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
    const char* err = dlerror();
    throw Error("runtime_unloadable", "The TorchTVM runtime library " + path + " could not be loaded: " + (err ? err : "unknown error") + ".");
  }
  g_runtime_loaded = true;
}

bool RuntimeLoaded() { return g_runtime_loaded.load(); }

InspectResult Inspect(const std::string& path) {
  torch::jit::Module m = LoadModel(path);
  InspectResult r;
  try {
    Forward f = ForwardOf(m, path);
    r.list_input = f.list_input;
    auto method = m.get_method("forward");
    auto graph = method.graph();
    std::vector<torch::jit::Value*> gin(graph->inputs().begin(), graph->inputs().end());
    for (size_t i = 0; i < f.args.size(); ++i) {
      InputInfo info;
      info.name = f.args[i].name();
      info.type = f.args[i].type()->annotation_str();
      if (i + 1 < gin.size()) {
        if (auto tt = gin[i + 1]->type()->cast<c10::TensorType>()) {
          if (auto sizes = tt->sizes().concrete_sizes()) {
            info.has_shape = true;
            info.shape = *sizes;
          }
          if (auto st = tt->scalarType()) info.dtype = DtypeName(*st);
        }
      }
      r.inputs.push_back(std::move(info));
    }
    std::map<std::string, int64_t> counts;
    auto g = graph->copy();
    torch::jit::Inline(*g);
    VisitOps(g->block(), counts);
    r.ops.assign(counts.begin(), counts.end());
    std::stable_sort(r.ops.begin(), r.ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    for (const at::Tensor& p : m.parameters(true)) {
      r.param_count += p.numel();
      r.param_bytes += p.numel() * p.element_size();
      r.tensors++;
    }
    for (const at::Tensor& b : m.buffers(true)) {
      r.param_bytes += b.numel() * b.element_size();
      r.tensors++;
    }
    FindExport(m, r);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string raw = ErrorText(e);
    throw Error("inspect_failed", path + " could not be inspected: " + Sentence(raw), raw);
  }
  return r;
}

Stats Summarize(std::vector<double> s) {
  Stats st;
  st.runs = (int64_t)s.size();
  if (s.empty()) return st;
  std::sort(s.begin(), s.end());
  auto pct = [&](double p) {
    double k = (s.size() - 1) * p;
    size_t lo = (size_t)k, hi = std::min(lo + 1, s.size() - 1);
    return s[lo] + (s[hi] - s[lo]) * (k - lo);
  };
  st.min = s.front();
  st.max = s.back();
  double sum = 0;
  for (double v : s) sum += v;
  st.mean = sum / s.size();
  double var = 0;
  for (double v : s) var += (v - st.mean) * (v - st.mean);
  st.stddev = s.size() > 1 ? std::sqrt(var / (s.size() - 1)) : 0;
  st.p50 = pct(0.5);
  st.p90 = pct(0.9);
  st.p99 = pct(0.99);
  return st;
}

BenchResult Benchmark(const std::vector<std::string>& paths, const std::vector<InputSpec>& specs,
                      const BenchOptions& opts, const std::atomic<bool>& cancel, const SampleSink& sink) {
  if (paths.empty()) throw Error("bad_request", "No model to benchmark.");
  at::init_num_threads();
  if (opts.threads > 0) at::set_num_threads(opts.threads);
  c10::InferenceMode inference;
  BenchResult result;
  result.threads = at::get_num_threads();

  std::vector<Loaded> models;
  for (const auto& p : paths) {
    torch::jit::Module m = LoadModel(p);
    Forward f = ForwardOf(m, p);
    models.push_back(Loaded{p, m, m.get_method("forward"), f.list_input, {}});
    if (!f.list_input) {
      size_t required = 0;
      for (const auto& a : f.args) required += a.default_value() ? 0 : 1;
      if (specs.size() < required || specs.size() > f.args.size()) {
        std::string names;
        for (const auto& a : f.args) names += (names.empty() ? "" : ", ") + a.name();
        throw Error("inputs_mismatch", p + "'s forward takes " + std::to_string(f.args.size()) + " input(s) (" + names + ") but " +
                                           std::to_string(specs.size()) + " were described; give one --input per argument, in order.");
      }
    }
  }

  at::manual_seed(0);
  std::vector<at::Tensor> inputs;
  for (const auto& s : specs) {
    inputs.push_back(MakeInput(s));
    result.input_shapes.push_back({s.name, inputs.back().sizes().vec()});
    result.input_dtypes.push_back(s.dtype);
  }
  for (auto& m : models) {
    if (m.list_input) {
      c10::List<at::Tensor> list;
      for (const auto& t : inputs) list.push_back(t);
      m.stack = {c10::IValue(list)};
    } else {
      for (const auto& t : inputs) m.stack.emplace_back(t);
    }
  }

  auto run_once = [](Loaded& m) { return m.forward(m.stack); };

  // The first call also checks that the model accepts the inputs.
  std::vector<ModelRun> runs(models.size());
  for (size_t i = 0; i < models.size(); ++i) {
    runs[i].path = models[i].path;
    runs[i].list_input = models[i].list_input;
    auto t0 = Clock::now();
    try {
      run_once(models[i]);
    } catch (const std::exception& e) {
      std::string raw = ErrorText(e), shapes;
      for (size_t k = 0; k < inputs.size(); ++k) shapes += (k ? ", " : "") + specs[k].name + " " + ShapeText(inputs[k]) + " " + specs[k].dtype;
      throw Error("inputs_rejected", models[i].path + " rejected the inputs (" + shapes + "): " + Sentence(raw), raw);
    }
    runs[i].first_ms = Ms(Clock::now() - t0);
  }

  auto check_error = [&](size_t i, const std::exception& e) {
    std::string raw = ErrorText(e);
    throw Error("run_failed", models[i].path + " failed while running: " + Sentence(raw), raw);
  };

  for (int64_t w = 0; w < opts.warmup && !cancel.load(std::memory_order_relaxed); ++w) {
    for (size_t i = 0; i < models.size(); ++i) {
      try {
        run_once(models[i]);
      } catch (const std::exception& e) {
        check_error(i, e);
      }
    }
  }

  if (opts.bare) {
    // No per-run clock and no samples: one clock per block of runs. stats summarize the block
    // means (robust to the odd preemption), bare_mean_ms is total time / runs.
    const int64_t block = std::max<int64_t>(1, std::min<int64_t>(100, opts.iterations / 20));
    for (size_t i = 0; i < models.size() && !cancel.load(); ++i) {
      std::vector<double> block_means;
      auto start = Clock::now();
      int64_t n = 0;
      while (n < opts.iterations && !cancel.load(std::memory_order_relaxed)) {
        int64_t k = std::min(block, opts.iterations - n);
        auto t0 = Clock::now();
        for (int64_t j = 0; j < k; ++j) {
          try {
            run_once(models[i]);
          } catch (const std::exception& e) {
            check_error(i, e);
          }
        }
        block_means.push_back(Ms(Clock::now() - t0) / k);
        n += k;
      }
      runs[i].bare_mean_ms = n ? Ms(Clock::now() - start) / n : 0;
      runs[i].stats = Summarize(std::move(block_means));
      result.iterations_done = n;
    }
    result.cancelled = cancel.load();
    result.models = std::move(runs);
    return result;
  }

  std::vector<std::vector<double>> samples(models.size());
  for (auto& s : samples) s.reserve((size_t)std::min<int64_t>(opts.iterations, 1 << 22));
  std::vector<Sample> pending;
  auto last_flush = Clock::now();
  auto flush_every = std::chrono::duration<double, std::milli>(opts.flush_ms);
  std::vector<size_t> order(models.size());
  int64_t it = 0;
  for (; it < opts.iterations; ++it) {
    if (cancel.load(std::memory_order_relaxed)) break;
    for (size_t k = 0; k < models.size(); ++k) order[k] = (it % 2 == 0) ? k : models.size() - 1 - k;
    for (size_t i : order) {
      auto t0 = Clock::now();
      try {
        run_once(models[i]);
      } catch (const std::exception& e) {
        check_error(i, e);
      }
      auto t1 = Clock::now();
      double ms = Ms(t1 - t0);
      samples[i].push_back(ms);
      pending.push_back(Sample{(int)i, it, ms});
      if (t1 - last_flush >= flush_every) {
        sink(std::move(pending));
        pending = {};
        last_flush = t1;
      }
    }
  }
  if (!pending.empty()) sink(std::move(pending));
  result.iterations_done = it;
  result.cancelled = it < opts.iterations;
  for (size_t i = 0; i < models.size(); ++i) runs[i].stats = Summarize(std::move(samples[i]));
  result.models = std::move(runs);
  return result;
}

}  // namespace torchtvm_addon

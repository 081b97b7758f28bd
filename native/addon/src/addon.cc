// Node-API surface of torchtvm_addon.node (node-addon-api, NAPI_VERSION 8). No torch headers here:
// model_runner.h is the boundary and only std types cross it. Nothing blocks the JS thread: inspect runs
// on libuv's pool (AsyncWorker); a benchmark runs on its own thread and streams its samples, then
// its result, through one ThreadSafeFunction, so every sample reaches JS before the promise settles.
//
//   loadLibrary(path): void                       dlopen(RTLD_GLOBAL) libtorchtvm_runtime.so
//   runtimeLoaded(): boolean
//   inspect(path): Promise<InspectResult>
//   benchmark(paths, specs, {warmup, iterations, threads, bare}, onSample?(model, iteration, ms))
//     : {done: Promise<BenchResult>, cancel(): void}
//   summarize(number[]): Stats                    the same statistics, for tests and JS callers
#include <napi.h>

#include <memory>
#include <thread>

#include "model_runner.h"

namespace torchtvm_addon {
namespace {

Napi::Value MakeError(Napi::Env env, const Error& e) {
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.code));
  if (!e.detail.empty()) err.Set("detail", Napi::String::New(env, e.detail));
  return err.Value();
}

// An unexpected C++ exception: its first line is the message, a backtrace ("Exception raised from …",
// "frame #N: …") is kept as detail only.
Error FromStd(const std::exception& e) {
  std::string raw = e.what();
  std::string first = raw.substr(0, raw.find('\n'));
  size_t bt = first.find("Exception raised from");
  if (bt != std::string::npos) first = first.substr(0, bt);
  while (!first.empty() && (first.back() == ' ' || first.back() == '\r')) first.pop_back();
  if (first.size() > 500) first = first.substr(0, 500) + "…";
  return Error("internal", "Internal error in the benchmark addon: " + (first.empty() ? std::string("no message") : first), raw);
}

Napi::Value ParseJson(Napi::Env env, const std::string& text) {
  Napi::Object json = env.Global().Get("JSON").As<Napi::Object>();
  return json.Get("parse").As<Napi::Function>().Call(json, {Napi::String::New(env, text)});
}

Napi::Object StatsToJs(Napi::Env env, const Stats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("min", s.min);
  o.Set("max", s.max);
  o.Set("mean", s.mean);
  o.Set("p50", s.p50);
  o.Set("p90", s.p90);
  o.Set("p99", s.p99);
  o.Set("stddev", s.stddev);
  o.Set("runs", Napi::Number::New(env, (double)s.runs));
  return o;
}

std::string GetString(Napi::Object o, const char* key, const char* what) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string(what) + ": \"" + key + "\" must be a string.");
  return v.As<Napi::String>().Utf8Value();
}

InputSpec SpecFromJs(Napi::Value v, size_t index) {
  std::string where = "input #" + std::to_string(index + 1);
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), where + " must be an object {name, dims, dtype}.");
  Napi::Object o = v.As<Napi::Object>();
  InputSpec s;
  s.name = GetString(o, "name", where.c_str());
  s.dtype = GetString(o, "dtype", where.c_str());
  Napi::Value dims = o.Get("dims");
  if (!dims.IsArray()) throw Napi::TypeError::New(v.Env(), where + " (" + s.name + "): dims must be an array.");
  Napi::Array arr = dims.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value d = arr.Get(i);
    DimSpec dim;
    if (d.IsNumber()) {
      dim.value = d.As<Napi::Number>().Int64Value();
      if (dim.value < 1) throw Napi::RangeError::New(v.Env(), where + " (" + s.name + "): dimensions must be 1 or more.");
    } else if (d.IsObject()) {
      Napi::Object so = d.As<Napi::Object>();
      dim.sym = so.Get("name").IsString() ? so.Get("name").As<Napi::String>().Utf8Value() : "?";
      if (so.Get("min").IsNumber()) dim.min = so.Get("min").As<Napi::Number>().Int64Value();
      if (so.Get("max").IsNumber()) dim.max = so.Get("max").As<Napi::Number>().Int64Value();
    } else {
      throw Napi::TypeError::New(v.Env(), where + " (" + s.name + "): a dimension must be a number or {name, min, max}.");
    }
    s.dims.push_back(dim);
  }
  Napi::Value range = o.Get("range");
  if (range.IsArray() && range.As<Napi::Array>().Length() == 2) {
    s.has_range = true;
    s.lo = range.As<Napi::Array>().Get(0u).ToNumber().DoubleValue();
    s.hi = range.As<Napi::Array>().Get(1u).ToNumber().DoubleValue();
  }
  return s;
}

// ---- inspect ------------------------------------------------------------------------------------

class InspectWorker : public Napi::AsyncWorker {
 public:
  InspectWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env, "torchtvm.inspect"), path_(std::move(path)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = Inspect(path_);
    } catch (const Error& e) {
      error_ = std::make_unique<Error>(e);
    } catch (const std::exception& e) {
      error_ = std::make_unique<Error>(FromStd(e));
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_) {
      deferred_.Reject(MakeError(env, *error_));
      return;
    }
    const InspectResult& r = result_;
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", path_);
    Napi::Array inputs = Napi::Array::New(env, r.inputs.size());
    for (size_t i = 0; i < r.inputs.size(); ++i) {
      const InputInfo& in = r.inputs[i];
      Napi::Object io = Napi::Object::New(env);
      io.Set("name", in.name);
      io.Set("type", in.type);
      if (in.has_shape) {
        Napi::Array shape = Napi::Array::New(env, in.shape.size());
        for (size_t k = 0; k < in.shape.size(); ++k) shape.Set(k, Napi::Number::New(env, (double)in.shape[k]));
        io.Set("shape", shape);
      }
      if (!in.dtype.empty()) io.Set("dtype", in.dtype);
      inputs.Set(i, io);
    }
    o.Set("inputs", inputs);
    o.Set("input_style", r.list_input ? "list" : "positional");
    Napi::Object ops = Napi::Object::New(env);
    for (const auto& [k, n] : r.ops) ops.Set(k, Napi::Number::New(env, (double)n));
    o.Set("ops", ops);
    Napi::Object params = Napi::Object::New(env);
    params.Set("count", Napi::Number::New(env, (double)r.param_count));
    params.Set("bytes", Napi::Number::New(env, (double)r.param_bytes));
    params.Set("tensors", Napi::Number::New(env, (double)r.tensors));
    o.Set("parameters", params);
    if (!r.metadata_json.empty()) {
      try {
        Napi::Value meta = ParseJson(env, r.metadata_json);
        o.Set("exported", meta.IsObject() ? meta : Napi::Value(Napi::Object::New(env)));
      } catch (const Napi::Error&) {
        Napi::Object bad = Napi::Object::New(env);
        bad.Set("error", "The embedded metadata is not valid JSON.");
        bad.Set("raw", r.metadata_json.substr(0, 2000));
        o.Set("exported", bad);
      }
      o.Set("metadata_source", r.metadata_source);
    } else if (r.exported) {
      Napi::Object note = Napi::Object::New(env);
      note.Set("note", "Exported by TorchTVM Workbench; this file does not expose its metadata.");
      o.Set("exported", note);
    } else {
      o.Set("exported", env.Null());
    }
    deferred_.Resolve(o);
  }

 private:
  std::string path_;
  Napi::Promise::Deferred deferred_;
  InspectResult result_;
  std::unique_ptr<Error> error_;
};

Napi::Value JsInspect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "inspect(path): path must be a string.");
  auto* w = new InspectWorker(env, info[0].As<Napi::String>().Utf8Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// ---- benchmark ----------------------------------------------------------------------------------

struct BenchJob {
  std::vector<std::string> paths;
  std::vector<InputSpec> specs;
  BenchOptions opts;
  std::atomic<bool> cancel{false};
  Napi::ThreadSafeFunction tsfn;
  std::unique_ptr<Napi::Promise::Deferred> deferred;
  BenchResult result;
  std::unique_ptr<Error> error;
  bool sample_error_reported = false;
};

Napi::Object BenchResultToJs(Napi::Env env, const BenchResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("threads", Napi::Number::New(env, r.threads));
  o.Set("iterations", Napi::Number::New(env, (double)r.iterations_done));
  o.Set("cancelled", Napi::Boolean::New(env, r.cancelled));
  Napi::Array inputs = Napi::Array::New(env, r.input_shapes.size());
  for (size_t i = 0; i < r.input_shapes.size(); ++i) {
    Napi::Object io = Napi::Object::New(env);
    io.Set("name", r.input_shapes[i].first);
    Napi::Array shape = Napi::Array::New(env, r.input_shapes[i].second.size());
    for (size_t k = 0; k < r.input_shapes[i].second.size(); ++k) shape.Set(k, Napi::Number::New(env, (double)r.input_shapes[i].second[k]));
    io.Set("shape", shape);
    io.Set("dtype", r.input_dtypes[i]);
    inputs.Set(i, io);
  }
  o.Set("inputs", inputs);
  Napi::Array models = Napi::Array::New(env, r.models.size());
  for (size_t i = 0; i < r.models.size(); ++i) {
    const ModelRun& m = r.models[i];
    Napi::Object mo = Napi::Object::New(env);
    mo.Set("path", m.path);
    mo.Set("input_style", m.list_input ? "list" : "positional");
    mo.Set("first_ms", m.first_ms);
    mo.Set("stats", StatsToJs(env, m.stats));
    if (m.bare_mean_ms >= 0) mo.Set("bare_mean_ms", m.bare_mean_ms);
    models.Set(i, mo);
  }
  o.Set("models", models);
  return o;
}

Napi::Value JsBenchmark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "benchmark(paths, inputSpecs, {warmup, iterations, threads}, onSample?)";
  auto job = std::make_shared<BenchJob>();
  if (info.Length() < 1) throw Napi::TypeError::New(env, std::string(usage) + ": give a model path.");
  if (info[0].IsString()) {
    job->paths.push_back(info[0].As<Napi::String>().Utf8Value());
  } else if (info[0].IsArray()) {
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      if (!a.Get(i).IsString()) throw Napi::TypeError::New(env, std::string(usage) + ": paths must be strings.");
      job->paths.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    }
  } else {
    throw Napi::TypeError::New(env, std::string(usage) + ": paths must be a string or an array of strings.");
  }
  if (job->paths.empty()) throw Napi::TypeError::New(env, std::string(usage) + ": give at least one model path.");
  if (info.Length() > 1 && info[1].IsArray()) {
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) job->specs.push_back(SpecFromJs(a.Get(i), i));
  } else if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
    throw Napi::TypeError::New(env, std::string(usage) + ": inputSpecs must be an array.");
  }
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    auto num = [&](const char* k, double def, double lo, double hi) {
      Napi::Value v = o.Get(k);
      if (v.IsUndefined() || v.IsNull()) return def;
      if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(k) + " must be a number.");
      double d = v.As<Napi::Number>().DoubleValue();
      if (!(d >= lo && d <= hi)) throw Napi::RangeError::New(env, std::string(k) + " must be between " + std::to_string((long long)lo) + " and " + std::to_string((long long)hi) + ".");
      return d;
    };
    job->opts.warmup = (int64_t)num("warmup", 10, 0, 1e7);
    job->opts.iterations = (int64_t)num("iterations", 100, 1, 1e8);
    job->opts.threads = (int)num("threads", 0, 0, 1024);
    job->opts.flush_ms = num("flushMs", 25, 0, 1e6);
    job->opts.bare = o.Get("bare").ToBoolean().Value();
  }
  Napi::Function onSample = (info.Length() > 3 && info[3].IsFunction())
                                ? info[3].As<Napi::Function>()
                                : Napi::Function::New(env, [](const Napi::CallbackInfo&) {});
  job->tsfn = Napi::ThreadSafeFunction::New(env, onSample, "torchtvm.benchmark", 0, 1);
  job->deferred = std::make_unique<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("done", job->deferred->Promise());
  handle.Set("cancel", Napi::Function::New(env, [job](const Napi::CallbackInfo&) { job->cancel = true; }, "cancel"));

  std::thread([job]() {
    try {
      job->result = Benchmark(job->paths, job->specs, job->opts, job->cancel, [job](std::vector<Sample>&& batch) {
        auto b = std::make_shared<std::vector<Sample>>(std::move(batch));
        job->tsfn.BlockingCall([job, b](Napi::Env env, Napi::Function fn) {
          if (env == nullptr) return;
          for (const Sample& s : *b) {
            try {
              fn.Call({Napi::Number::New(env, s.model), Napi::Number::New(env, (double)s.iteration), Napi::Number::New(env, s.ms)});
            } catch (const Napi::Error&) {
              // A throwing onSample must not stop the measurement; the samples are in the result.
            }
          }
        });
      });
    } catch (const Error& e) {
      job->error = std::make_unique<Error>(e);
    } catch (const std::exception& e) {
      job->error = std::make_unique<Error>(FromStd(e));
    }
    job->tsfn.BlockingCall([job](Napi::Env env, Napi::Function) {
      if (env == nullptr) return;
      if (job->error) job->deferred->Reject(MakeError(env, *job->error));
      else job->deferred->Resolve(BenchResultToJs(env, job->result));
    });
    job->tsfn.Release();
  }).detach();
  return handle;
}

// ---- small synchronous helpers ------------------------------------------------------------------

Napi::Value JsLoadLibrary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadLibrary(path): path must be a string.");
  try {
    LoadLibrary(info[0].As<Napi::String>().Utf8Value());
  } catch (const Error& e) {
    throw Napi::Error(env, MakeError(env, e));
  }
  return env.Undefined();
}

Napi::Value JsRuntimeLoaded(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), RuntimeLoaded()); }

Napi::Value JsSummarize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "summarize(samples): samples must be an array of numbers.");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<double> v;
  for (uint32_t i = 0; i < a.Length(); ++i) v.push_back(a.Get(i).ToNumber().DoubleValue());
  return StatsToJs(env, Summarize(std::move(v)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("loadLibrary", Napi::Function::New(env, JsLoadLibrary, "loadLibrary"));
  exports.Set("runtimeLoaded", Napi::Function::New(env, JsRuntimeLoaded, "runtimeLoaded"));
  exports.Set("inspect", Napi::Function::New(env, JsInspect, "inspect"));
  exports.Set("benchmark", Napi::Function::New(env, JsBenchmark, "benchmark"));
  exports.Set("summarize", Napi::Function::New(env, JsSummarize, "summarize"));
  return exports;
}

}  // namespace
}  // namespace torchtvm_addon

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return torchtvm_addon::Init(env, exports); }

NODE_API_MODULE(torchtvm_addon, InitAddon)

// The libtorch side of the addon, behind a boundary of plain std types: addon.cc (Node-API) never
// includes torch headers and no libtorch object crosses to JS.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace torchtvm_addon {

/** A failure as the user should read it: a stable code, one sentence, the raw text as detail. */
struct Error : std::exception {
  std::string code, message, detail;
  Error(std::string c, std::string m, std::string d = "") : code(std::move(c)), message(std::move(m)), detail(std::move(d)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

struct DimSpec {
  int64_t value = -1;  // >= 1: fixed size; -1: symbolic
  std::string sym;
  int64_t min = 1, max = 0;  // max 0: unbounded
};

struct InputSpec {
  std::string name;
  std::vector<DimSpec> dims;
  std::string dtype;  // float32 float16 bfloat16 int64 int32 bool
  bool has_range = false;
  double lo = 0, hi = 0;
};

struct InputInfo {
  std::string name, type;
  bool has_shape = false;
  std::vector<int64_t> shape;
  std::string dtype;  // empty when the graph does not record it
};

struct InspectResult {
  std::vector<InputInfo> inputs;
  std::vector<std::pair<std::string, int64_t>> ops;  // most frequent first
  int64_t param_count = 0, param_bytes = 0, tensors = 0;
  bool list_input = false;     // forward(self, inputs: List[Tensor])
  bool exported = false;       // holds a torch.classes.torchtvm object
  std::string metadata_json;   // the exported model's metadata, when it exposes it
  std::string metadata_source; // where it came from (method or attribute name)
};

struct Stats {
  double min = 0, max = 0, mean = 0, p50 = 0, p90 = 0, p99 = 0, stddev = 0;
  int64_t runs = 0;
};

struct ModelRun {
  std::string path;
  bool list_input = false;
  Stats stats;
  double first_ms = 0;       // the first call (profiling executor, allocations)
  double bare_mean_ms = -1;  // bare mode: total time / iterations, no per-run clocks
};

struct BenchOptions {
  int64_t warmup = 10, iterations = 100;
  int threads = 0;     // 0: libtorch's default
  bool bare = false;   // one clock per block of runs, no samples: the harness-free reference
  double flush_ms = 25;  // how often samples are handed to JS
};

struct BenchResult {
  std::vector<ModelRun> models;
  std::vector<std::pair<std::string, std::vector<int64_t>>> input_shapes;
  std::vector<std::string> input_dtypes;
  int threads = 0;
  int64_t iterations_done = 0;
  bool cancelled = false;
};

struct Sample {
  int model;
  int64_t iteration;
  double ms;
};
using SampleSink = std::function<void(std::vector<Sample>&&)>;

/** dlopen(RTLD_NOW | RTLD_GLOBAL): registers torch.classes.torchtvm.* for exported models. */
void LoadLibrary(const std::string& path);
bool RuntimeLoaded();

InspectResult Inspect(const std::string& path);

/**
 * Loads each model, feeds all of them the same random inputs made from `specs`, runs warm-up
 * then `iterations` timed runs, interleaved run by run (the order alternates) when there are
 * several models. Samples go to `sink` in batches from this (non-JS) thread.
 */
BenchResult Benchmark(const std::vector<std::string>& paths, const std::vector<InputSpec>& specs,
                      const BenchOptions& opts, const std::atomic<bool>& cancel, const SampleSink& sink);

Stats Summarize(std::vector<double> samples_ms);

}  // namespace torchtvm_addon

// libtorchtvm_runtime.so: the torch custom class torch.classes.torchtvm.Module, which runs a
// compiled TVM Relax executable inside TorchScript.
//
// The object pickles itself completely: (metadata JSON, library bytes). The metadata carries the
// format version, the library's SHA-256, the CPU features the code needs, the input specs and the
// output count. Loading checks all of these and fails with a sentence (a torch error), never a
// crash. Tensors cross to and from TVM through DLPack without copies when the layout allows.
//
// Links libtorch, libtvm_runtime (+ libtvm_runtime_extra: contrib kernels the VM calls by name,
// e.g. tvm.contrib.sort.topk) and libtvm_ffi only; never TVM's compiler (LLVM symbol clashes).

#include <ATen/core/grad_mode.h>
#include <ATen/DLConvertor.h>
#include <ATen/Parallel.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <torch/custom_class.h>
#include <torch/script.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "library_kernels.h"
#include "sha256.h"

namespace torchtvm {

namespace ffi = tvm::ffi;

// Version 1: state = (metadata JSON, library bytes); metadata["format_version"] == 1.
constexpr int64_t kFormatVersion = 2;
// TVM allocates with 64-byte alignment and its kernels may assume it (aligned vector loads).
constexpr size_t kAlignment = 64;
// VirtualMachine allocator kinds (tvm/runtime/vm.py): 1 naive, 2 pooled.
constexpr int kPooledAllocator = 2;

struct DimSpec {
  int64_t value = -1;  // >= 0: fixed size
  std::string sym;     // symbolic: name and range
  int64_t min = 1, max = 0;
};

struct InputSpec {
  std::string name;
  std::vector<DimSpec> dims;
  std::string dtype;
};

static const std::map<std::string, at::ScalarType>& DtypeTable() {
  static const std::map<std::string, at::ScalarType> t = {
      {"float32", at::kFloat}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},    {"int32", at::kInt},    {"bool", at::kBool},
      {"float64", at::kDouble}, {"int8", at::kChar},  {"uint8", at::kByte}};
  return t;
}

static std::string DtypeName(at::ScalarType t) {
  for (auto& kv : DtypeTable())
    if (kv.second == t) return kv.first;
  return c10::toString(t);
}

// ---- CPU features -------------------------------------------------------------------------

// The flags this CPU (and OS) offer, as /proc/cpuinfo names them; empty when unknown.
static std::set<std::string> HostCpuFlags() {
  std::set<std::string> flags;
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) == 0) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::istringstream ss(line.substr(colon + 1));
      std::string w;
      while (ss >> w) flags.insert(w);
      break;
    }
  }
  return flags;
}

// LLVM feature name -> /proc/cpuinfo flag ("sse4.2" -> "sse4_2", "amx-tile" -> "amx_tile").
static std::string CpuinfoName(const std::string& llvm_name) {
  std::string s = llvm_name;
  for (auto& c : s)
    if (c == '.' || c == '-') c = '_';
  // Names that differ between LLVM and /proc/cpuinfo (torchtvm/cpu_features.py X86_FEATURES).
  static const std::map<std::string, std::string> renamed = {
      {"avx512vnni", "avx512_vnni"},   {"avx512bf16", "avx512_bf16"},
      {"avx512fp16", "avx512_fp16"},   {"avx512vbmi2", "avx512_vbmi2"},
      {"avx512bitalg", "avx512_bitalg"}, {"avx512vpopcntdq", "avx512_vpopcntdq"},
      {"avxvnni", "avx_vnni"},         {"bmi", "bmi1"},
      {"lzcnt", "abm"},               {"avx512vp2intersect", "avx512_vp2intersect"},
      {"pclmul", "pclmulqdq"},         {"sha", "sha_ni"}};
  auto it = renamed.find(s);
  return it == renamed.end() ? s : it->second;
}

// ---- metadata -----------------------------------------------------------------------------

static ffi::Map<ffi::Any, ffi::Any> AsObject(const ffi::Any& v, const char* what) {
  auto m = v.try_cast<ffi::Map<ffi::Any, ffi::Any>>();
  TORCH_CHECK(m.has_value(), "The exported model's metadata is damaged: ", what,
              " is not a JSON object.");
  return *m;
}

static bool Has(const ffi::Map<ffi::Any, ffi::Any>& m, const char* key) {
  return m.count(ffi::String(key)) > 0;
}

static ffi::Any Get(const ffi::Map<ffi::Any, ffi::Any>& m, const char* key) {
  TORCH_CHECK(Has(m, key), "The exported model's metadata is damaged: it has no \"", key,
              "\" entry.");
  return m.at(ffi::String(key));
}

static int64_t AsInt(const ffi::Any& v, const char* what) {
  auto i = v.try_cast<int64_t>();
  TORCH_CHECK(i.has_value(), "The exported model's metadata is damaged: ", what,
              " is not an integer.");
  return *i;
}

static std::string AsStr(const ffi::Any& v, const char* what) {
  auto s = v.try_cast<ffi::String>();
  TORCH_CHECK(s.has_value(), "The exported model's metadata is damaged: ", what,
              " is not a string.");
  return std::string(*s);
}

static ffi::Array<ffi::Any> AsArray(const ffi::Any& v, const char* what) {
  auto a = v.try_cast<ffi::Array<ffi::Any>>();
  TORCH_CHECK(a.has_value(), "The exported model's metadata is damaged: ", what,
              " is not a list.");
  return *a;
}

// ---- what is checked before anything is parsed or loaded ------------------------------------

constexpr size_t kMaxMetadataBytes = size_t(16) << 20;
constexpr int kMaxMetadataDepth = 64;  // tvm-ffi's JSON parser recurses once per level
constexpr char kIntegrityKey[] = "\"integrity_sha256\": \"";

// How deeply a JSON text nests (brackets outside strings).
static int JsonDepth(const std::string& s) {
  int depth = 0, worst = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      worst = std::max(worst, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return worst;
}

// The metadata's digest as recorded, and as computed: SHA-256 of its text with the recorded value
// zeroed (deploy/export.py seal_metadata does the same). The metadata holds the library's own
// SHA-256, so this binds the whole export: an edit of either is refused. Empty when not recorded.
static std::pair<std::string, std::string> MetadataDigest(const std::string& meta) {
  size_t at = meta.find(kIntegrityKey);
  if (at == std::string::npos) return {"", ""};
  TORCH_CHECK(meta.find(kIntegrityKey, at + 1) == std::string::npos,
              "The exported model's metadata is damaged: it records its digest twice.");
  size_t v = at + std::strlen(kIntegrityKey);
  TORCH_CHECK(v + 64 < meta.size() && meta[v + 64] == '"',
              "The exported model's metadata is damaged: its digest is not a SHA-256.");
  std::string zeroed = meta;
  zeroed.replace(v, 64, std::string(64, '0'));
  return {meta.substr(v, 64), Sha256Hex(zeroed.data(), zeroed.size())};
}

// The embedded library must be a whole shared object for this machine before dlopen maps it: a
// truncated one (segments past its end) kills the process with SIGBUS, another architecture's
// fails with a message no user can act on.
static void CheckElf(const std::string& lib) {
  const uint64_t n = lib.size();
  auto damaged = [](const char* what) {
    TORCH_CHECK(false, "The compiled library embedded in this model ", what,
                "; the .pt file was damaged or modified. Re-export the model.");
  };
  if (n < sizeof(Elf64_Ehdr) || std::memcmp(lib.data(), ELFMAG, SELFMAG) != 0) damaged("is not an ELF shared library");
  Elf64_Ehdr eh;
  std::memcpy(&eh, lib.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) damaged("is not a 64-bit little-endian ELF file");
#if defined(__x86_64__)
  constexpr uint16_t kMachine = EM_X86_64;
  constexpr const char* kArch = "x86_64";
#elif defined(__aarch64__)
  constexpr uint16_t kMachine = EM_AARCH64;
  constexpr const char* kArch = "aarch64";
#else
  constexpr uint16_t kMachine = 0;
  constexpr const char* kArch = "this architecture";
#endif
  TORCH_CHECK(kMachine == 0 || eh.e_machine == kMachine, "The compiled library embedded in this model is for another "
              "architecture (ELF machine ", eh.e_machine, "), not ", kArch, "; compile the model for this machine.");
  if (eh.e_type != ET_DYN) damaged("is not a shared library");
  auto fits = [n](uint64_t off, uint64_t count, uint64_t size) { return off <= n && count <= (n - off) / size; };
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || !fits(eh.e_phoff, eh.e_phnum, sizeof(Elf64_Phdr))) damaged("has a damaged program header table");
  if (eh.e_shnum != 0 && (eh.e_shentsize != sizeof(Elf64_Shdr) || !fits(eh.e_shoff, eh.e_shnum, sizeof(Elf64_Shdr))))
    damaged("is cut short (its section table lies past its end)");
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, lib.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof ph);
    if (ph.p_type != PT_NULL && !fits(ph.p_offset, ph.p_filesz, 1)) damaged("is cut short (a segment lies past its end)");
  }
}

// ---- temp file for the library ------------------------------------------------------------

// Private copies are named torchtvm-<pid>-XXXXXX.so: one left by a process that died inside dlopen
// (a signal, no chance to unlink it) is removed by the next load, once that pid is gone.
static void RemoveStaleCopies(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    int pid = 0, used = 0;
    if (std::sscanf(e->d_name, "torchtvm-%d-%*6[A-Za-z0-9].so%n", &pid, &used) < 1 || used == 0 ||
        e->d_name[used] != '\0' || pid <= 0)
      continue;
    std::string path = dir + "/" + e->d_name;
    struct stat st;
    if (kill(pid, 0) != 0 && errno == ESRCH && lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_uid == getuid())
      ::unlink(path.c_str());
  }
  closedir(d);
}

// Write bytes to a private (0600) file, returning its path; the caller removes it after dlopen.
static std::string WritePrivateTemp(const std::string& bytes) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string dir = tmpdir && *tmpdir ? tmpdir : "/tmp";
  RemoveStaleCopies(dir);
  std::string tmpl = dir + "/torchtvm-" + std::to_string(getpid()) + "-XXXXXX.so";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = mkstemps(buf.data(), 3);
  TORCH_CHECK(fd >= 0, "Could not create a temporary file in ", tmpl.substr(0, tmpl.rfind('/')),
              " to load the compiled library: ", std::strerror(errno),
              ". Set TMPDIR to a writable folder.");
  std::string path(buf.data());
  fchmod(fd, 0600);
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(path.c_str());
      TORCH_CHECK(false, "Could not write the compiled library to a temporary file (", path,
                  "): ", std::strerror(err), ". Free some disk space or set TMPDIR.");
    }
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  return path;
}

// ---- the custom class ---------------------------------------------------------------------

class Module : public torch::CustomClassHolder {
 public:
  // `load` false: keep the state for pickling without loading the code or checking this CPU (an
  // export for another CPU, whose library must not even be dlopened here). Unpickling loads.
  Module(std::string metadata_json, std::string library, bool load = true)
      : metadata_json_(std::move(metadata_json)), library_(std::move(library)) {
    ParseAndCheck(/*check_cpu=*/load);
    if (load) Load();
    if (load && uses_library_) WarmUp();
    // An export whose verification did not pass (not run: a build for another CPU; or outputs
    // that differed from PyTorch's), written anyway (--export-unverified): said at every load.
    if (load && !unverified_.empty()) {
      TORCH_WARN("torchtvm: this model was exported without a passing verification: ", unverified_,
                 " Check its outputs against PyTorch on this machine before relying on them.");
    }
  }

  // From Python: the library crosses as a uint8 tensor (a str would be UTF-8 encoded).
  static c10::intrusive_ptr<Module> FromTensor(std::string metadata_json, at::Tensor library,
                                               bool load = true) {
    TORCH_CHECK(library.scalar_type() == at::kByte && library.dim() == 1,
                "torchtvm.Module expects the compiled library as a 1-D torch.uint8 tensor.");
    library = library.contiguous().cpu();
    std::string bytes(reinterpret_cast<const char*>(library.data_ptr<uint8_t>()),
                      static_cast<size_t>(library.numel()));
    return c10::make_intrusive<Module>(std::move(metadata_json), std::move(bytes), load);
  }

  // TVM sizes its thread pool once per process, at its first parallel kernel, from TVM_NUM_THREADS,
  // else half the hardware threads on x86 (it assumes hyper-threading): on a 2-vCPU machine that is
  // one thread while torch uses two. Unless the user set TVM_NUM_THREADS, follow torch's intra-op
  // thread count as it is at the first call.
  static void MatchTorchThreads() {
    static std::once_flag once;
    std::call_once(once, [] {
      if (!std::getenv("TVM_NUM_THREADS")) setenv("TVM_NUM_THREADS", std::to_string(at::get_num_threads()).c_str(), 0);
    });
  }

  std::tuple<std::string, std::string> GetState() const { return {metadata_json_, library_}; }

  std::string Metadata() const { return metadata_json_; }
  int64_t NumOutputs() const { return num_outputs_; }
  int64_t Copies() const { return copies_.load(); }
  std::vector<int64_t> LastOutputPtrs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_output_ptrs_;
  }

  std::vector<at::Tensor> Forward(std::vector<at::Tensor> inputs) {
    TORCH_CHECK(main_.defined(), "This TVM module was exported for another CPU and is not loaded "
                "in this process; save it and load the .pt on a machine with that CPU.");
    CheckInputs(inputs);
    MatchTorchThreads();
    std::vector<ffi::Tensor> args;
    args.reserve(inputs.size());
    for (auto& t : inputs) {
      if (t.is_neg() || t.is_conj()) {
        // A lazily negated/conjugated view: DLPack carries no such bit, so TVM would read the raw
        // (un-negated) values. Materialise them.
        t = t.resolve_conj().resolve_neg();
        copies_.fetch_add(1);
      }
      bool aligned = reinterpret_cast<uintptr_t>(t.data_ptr()) % kAlignment == 0;
      if (!t.is_contiguous() || (!aligned && t.numel() > 0)) {
        // A view with strides or an offset: TVM kernels need dense, 64-byte aligned data.
        at::Tensor c = at::empty(t.sizes(), t.options().memory_format(at::MemoryFormat::Contiguous));
        c.copy_(t);
        t = c;
        copies_.fetch_add(1);
      } else if (t.strides() != c10::contiguous_strides(t.sizes())) {
        // Contiguous for torch but with odd strides on size-1 dims (x.t() of a [n, 1] tensor):
        // the same bytes, but DLPack would carry those strides and library kernels refuse them.
        t = t.as_strided(t.sizes(), c10::contiguous_strides(t.sizes()));
      }
      args.push_back(ffi::Tensor::FromDLPackVersioned(at::toDLPackVersioned(t)));
    }
    std::vector<ffi::AnyView> views(args.begin(), args.end());
    ffi::Any result;
    std::vector<ffi::Tensor> outs;
    int fresh_count = 2;  // owners of a freshly allocated output (see below)
    {
      std::lock_guard<std::mutex> lock(mu_);  // a VM instance is not re-entrant
      try {
        main_.CallPacked(views.data(), static_cast<int32_t>(views.size()), &result);
      } catch (const std::exception& e) {
        TORCH_CHECK(false, "The TVM module failed while running: ", e.what());
      }
      Flatten(result, &outs);
      // A fresh output is owned by `outs` and, while the VM keeps its last return value (0.27
      // does), by the VM's result array. Tell whether it does (our `result` and `arr` are two
      // owners), then drop our reference so that use_count() below counts only real owners.
      if (auto arr = result.try_cast<ffi::Array<ffi::Any>>()) fresh_count = arr->use_count() > 2 ? 2 : 1;
      result = ffi::Any();
      last_output_ptrs_.clear();
      for (auto& o : outs)
        last_output_ptrs_.push_back(
            static_cast<int64_t>(reinterpret_cast<intptr_t>(static_cast<char*>(o.GetDLTensorPtr()->data) + o.GetDLTensorPtr()->byte_offset)));
    }
    TORCH_CHECK(static_cast<int64_t>(outs.size()) == num_outputs_, "The TVM module returned ",
                outs.size(), " outputs but its metadata says ", num_outputs_, ".");
    std::vector<at::Tensor> ret;
    ret.reserve(outs.size());
    // ToDLPack keeps the TVM buffer alive and hands it to torch: no memcpy. Every output must be
    // the caller's alone, though: an output TVM shares with something else (a folded constant the
    // VM keeps, an input passed through or viewed, another output) is copied, or a caller's
    // in-place edit would leak into later calls or other tensors.
    std::vector<std::pair<uintptr_t, uintptr_t>> owned;  // byte ranges of outputs handed out as is
    std::vector<std::pair<uintptr_t, uintptr_t>> input_ranges;
    for (auto& a : args) input_ranges.push_back(ByteRange(a.GetDLTensorPtr()));
    for (size_t i = 0; i < outs.size(); ++i) {
      auto range = ByteRange(outs[i].GetDLTensorPtr());
      // More owners than `outs` and the VM's return register: the VM's constant pool, an input
      // passed through (held by `args`), or the same tensor returned twice.
      bool shared = outs[i].use_count() > fresh_count;
      for (auto& r : input_ranges) shared = shared || Overlaps(range, r);
      for (auto& r : owned) shared = shared || Overlaps(range, r);
      at::Tensor t = at::fromDLPackVersioned(outs[i].ToDLPackVersioned());
      if (shared) {
        t = t.clone(at::MemoryFormat::Contiguous);
        copies_.fetch_add(1);
      } else {
        owned.push_back(range);
      }
      ret.push_back(std::move(t));
    }
    return ret;
  }

 private:
  // The bytes a dense tensor covers, [begin, end); empty tensors cover nothing.
  static std::pair<uintptr_t, uintptr_t> ByteRange(const DLTensor* d) {
    int64_t n = 1;
    for (int i = 0; i < d->ndim; ++i) n *= d->shape[i];
    uintptr_t begin = reinterpret_cast<uintptr_t>(d->data) + d->byte_offset;
    size_t bytes = static_cast<size_t>(n) * ((d->dtype.bits * d->dtype.lanes + 7) / 8);
    return {begin, begin + bytes};
  }

  static bool Overlaps(const std::pair<uintptr_t, uintptr_t>& a,
                       const std::pair<uintptr_t, uintptr_t>& b) {
    return a.first < a.second && b.first < b.second && a.first < b.second && b.first < a.second;
  }

  static void Flatten(const ffi::Any& v, std::vector<ffi::Tensor>* out) {
    if (auto t = v.try_cast<ffi::Tensor>()) {
      out->push_back(*t);
      return;
    }
    if (auto a = v.try_cast<ffi::Array<ffi::Any>>()) {
      for (const ffi::Any& x : *a) Flatten(x, out);
      return;
    }
    TORCH_CHECK(false, "The TVM module returned a ", v.GetTypeKey(),
                " where a tensor was expected; only tensor outputs are supported.");
  }

  void ParseAndCheck(bool check_cpu) {
    TORCH_CHECK(metadata_json_.size() <= kMaxMetadataBytes, "The exported model's metadata is ",
                metadata_json_.size(), " bytes, more than any export holds; the .pt file is damaged.");
    TORCH_CHECK(JsonDepth(metadata_json_) <= kMaxMetadataDepth, "The exported model's metadata nests "
                "deeper than ", kMaxMetadataDepth, " levels, which no export does; the .pt file is damaged.");
    ffi::String err;
    ffi::Any root = ffi::json::Parse(ffi::String(metadata_json_), &err);
    TORCH_CHECK(err.empty(), "The exported model's metadata is not valid JSON (", std::string(err),
                "); the .pt file is damaged.");
    auto meta = AsObject(root, "the metadata");

    // 1. format version
    int64_t version = AsInt(Get(meta, "format_version"), "format_version");
    TORCH_CHECK(version <= kFormatVersion, "This model was exported in torchtvm format version ",
                version, ", but this runtime reads format versions up to ", kFormatVersion,
                "; load it with a newer libtorchtvm_runtime.so (upgrade torchtvm).");
    TORCH_CHECK(version >= 1, "The exported model declares an invalid format version ", version,
                "; the .pt file is damaged.");
    // From version 2 the metadata carries its own digest (version 1 exports predate it).
    auto [recorded, computed] = MetadataDigest(metadata_json_);
    TORCH_CHECK(!recorded.empty() || version < 2, "The exported model's metadata has no digest; the .pt "
                "file is damaged or was edited. Re-export the model.");
    TORCH_CHECK(recorded == computed, "The exported model's metadata was modified after export (its digest "
                "is ", computed, " but it records ", recorded, "); the .pt file was damaged or edited. "
                "Re-export the model.");

    // 2. integrity of the compiled code
    std::string want = AsStr(Get(meta, "library_sha256"), "library_sha256");
    std::string got = Sha256Hex(library_.data(), library_.size());
    TORCH_CHECK(want == got, "The compiled library embedded in this model is corrupted: its "
                "SHA-256 is ", got, " but the model records ", want,
                ". Re-export the model; the .pt file was damaged or modified.");

    // 3. target and CPU features
    std::string device = Has(meta, "device") ? AsStr(Get(meta, "device"), "device") : "cpu";
    TORCH_CHECK(device == "cpu", "This model was compiled for ", device,
                ", but this runtime runs CPU (llvm) modules only; recompile it with the llvm target.");
    if (check_cpu && Has(meta, "cpu_features")) {
      auto host = HostCpuFlags();
      if (!host.empty()) {
        std::vector<std::string> missing;
        for (const ffi::Any& f : AsArray(Get(meta, "cpu_features"), "cpu_features")) {
          std::string name = AsStr(f, "a CPU feature");
          if (!host.count(CpuinfoName(name))) missing.push_back(name);
        }
        if (!missing.empty()) {
          std::string list;
          for (size_t i = 0; i < missing.size(); ++i) list += (i ? ", " : "") + missing[i];
          TORCH_CHECK(false, "This model's compiled code needs the CPU feature",
                      missing.size() > 1 ? "s " : " ", list, ", which this CPU does not have; "
                      "recompile the model on (or for) this machine.");
        }
      }
    }

    // 4. library kernels: the torch ops the compiled code calls must be the ones it was built for
    uses_library_ = Has(meta, "library_kernels");
    if (uses_library_) CheckLibraryKernels(AsObject(Get(meta, "library_kernels"), "library_kernels"));

    // 5. the verification the build had (deploy/builds.py verification_summary; absent in exports
    // older than it, and in the copy a server verifies)
    if (Has(meta, "verification")) {
      auto v = AsObject(Get(meta, "verification"), "verification");
      auto ok = Has(v, "ok") ? Get(v, "ok").try_cast<bool>() : std::optional<bool>(true);
      TORCH_CHECK(ok.has_value(), "The exported model's metadata is damaged: verification.ok is not true or false.");
      if (!*ok) {
        unverified_ = Has(v, "reason") ? AsStr(Get(v, "reason"), "verification.reason") : "no reason was recorded.";
      }
    }

    // 6. call signature
    num_outputs_ = AsInt(Get(meta, "num_outputs"), "num_outputs");
    for (const ffi::Any& s : AsArray(Get(meta, "inputs"), "inputs")) {
      auto obj = AsObject(s, "an input spec");
      InputSpec spec;
      spec.name = AsStr(Get(obj, "name"), "an input name");
      spec.dtype = AsStr(Get(obj, "dtype"), "an input dtype");
      TORCH_CHECK(DtypeTable().count(spec.dtype), "The exported model's input ", spec.name,
                  " has dtype ", spec.dtype, ", which this runtime does not know.");
      for (const ffi::Any& d : AsArray(Get(obj, "dims"), "dims")) {
        DimSpec dim;
        if (auto i = d.try_cast<int64_t>()) {
          dim.value = *i;
        } else {
          auto dobj = AsObject(d, "a dimension");
          dim.sym = AsStr(Get(dobj, "name"), "a dimension name");
          dim.min = Has(dobj, "min") ? AsInt(Get(dobj, "min"), "min") : 1;
          dim.max = Has(dobj, "max") ? AsInt(Get(dobj, "max"), "max") : INT64_MAX;
        }
        spec.dims.push_back(dim);
      }
      specs_.push_back(std::move(spec));
    }
  }

  static void CheckLibraryKernels(const ffi::Map<ffi::Any, ffi::Any>& lib) {
    std::string built = Has(lib, "torch") ? AsStr(Get(lib, "torch"), "library_kernels.torch") : "unknown";
    for (const auto& kv : AsObject(Get(lib, "ops"), "library_kernels.ops")) {
      std::string op = AsStr(kv.first, "a library op");
      std::string want = AsStr(kv.second, "a library op schema");
      std::string have = LibrarySchema(op);
      // torch.__version__ carries a local build tag (2.15.0+cu132) that TORCH_VERSION does not:
      // the same release with another op schema is another build of it, and is named so.
      std::string running = BuiltTorchVersion();
      std::string release = built.substr(0, built.find('+'));
      std::string here = release == running && built != running ? "another build of torch " + running : "torch " + running;
      TORCH_CHECK(have == want, "This model calls PyTorch's ", op, " as torch ", built,
                  " defines it, but this process runs ", here, ", where it ",
                  have.empty() ? std::string("does not exist") : "is " + have,
                  ". Re-export the model with the torch of this process (or load it with torch ", built, ").");
    }
  }

  // A module built in TVM's compiled VM mode (backend/build.py) calls into TVM's runtime and FFI
  // libraries by symbol, which the dynamic linker resolves only from the global scope; this library
  // (and so its dependencies) may have been loaded locally (torch.ops.load_library, a C++ app's
  // dlopen). Promote the copies already loaded: RTLD_NOLOAD loads nothing.
  static void ExposeTvmSymbols() {
    for (const char* soname : {"libtvm_ffi.so", "libtvm_runtime.so"}) {
      if (void* handle = dlopen(soname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) dlclose(handle);
    }
  }

  void Load() {
    CheckElf(library_);  // after every metadata check: those say more when both fail
    ExposeTvmSymbols();
    std::string path = WritePrivateTemp(library_);
    try {
      ffi::Module lib = ffi::Module::LoadFromFile(ffi::String(path));
      RouteParallelToTorch(path);  // TVM's parallel loops on torch's pool (library_kernels.cc)
      ::unlink(path.c_str());
      auto load_exec = lib->GetFunction("vm_load_executable", true);
      TORCH_CHECK(load_exec.has_value(), "The embedded library is not a TVM Relax executable "
                  "(no vm_load_executable); re-export the model with torchtvm.");
      ffi::Module vm = (*load_exec)().cast<ffi::Module>();
      vm_ = vm;
      auto init = vm->GetFunction("vm_initialization", false);
      TORCH_CHECK(init.has_value(), "The TVM runtime has no vm_initialization; versions mismatch.");
      (*init)(static_cast<int>(kDLCPU), 0, kPooledAllocator, static_cast<int>(kDLCPU), 0,
              kPooledAllocator);
      auto main = vm->GetFunction("main", false);
      TORCH_CHECK(main.has_value(), "The embedded TVM executable has no main function.");
      main_ = *main;
    } catch (const c10::Error&) {
      ::unlink(path.c_str());
      throw;
    } catch (const std::exception& e) {
      ::unlink(path.c_str());
      TORCH_CHECK(false, "The TVM runtime could not load the embedded library: ", e.what());
    }
  }

  // One call on zeros at the smallest sizes, while loading: the library kernels reorder their
  // weights into oneDNN's format at their first call, which then happens here and not in the
  // caller's first request. A failure here is not an error: the first real call packs instead.
  void WarmUp() {
    try {
      std::vector<at::Tensor> inputs;
      for (const auto& spec : specs_) {
        std::vector<int64_t> shape;
        for (const auto& d : spec.dims) shape.push_back(d.value >= 0 ? d.value : std::max<int64_t>(d.min, 1));
        inputs.push_back(at::zeros(shape, at::TensorOptions().dtype(DtypeTable().at(spec.dtype))));
      }
      Forward(inputs);
    } catch (const std::exception&) {
    }
  }

  std::string Describe() const {
    std::string s;
    for (size_t i = 0; i < specs_.size(); ++i) {
      s += (i ? ", " : "") + specs_[i].name + " [";
      for (size_t j = 0; j < specs_[i].dims.size(); ++j) {
        const auto& d = specs_[i].dims[j];
        s += (j ? ", " : "") + (d.value >= 0 ? std::to_string(d.value) : d.sym);
      }
      s += "] " + specs_[i].dtype;
    }
    return s;
  }

  void CheckInputs(const std::vector<at::Tensor>& inputs) const {
    TORCH_CHECK(inputs.size() == specs_.size(), "The TVM module expects ", specs_.size(),
                " input(s) (", Describe(), ") but was given ", inputs.size(), ".");
    std::map<std::string, int64_t> bound;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto& spec = specs_[i];
      const auto& t = inputs[i];
      TORCH_CHECK(t.defined(), "Input ", spec.name, " is undefined.");
      TORCH_CHECK(t.device().is_cpu(), "Input ", spec.name, " is on ", t.device().str(),
                  " but the TVM module was compiled for cpu; move the input with .cpu().");
      TORCH_CHECK(t.layout() == at::kStrided, "Input ", spec.name, " is a ", t.layout(),
                  " tensor, but the TVM module reads dense ones; pass ", spec.name, ".to_dense().");
      // An output without a grad_fn would stop gradients silently: refuse, as the module has no
      // backward.
      TORCH_CHECK(!(t.requires_grad() && at::GradMode::is_enabled()), "Input ", spec.name,
                  " requires grad, but the TVM module computes no gradients (its outputs would silently "
                  "cut the graph). Call it under torch.no_grad() or torch.inference_mode(), or pass ",
                  spec.name, ".detach().");
      auto want = DtypeTable().at(spec.dtype);
      TORCH_CHECK(t.scalar_type() == want, "Input ", spec.name, " should have dtype ", spec.dtype,
                  " but was given ", DtypeName(t.scalar_type()), ".");
      auto shape_error = [&](const std::string& why) {
        std::ostringstream given;
        given << t.sizes();
        TORCH_CHECK(false, "Input ", spec.name, " has shape ", given.str(), ", but the TVM module "
                    "expects ", Describe(), ": ", why, ".");
      };
      if (static_cast<size_t>(t.dim()) != spec.dims.size())
        shape_error("expected " + std::to_string(spec.dims.size()) + " dimensions, got " +
                    std::to_string(t.dim()));
      for (size_t j = 0; j < spec.dims.size(); ++j) {
        const auto& d = spec.dims[j];
        int64_t n = t.size(static_cast<int64_t>(j));
        if (d.value >= 0) {
          if (n != d.value)
            shape_error("dimension " + std::to_string(j) + " must be " + std::to_string(d.value) +
                        ", got " + std::to_string(n));
        } else {
          if (n < d.min || n > d.max)
            shape_error("dimension " + std::to_string(j) + " (" + d.sym + ") must be in " +
                        std::to_string(d.min) + ".." + std::to_string(d.max) + ", got " +
                        std::to_string(n));
          auto it = bound.find(d.sym);
          if (it == bound.end())
            bound[d.sym] = n;
          else if (it->second != n)
            shape_error(d.sym + " is " + std::to_string(it->second) +
                        " in an earlier dimension but " + std::to_string(n) + " here");
        }
      }
    }
  }

  std::string metadata_json_;
  // Why the export's verification did not pass (its metadata's verification.reason), or empty.
  std::string unverified_;
  bool uses_library_ = false;
  std::string library_;
  std::vector<InputSpec> specs_;
  int64_t num_outputs_ = 0;
  ffi::Optional<ffi::Module> vm_;
  ffi::Function main_;
  mutable std::mutex mu_;
  std::atomic<int64_t> copies_{0};
  std::vector<int64_t> last_output_ptrs_;
};

TORCH_LIBRARY(torchtvm, m) {
  m.class_<Module>("Module")
      .def(torch::init([](std::string metadata_json, at::Tensor library) {
        return Module::FromTensor(std::move(metadata_json), std::move(library));
      }))
      .def_static("for_export",
                  [](std::string metadata_json, at::Tensor library) {
                    return Module::FromTensor(std::move(metadata_json), std::move(library),
                                              /*load=*/false);
                  })
      .def("forward", &Module::Forward)
      .def("metadata", &Module::Metadata)
      .def("num_outputs", &Module::NumOutputs)
      .def("copies", &Module::Copies)
      .def("last_output_ptrs", &Module::LastOutputPtrs)
      .def_pickle(
          [](const c10::intrusive_ptr<Module>& self) -> std::tuple<std::string, std::string> {
            return self->GetState();
          },
          [](std::tuple<std::string, std::string> state) -> c10::intrusive_ptr<Module> {
            return c10::make_intrusive<Module>(std::move(std::get<0>(state)),
                                               std::move(std::get<1>(state)));
          });
  m.def("format_version() -> int", []() -> int64_t { return kFormatVersion; });
}

}  // namespace torchtvm

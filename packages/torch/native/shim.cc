// Hand-written part of the shim: handles, argument readers, buffers, generators, runtime settings.
// Everything else is generated from ops.mjs into ops_gen.cc.
#include "shim.h"

#include "cpu_cache.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>
#include <malloc.h>
#include <sched.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>

namespace shim {

namespace {
// The box behind a handle of the given kind, or nullptr for anything else. One N-API call: a
// value that is not an External makes napi_get_value_external fail (without a pending exception).
void* BoxOf(const Napi::Value& v, uint64_t tag) {
  void* data = nullptr;
  if (v.IsEmpty() || napi_get_value_external(v.Env(), v, &data) != napi_ok || !data) return nullptr;
  uint64_t found = 0;
  std::memcpy(&found, data, sizeof found);
  return found == tag ? data : nullptr;
}

TensorBox* TensorBoxOf(const Napi::Value& v) { return static_cast<TensorBox*>(BoxOf(v, kTensorTag)); }
GeneratorBox* GeneratorBoxOf(const Napi::Value& v) { return static_cast<GeneratorBox*>(BoxOf(v, kGeneratorTag)); }

int64_t StorageBytes(const at::Tensor& t) {
  // Only a tensor that solely owns its storage is reported, so views are not counted twice.
  if (!t.defined() || !t.has_storage()) return 0;
  const auto& storage = t.storage();
  return storage.use_count() == 1 ? static_cast<int64_t>(storage.nbytes()) : 0;
}

// Whether a tidy() scope is open on this thread (each worker has its own env and its own scopes).
thread_local bool scopeOpen = false;

// Tells V8 about the storage of a tensor that outlives its scope, once, so GC pressure reflects it.
void ReportBox(Napi::Env env, TensorBox* box) {
  if (box->reportedBytes == 0 && box->tensor.defined()) {
    box->reportedBytes = StorageBytes(box->tensor);
    if (box->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, box->reportedBytes);
  }
}

// Finalizers take Napi::BasicEnv (and the addon is built with NAPI_EXPERIMENTAL, see binding.gyp)
// so that Node runs them during GC. Finalizers that may call into JS are deferred to the event
// loop instead, and a synchronous training loop never yields to it: every handle it had created
// (a few hundred bytes each, with the tensor itself when it was not disposed) stayed allocated.
void FinalizeBox(Napi::BasicEnv env, TensorBox* box) {
  ReleaseBox(env, box);
  delete box;
}

TensorBox* Unbox(const Args& a, size_t i, const char* name) {
  auto* box = TensorBoxOf(a.info[i]);
  if (!box) a.fail(i, name, "must be a Tensor");
  if (!box->tensor.defined()) a.fail(i, name, "is a Tensor that has been disposed");
  return box;
}
}  // namespace

void ReleaseBox(Napi::BasicEnv env, TensorBox* box) {
  if (box->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, -box->reportedBytes);
  box->reportedBytes = 0;
  box->tensor.reset();
}

Napi::Value WrapTensor(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Undefined();
  // Memory is reported to V8 only for tensors that outlive a scope: made outside any (here) or
  // leaving one (reportMemory below). The ones a scope frees never need a GC, and reporting them
  // made V8 collect several times a step, with GC threads preempting libtorch's OpenMP team on
  // small machines.
  auto* box = new TensorBox{kTensorTag, std::move(tensor), 0};
  if (!scopeOpen) ReportBox(env, box);
  return Napi::External<TensorBox>::New(env, box, FinalizeBox);
}

bool Args::isTensor(size_t i) const { return i < info.Length() && TensorBoxOf(info[i]) != nullptr; }

void Args::fail(size_t i, const char* name, const std::string& what) const {
  (void)i;
  throw Napi::TypeError::New(info.Env(), std::string(op) + ": argument '" + name + "' " + what);
}

bool Args::absent(size_t i) const { return i >= info.Length() || info[i].IsUndefined() || info[i].IsNull(); }

at::Tensor& Args::tensor(size_t i, const char* name) const {
  if (absent(i)) fail(i, name, "is required (a Tensor)");
  return Unbox(*this, i, name)->tensor;
}

c10::optional<at::Tensor> Args::optTensor(size_t i, const char* name) const {
  if (absent(i)) return c10::nullopt;
  return Unbox(*this, i, name)->tensor;
}

std::vector<at::Tensor> Args::tensors(size_t i, const char* name) const {
  if (absent(i) || !info[i].IsArray()) fail(i, name, "must be an array of Tensors");
  auto arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr[k];
    auto* box = TensorBoxOf(v);
    if (!box) fail(i, name, "must be an array of Tensors (item " + std::to_string(k) + " is not)");
    if (!box->tensor.defined()) fail(i, name, "holds a disposed Tensor at item " + std::to_string(k));
    out.push_back(box->tensor);
  }
  return out;
}

static bool IsInt(double d) { return std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0; }

int64_t Args::int64(size_t i, const char* name) const {
  if (absent(i) || !info[i].IsNumber()) fail(i, name, "must be an integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!IsInt(d)) fail(i, name, "must be an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

c10::optional<int64_t> Args::optInt64(size_t i, const char* name) const {
  if (absent(i)) return c10::nullopt;
  return int64(i, name);
}

std::vector<int64_t> Args::ints(size_t i, const char* name) const {
  if (!absent(i) && info[i].IsNumber()) return {int64(i, name)};
  if (absent(i) || !info[i].IsArray()) fail(i, name, "must be an array of integers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr[k];
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!IsInt(d)) fail(i, name, "must be an array of integers (item " + std::to_string(k) + " is not)");
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

c10::optional<std::vector<int64_t>> Args::optInts(size_t i, const char* name) const {
  if (absent(i)) return c10::nullopt;
  return ints(i, name);
}

double Args::float64(size_t i, const char* name) const {
  if (absent(i) || !info[i].IsNumber()) fail(i, name, "must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

c10::optional<double> Args::optFloat64(size_t i, const char* name) const {
  if (absent(i)) return c10::nullopt;
  return float64(i, name);
}

bool Args::boolean(size_t i, const char* name) const {
  if (absent(i) || !info[i].IsBoolean()) fail(i, name, "must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

at::Scalar Args::scalar(size_t i, const char* name) const {
  if (!absent(i) && info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  if (absent(i) || !info[i].IsNumber()) fail(i, name, "must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  // Integral numbers stay integral so that integer tensors keep their dtype, as in Python.
  if (IsInt(d)) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

c10::optional<at::Scalar> Args::optScalar(size_t i, const char* name) const {
  if (absent(i)) return c10::nullopt;
  return scalar(i, name);
}

at::ScalarType Args::dtype(size_t i, const char* name) const {
  int64_t code = int64(i, name);
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) fail(i, name, "is not a known dtype");
  return static_cast<at::ScalarType>(code);
}

c10::optional<at::ScalarType> Args::optDtype(size_t i, const char* name) const {
  if (absent(i)) return c10::nullopt;
  return dtype(i, name);
}

std::string Args::string(size_t i, const char* name) const {
  if (absent(i) || !info[i].IsString()) fail(i, name, "must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

c10::optional<std::string> Args::optString(size_t i, const char* name) const {
  if (absent(i)) return c10::nullopt;
  return string(i, name);
}

at::Device Args::device(size_t i, const char* name) const {
  if (absent(i)) return at::Device(at::kCPU);
  return at::Device(string(i, name));
}

int64_t Args::reduction(size_t i, const char* name) const {
  if (absent(i)) return at::Reduction::Mean;
  std::string r = string(i, name);
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  fail(i, name, "must be 'mean', 'sum' or 'none', got '" + r + "'");
}

c10::optional<at::Generator> Args::generator(size_t i, const char* name) const {
  if (absent(i)) return c10::nullopt;
  auto* box = GeneratorBoxOf(info[i]);
  if (!box) fail(i, name, "must be a Generator");
  return box->generator;
}

namespace {

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  if (auto* box = info.Length() > 0 ? TensorBoxOf(info[0]) : nullptr) ReleaseBox(info.Env(), box);
  return info.Env().Undefined();
}

// Tells V8 about the storage of a tensor that outlives its scope, so GC pressure reflects it.
Napi::Value ReportMemory(const Napi::CallbackInfo& info) {
  if (auto* box = info.Length() > 0 ? TensorBoxOf(info[0]) : nullptr) ReportBox(info.Env(), box);
  return info.Env().Undefined();
}

// setScoped(open): tidy() says when its first scope opens and its last one closes, so that
// WrapTensor reports the tensors made outside any scope itself, without a second call.
Napi::Value SetScoped(const Napi::CallbackInfo& info) {
  scopeOpen = info.Length() > 0 && info[0].ToBoolean().Value();
  return info.Env().Undefined();
}

size_t ElementSize(const Args& a, at::ScalarType t) {
  (void)a;
  return c10::elementSize(t);
}

// fromBuffer(bytes: ArrayBufferView, dtype, shape, device): copies the bytes into a new tensor.
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  Args a{info, "fromBuffer"};
  return Guard(info, a.op, [&] {
    if (!info[0].IsTypedArray()) a.fail(0, "data", "must be a TypedArray");
    auto view = info[0].As<Napi::TypedArray>();
    auto dtype = a.dtype(1, "dtype");
    auto shape = a.ints(2, "shape");
    int64_t numel = 1;
    for (auto s : shape) {
      if (s < 0) a.fail(2, "shape", "must not have negative sizes");
      numel *= s;
    }
    size_t bytes = static_cast<size_t>(numel) * ElementSize(a, dtype);
    if (view.ByteLength() != bytes)
      a.fail(0, "data", "holds " + std::to_string(view.ByteLength()) + " bytes but the shape and dtype need " +
                            std::to_string(bytes));
    auto out = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (bytes) std::memcpy(out.data_ptr(), static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset(), bytes);
    auto device = a.device(3, "device");
    return WrapTensor(info.Env(), device.is_cpu() ? out : out.to(device));
  });
}

// toBuffer(t): the tensor's elements as a fresh ArrayBuffer, contiguous and on the CPU.
Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  Args a{info, "toBuffer"};
  return Guard(info, a.op, [&] {
    auto t = a.tensor(0, "self").detach().to(at::kCPU).contiguous();
    size_t bytes = t.numel() * t.element_size();
    auto buf = Napi::ArrayBuffer::New(info.Env(), bytes);
    if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
    return static_cast<Napi::Value>(buf);
  });
}

void FinalizeGenerator(Napi::BasicEnv, GeneratorBox* box) { delete box; }

Napi::Value WrapGenerator(Napi::Env env, at::Generator gen) {
  return Napi::External<GeneratorBox>::New(env, new GeneratorBox{kGeneratorTag, std::move(gen)}, FinalizeGenerator);
}

Napi::Value NewGenerator(const Napi::CallbackInfo& info) {
  Args a{info, "Generator"};
  return Guard(info, a.op, [&] {
    auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(a.int64(0, "seed")));
    return WrapGenerator(info.Env(), gen);
  });
}

GeneratorBox* UnboxGenerator(const Args& a, size_t i) {
  auto* box = GeneratorBoxOf(a.info[i]);
  if (!box) a.fail(i, "generator", "must be a Generator");
  return box;
}

Napi::Value GeneratorSeed(const Napi::CallbackInfo& info) {
  Args a{info, "Generator.manualSeed"};
  return Guard(info, a.op, [&] {
    auto* box = UnboxGenerator(a, 0);
    std::lock_guard<std::mutex> lock(box->generator.mutex());
    box->generator.set_current_seed(static_cast<uint64_t>(a.int64(1, "seed")));
    return info.Env().Undefined();
  });
}

// The generator's full state as a uint8 tensor, for checkpoints.
Napi::Value GeneratorGetState(const Napi::CallbackInfo& info) {
  Args a{info, "Generator.getState"};
  return Guard(info, a.op, [&] {
    auto* box = UnboxGenerator(a, 0);
    std::lock_guard<std::mutex> lock(box->generator.mutex());
    return WrapTensor(info.Env(), box->generator.get_state());
  });
}

Napi::Value GeneratorSetState(const Napi::CallbackInfo& info) {
  Args a{info, "Generator.setState"};
  return Guard(info, a.op, [&] {
    auto* box = UnboxGenerator(a, 0);
    auto& state = a.tensor(1, "state");
    std::lock_guard<std::mutex> lock(box->generator.mutex());
    box->generator.set_state(state);
    return info.Env().Undefined();
  });
}

Napi::Value DefaultGenerator(const Napi::CallbackInfo& info) {
  return WrapGenerator(info.Env(), at::detail::getDefaultCPUGenerator());
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Args a{info, "setNumThreads"};
  return Guard(info, a.op, [&] {
    int64_t n = a.int64(0, "n");
    if (n < 1) a.fail(0, "n", "must be at least 1");
    at::set_num_threads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Args a{info, "manualSeed"};
  return Guard(info, a.op, [&] {
    at::manual_seed(static_cast<uint64_t>(a.int64(0, "seed")));
    return info.Env().Undefined();
  });
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  Args a{info, "setGradEnabled"};
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(a.boolean(0, "enabled"));
  return Napi::Boolean::New(info.Env(), previous);
}

// Autocast on the CPU, as torch.autocast('cpu', dtype) enters and leaves it: the previous state
// comes back on exit, and the cast-weight cache is cleared when the outermost scope ends.
Napi::Value AutocastCpuEnter(const Napi::CallbackInfo& info) {
  Args a{info, "autocastCpuEnter"};
  auto dtype = static_cast<at::ScalarType>(a.int64(0, "dtype"));
  auto previous = Napi::Array::New(info.Env(), 2);
  previous.Set(uint32_t(0), Napi::Boolean::New(info.Env(), at::autocast::is_cpu_enabled()));
  previous.Set(uint32_t(1), Napi::Number::New(info.Env(), static_cast<double>(at::autocast::get_autocast_cpu_dtype())));
  at::autocast::set_autocast_cpu_dtype(dtype);
  at::autocast::set_cpu_enabled(true);
  at::autocast::increment_nesting();
  return previous;
}

Napi::Value AutocastCpuExit(const Napi::CallbackInfo& info) {
  Args a{info, "autocastCpuExit"};
  bool enabled = a.boolean(0, "enabled");
  auto dtype = static_cast<at::ScalarType>(a.int64(1, "dtype"));
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(enabled);
  at::autocast::set_autocast_cpu_dtype(dtype);
  return info.Env().Undefined();
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

Napi::Value AutogradGrad(const Napi::CallbackInfo& info) {
  Args a{info, "autograd.grad"};
  return Guard(info, a.op, [&] {
    auto outputs = a.tensors(0, "outputs");
    auto inputs = a.tensors(1, "inputs");
    std::vector<at::Tensor> gradOutputs = a.absent(2) ? std::vector<at::Tensor>{} : a.tensors(2, "gradOutputs");
    bool createGraph = a.boolean(4, "createGraph");
    c10::optional<bool> retain = a.absent(3) ? c10::optional<bool>(createGraph) : a.boolean(3, "retainGraph");
    bool allowUnused = a.boolean(5, "allowUnused");
    auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, retain, createGraph, allowUnused);
    auto arr = Napi::Array::New(info.Env(), grads.size());
    for (size_t k = 0; k < grads.size(); ++k) arr.Set(k, WrapTensor(info.Env(), grads[k]));
    return static_cast<Napi::Value>(arr);
  });
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  Args a{info, "backward"};
  return Guard(info, a.op, [&] {
    auto& self = a.tensor(0, "self");
    auto gradient = a.optTensor(1, "gradient");
    bool retain = a.absent(2) ? false : a.boolean(2, "retainGraph");
    bool create = a.absent(3) ? false : a.boolean(3, "createGraph");
    self.backward(gradient.value_or(at::Tensor()), retain, create);
    return info.Env().Undefined();
  });
}

Napi::Value CpuCacheStatsValue(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const CpuCacheStats s = GetCpuCacheStats();
  auto o = Napi::Object::New(env);
  o.Set("enabled", Napi::Boolean::New(env, s.enabled));
  auto number = [&](const char* key, size_t v) { o.Set(key, Napi::Number::New(env, static_cast<double>(v))); };
  number("liveBytes", s.liveBytes);
  number("cachedBytes", s.cachedBytes);
  number("limitBytes", s.limitBytes);
  number("hits", s.hits);
  number("misses", s.misses);
  return o;
}

Napi::Value EmptyCpuCacheValue(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(EmptyCpuCache()));
}

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("libtorchVersion", Napi::String::New(env, TORCH_VERSION));
  o.Set("cudaAvailable", Napi::Boolean::New(env, at::hasCUDA()));
  o.Set("mkldnnAvailable", Napi::Boolean::New(env, at::hasMKLDNN()));
  o.Set("parallelInfo", Napi::String::New(env, at::get_parallel_info()));
  return o;
}

int AvailableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::thread::hardware_concurrency());
}

// Without the CPU cache (PRETEXT_CPU_CACHE=0), large activations would be mmapped, freed and
// page-faulted back at every step: keep freed memory in the heap instead. With the cache this
// would only push oneDNN's large scratch buffers into the heap, where they fragment it (RSS jumped
// by tens of MB over 10,000 steps), so it applies only then. PRETEXT_MALLOC_TUNING=0 opts out.
void TuneMalloc() {
  const char* flag = std::getenv("PRETEXT_MALLOC_TUNING");
  if (flag && std::string(flag) == "0") return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}

}  // namespace

void RegisterCoreOps(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Function::Callback cb) { exports.Set(name, Napi::Function::New(env, cb, name)); };
  fn("dispose", Dispose);
  fn("reportMemory", ReportMemory);
  fn("setScoped", SetScoped);
  fn("fromBuffer", FromBuffer);
  fn("toBuffer", ToBuffer);
  fn("newGenerator", NewGenerator);
  fn("defaultGenerator", DefaultGenerator);
  fn("generatorManualSeed", GeneratorSeed);
  fn("generatorGetState", GeneratorGetState);
  fn("generatorSetState", GeneratorSetState);
  fn("setNumThreads", SetNumThreads);
  fn("getNumThreads", GetNumThreads);
  fn("manualSeed", ManualSeed);
  fn("setGradEnabled", SetGradEnabled);
  fn("isGradEnabled", IsGradEnabled);
  fn("autocastCpuEnter", AutocastCpuEnter);
  fn("autocastCpuExit", AutocastCpuExit);
  fn("autogradGrad", AutogradGrad);
  fn("backward", Backward);
  fn("runtimeInfo", RuntimeInfo);
  fn("cpuCacheStats", CpuCacheStatsValue);
  fn("emptyCpuCache", EmptyCpuCacheValue);
}

}  // namespace shim

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Process-wide settings, once: worker threads that load the addon (the data loader's) must not
  // reset the thread count the main thread chose.
  static std::once_flag processSettings;
  std::call_once(processSettings, [] {
    if (!shim::InstallCpuCache()) shim::TuneMalloc();
    const char* threads = std::getenv("PRETEXT_NUM_THREADS");
    at::set_num_threads(threads ? std::max(1, std::atoi(threads)) : shim::AvailableCpus());
  });
  shim::RegisterCoreOps(env, exports);
  shim::RegisterGeneratedOps(env, exports);
  shim::RegisterDistributedOps(env, exports);
  return exports;
}

NODE_API_MODULE(pretext_torch, Init)

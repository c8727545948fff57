// Shared pieces of the N-API shim: tensor handles, argument conversion, error mapping.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <string>
#include <tuple>
#include <vector>

namespace shim {

// Each kind of handle starts with its own tag, so that a Generator passed where a Tensor is
// expected (or the reverse) is an argument error rather than a misread pointer. (N-API type tags
// would do the same but add over half to the cost of a small op.)
constexpr uint64_t kTensorTag = 0x7072657465787454ULL;
constexpr uint64_t kGeneratorTag = 0x7072657465787447ULL;

// A JS handle owns one reference to a tensor; dispose() drops it before GC does.
struct TensorBox {
  uint64_t tag;
  at::Tensor tensor;
  int64_t reportedBytes = 0;
};

struct GeneratorBox {
  uint64_t tag;
  at::Generator generator;
};

Napi::Value WrapTensor(Napi::Env env, at::Tensor tensor);
void ReleaseBox(Napi::BasicEnv env, TensorBox* box);

// Argument readers: `op` and `name` make errors name the offending argument.
struct Args {
  const Napi::CallbackInfo& info;
  const char* op;
  [[noreturn]] void fail(size_t i, const char* name, const std::string& what) const;
  bool absent(size_t i) const;
  bool isTensor(size_t i) const;
  at::Tensor& tensor(size_t i, const char* name) const;
  c10::optional<at::Tensor> optTensor(size_t i, const char* name) const;
  std::vector<at::Tensor> tensors(size_t i, const char* name) const;
  int64_t int64(size_t i, const char* name) const;
  c10::optional<int64_t> optInt64(size_t i, const char* name) const;
  std::vector<int64_t> ints(size_t i, const char* name) const;
  c10::optional<std::vector<int64_t>> optInts(size_t i, const char* name) const;
  double float64(size_t i, const char* name) const;
  c10::optional<double> optFloat64(size_t i, const char* name) const;
  bool boolean(size_t i, const char* name) const;
  at::Scalar scalar(size_t i, const char* name) const;
  c10::optional<at::Scalar> optScalar(size_t i, const char* name) const;
  at::ScalarType dtype(size_t i, const char* name) const;
  c10::optional<at::ScalarType> optDtype(size_t i, const char* name) const;
  std::string string(size_t i, const char* name) const;
  c10::optional<std::string> optString(size_t i, const char* name) const;
  at::Device device(size_t i, const char* name) const;
  int64_t reduction(size_t i, const char* name) const;
  c10::optional<at::Generator> generator(size_t i, const char* name) const;
};

inline at::TensorOptions Options(at::ScalarType dtype, at::Device device) {
  return at::TensorOptions().dtype(dtype).device(device);
}

inline at::OptionalIntArrayRef OptRef(const c10::optional<std::vector<int64_t>>& v) {
  return v ? at::OptionalIntArrayRef(*v) : c10::nullopt;
}
inline c10::optional<c10::string_view> OptView(const c10::optional<std::string>& v) {
  return v ? c10::optional<c10::string_view>(*v) : c10::nullopt;
}

// Return conversion for whatever an op yields.
inline Napi::Value ToJs(Napi::Env env, const at::Tensor& t) { return WrapTensor(env, t); }
inline Napi::Value ToJs(Napi::Env env, double v) { return Napi::Number::New(env, v); }
inline Napi::Value ToJs(Napi::Env env, int64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }
inline Napi::Value ToJs(Napi::Env env, bool v) { return Napi::Boolean::New(env, v); }
inline Napi::Value ToJs(Napi::Env env, const std::string& v) { return Napi::String::New(env, v); }
inline Napi::Value ToJs(Napi::Env env, at::IntArrayRef v) {
  auto arr = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) arr.Set(i, Napi::Number::New(env, static_cast<double>(v[i])));
  return arr;
}
inline Napi::Value ToJs(Napi::Env env, const std::vector<at::Tensor>& v) {
  auto arr = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) arr.Set(i, WrapTensor(env, v[i]));
  return arr;
}
template <typename... T>
Napi::Value ToJs(Napi::Env env, const std::tuple<T...>& tup) {
  auto arr = Napi::Array::New(env, sizeof...(T));
  uint32_t i = 0;
  std::apply([&](const auto&... item) { ((arr.Set(i++, ToJs(env, item))), ...); }, tup);
  return arr;
}

// Runs `body`, turning libtorch and standard exceptions into JS errors prefixed with the op name.
template <typename F>
Napi::Value Guard(const Napi::CallbackInfo& info, const char* op, F&& body) {
  Napi::Env env = info.Env();
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, std::string(op) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(op) + ": " + e.what());
  }
}

void RegisterGeneratedOps(Napi::Env env, Napi::Object exports);
void RegisterCoreOps(Napi::Env env, Napi::Object exports);
void RegisterDistributedOps(Napi::Env env, Napi::Object exports);

}  // namespace shim

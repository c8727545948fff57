// The gradient reducer behind DistributedDataParallel's overlap of communication with backward, as
// PyTorch's c10d Reducer: a post-hook on each parameter's gradient accumulator marks the parameter
// ready, and a bucket whose parameters are all ready is flattened and launched as an async
// allreduce while backward goes on. finish() waits for the buckets, averages, and copies back.
// Anything irregular (a bucket left incomplete by an unused parameter, a gradient accumulated
// twice before finish(), a gradient replaced since its bucket left) is reduced again at finish()
// from the current gradients, blocking. Every rank must run the same backward passes, as with
// PyTorch's DDP, so that the collectives line up.
#include "distributed.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <cstring>
#include <memory>
#include <mutex>

namespace shim {
namespace {

constexpr uint64_t kReducerTag = 0x7072657465787452ULL;

struct Bucket {
  std::vector<size_t> params;
  size_t ready = 0;
  bool dirty = false;  // a member became ready twice since the launch
  c10::intrusive_ptr<c10d::Work> work;
  at::Tensor flat;
  std::vector<at::Tensor> grads;  // the gradients flattened into `flat`, to copy the average back into
};

class GradReducer : public std::enable_shared_from_this<GradReducer> {
 public:
  GradReducer(c10::intrusive_ptr<c10d::ProcessGroup> group, std::vector<at::Tensor> params, std::vector<std::vector<size_t>> buckets)
      : group_(std::move(group)), params_(std::move(params)), isReady_(params_.size(), false), bucketOf_(params_.size()) {
    for (size_t b = 0; b < buckets.size(); ++b) {
      buckets_.emplace_back();
      buckets_.back().params = buckets[b];
      for (size_t p : buckets[b]) bucketOf_.at(p) = b;
    }
  }

  // Hooks each parameter's gradient accumulator; keeping the accumulators alive keeps the hooks on
  // the graph of every later backward.
  void InstallHooks() {
    for (size_t i = 0; i < params_.size(); ++i) {
      // A parameter frozen now is reduced at finish() if it ever has a gradient.
      auto accumulator = torch::autograd::impl::grad_accumulator(params_[i]);
      if (!accumulator) continue;
      hookKeys_.push_back(accumulator->add_post_hook(std::make_unique<ReadyHook>(weak_from_this(), i)));
      accumulators_.push_back(std::move(accumulator));
    }
  }

  void RemoveHooks() {
    for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hookKeys_[i]);
    accumulators_.clear();
    hookKeys_.clear();
  }

  void SetEnabled(bool enabled) {
    std::lock_guard<std::mutex> lock(mutex_);
    enabled_ = enabled;
  }

  // Waits for every bucket, reduces again the irregular ones, and leaves averaged gradients.
  // Returns how many buckets had been launched during backward.
  size_t Finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t overlapped = 0;
    for (auto& bucket : buckets_) {
      if (bucket.work) bucket.work->wait();
      if (Launched(bucket)) {
        ++overlapped;
      } else {
        bucket.work.reset();
        std::vector<at::Tensor> grads;
        for (size_t p : bucket.params)
          if (params_[p].grad().defined()) grads.push_back(params_[p].grad());
        if (!grads.empty()) {
          Launch(bucket, std::move(grads));
          bucket.work->wait();
        }
      }
      if (bucket.work) CopyBack(bucket);
      Reset(bucket);
    }
    return overlapped;
  }

 private:
  struct ReadyHook : public torch::autograd::FunctionPostHook {
    ReadyHook(std::weak_ptr<GradReducer> reducer, size_t param) : reducer(std::move(reducer)), param(param) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list& /*inputs*/) override {
      if (auto r = reducer.lock()) r->MarkReady(param);
      return outputs;
    }
    std::weak_ptr<GradReducer> reducer;
    size_t param;
  };

  void MarkReady(size_t param) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!enabled_) return;
    auto& bucket = buckets_[bucketOf_[param]];
    if (isReady_[param]) {
      bucket.dirty = true;
      return;
    }
    isReady_[param] = true;
    if (++bucket.ready < bucket.params.size()) return;
    std::vector<at::Tensor> grads;
    for (size_t p : bucket.params) grads.push_back(params_[p].grad());
    Launch(bucket, std::move(grads));
  }

  // A launch whose result still belongs to the current gradients.
  bool Launched(const Bucket& bucket) const {
    if (!bucket.work || bucket.dirty || bucket.ready < bucket.params.size()) return false;
    for (size_t k = 0; k < bucket.params.size(); ++k)
      if (!bucket.grads[k].is_same(params_[bucket.params[k]].grad())) return false;
    return true;
  }

  void Launch(Bucket& bucket, std::vector<at::Tensor> grads) {
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> flat;
    for (const auto& g : grads) flat.push_back(g.reshape({-1}));
    bucket.flat = at::cat(flat);
    bucket.grads = std::move(grads);
    std::vector<at::Tensor> tensors{bucket.flat};
    bucket.work = group_->allreduce(tensors);  // gloo has no AVG: sum, then divide
  }

  void CopyBack(Bucket& bucket) {
    at::NoGradGuard noGrad;
    bucket.flat.div_(group_->getSize());
    int64_t offset = 0;
    for (auto& g : bucket.grads) {
      g.copy_(bucket.flat.narrow(0, offset, g.numel()).view(g.sizes()));
      offset += g.numel();
    }
  }

  void Reset(Bucket& bucket) {
    for (size_t p : bucket.params) isReady_[p] = false;
    bucket.ready = 0;
    bucket.dirty = false;
    bucket.work.reset();
    bucket.flat.reset();
    bucket.grads.clear();
  }

  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::vector<at::Tensor> params_;
  std::vector<bool> isReady_;
  std::vector<size_t> bucketOf_;
  std::vector<Bucket> buckets_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hookKeys_;
  bool enabled_ = true;
  std::mutex mutex_;  // CPU graphs run hooks on the thread that called backward; other devices' do not
};

struct ReducerBox {
  uint64_t tag;
  std::shared_ptr<GradReducer> reducer;
};

void ReleaseReducer(ReducerBox* box) {
  if (box->reducer) box->reducer->RemoveHooks();
  box->reducer.reset();
}

GradReducer& ReducerOf(const Args& a, size_t i) {
  void* data = nullptr;
  uint64_t tag = 0;
  if (!a.absent(i) && napi_get_value_external(a.info.Env(), a.info[i], &data) == napi_ok && data) std::memcpy(&tag, data, sizeof tag);
  if (tag != kReducerTag) a.fail(i, "reducer", "must be a gradient reducer");
  auto* box = static_cast<ReducerBox*>(data);
  if (!box->reducer) a.fail(i, "reducer", "has been disposed");
  return *box->reducer;
}

// gradReducer(group, parameters, buckets: parameter indices per bucket), hooked from now on.
Napi::Value NewReducer(const Napi::CallbackInfo& info) {
  return Guard(info, "gradReducer", [&]() -> Napi::Value {
    Args a{info, "gradReducer"};
    auto group = GroupOf(a, 0);
    auto params = a.tensors(1, "parameters");
    if (a.absent(2) || !info[2].IsArray()) a.fail(2, "buckets", "must be an array of arrays of parameter indices");
    auto list = info[2].As<Napi::Array>();
    std::vector<std::vector<size_t>> buckets;
    std::vector<bool> placed(params.size(), false);
    for (uint32_t b = 0; b < list.Length(); ++b) {
      buckets.emplace_back();
      Napi::Value item = list[b];
      if (!item.IsArray()) a.fail(2, "buckets", "must be an array of arrays of parameter indices");
      auto members = item.As<Napi::Array>();
      for (uint32_t k = 0; k < members.Length(); ++k) {
        Napi::Value v = members[k];
        double p = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
        if (!(p >= 0 && p < params.size()) || p != static_cast<size_t>(p) || placed[static_cast<size_t>(p)])
          a.fail(2, "buckets", "must place each parameter index in exactly one bucket");
        placed[static_cast<size_t>(p)] = true;
        buckets.back().push_back(static_cast<size_t>(p));
      }
    }
    for (bool p : placed)
      if (!p) a.fail(2, "buckets", "must place each parameter index in exactly one bucket");
    auto reducer = std::make_shared<GradReducer>(group, std::move(params), std::move(buckets));
    reducer->InstallHooks();
    auto* box = new ReducerBox{kReducerTag, std::move(reducer)};
    return Napi::External<ReducerBox>::New(info.Env(), box, [](Napi::BasicEnv, ReducerBox* b) {
      ReleaseReducer(b);
      delete b;
    });
  });
}

Napi::Value FinishReducer(const Napi::CallbackInfo& info) {
  return Guard(info, "gradReducer.finish", [&]() -> Napi::Value {
    Args a{info, "gradReducer.finish"};
    return Napi::Number::New(info.Env(), static_cast<double>(ReducerOf(a, 0).Finish()));
  });
}

Napi::Value SetReducerEnabled(const Napi::CallbackInfo& info) {
  return Guard(info, "gradReducer.setEnabled", [&]() -> Napi::Value {
    Args a{info, "gradReducer.setEnabled"};
    ReducerOf(a, 0).SetEnabled(a.boolean(1, "enabled"));
    return info.Env().Undefined();
  });
}

Napi::Value DisposeReducer(const Napi::CallbackInfo& info) {
  return Guard(info, "gradReducer.dispose", [&]() -> Napi::Value {
    Args a{info, "gradReducer.dispose"};
    ReducerOf(a, 0);
    void* data = nullptr;
    napi_get_value_external(info.Env(), info[0], &data);
    ReleaseReducer(static_cast<ReducerBox*>(data));
    return info.Env().Undefined();
  });
}

}  // namespace

void RegisterGradReducer(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Function::Callback cb) { exports.Set(name, Napi::Function::New(env, cb, name)); };
  fn("distGradReducer", NewReducer);
  fn("distGradReducerFinish", FinishReducer);
  fn("distGradReducerSetEnabled", SetReducerEnabled);
  fn("distGradReducerDispose", DisposeReducer);
}

}  // namespace shim

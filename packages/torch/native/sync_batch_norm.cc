// SyncBatchNorm: batch normalization with statistics over every rank's batch, as PyTorch's
// torch.nn.SyncBatchNorm (torch/nn/modules/_functions.py), with plain ops since libtorch's
// batch_norm_stats and friends are CUDA-only. Forward allreduces per-channel [sum, sum of squares,
// count]; backward allreduces [sum dy, sum dy * x_hat] and forms the input gradient from the
// global sums. Both wait inside the op: for CPU graphs autograd runs backward on the calling
// thread, so its collective must never call back into JS.
#include "distributed.h"

#include <torch/csrc/autograd/custom_function.h>

namespace shim {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// [1, C, 1, ...]: a per-channel vector broadcast over an N, C, * input.
std::vector<int64_t> ChannelShape(const at::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  return shape;
}

// Every dimension but the channels'.
std::vector<int64_t> ReducedDims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

struct GlobalStats {
  at::Tensor mean;
  at::Tensor var;  // biased, as normalization uses it
  int64_t count;   // values per channel over all ranks
};

// Each rank's mean and variance (Welford, as BatchNorm's own) become [sum, sum of squares, count]
// in float64, so that the global variance, E[x^2] - E[x]^2, does not cancel away.
GlobalStats AllReduceStats(c10d::ProcessGroup& group, const at::Tensor& input) {
  at::NoGradGuard noGrad;
  // Statistics in float32 for reduced-precision inputs, as batch norm keeps them.
  const bool reduced = input.scalar_type() == at::kBFloat16 || input.scalar_type() == at::kHalf;
  const auto x = reduced ? input.to(at::kFloat) : input;
  const int64_t channels = x.size(1);
  const int64_t count = channels ? x.numel() / channels : 0;
  auto packed = at::zeros({2 * channels + 1}, x.options().dtype(at::kDouble));
  if (count > 0) {
    auto [var, mean] = at::var_mean(x, ReducedDims(x), /*unbiased=*/false);
    auto mean64 = mean.to(at::kDouble);
    packed.narrow(0, 0, channels).copy_(mean64 * count);
    packed.narrow(0, channels, channels).copy_((var.to(at::kDouble) + mean64.square()) * count);
    packed[2 * channels].fill_(count);
  }
  std::vector<at::Tensor> tensors{packed};
  group.allreduce(tensors)->wait();
  const auto total = static_cast<int64_t>(packed[2 * channels].item<double>());
  auto mean = packed.narrow(0, 0, channels) / std::max<int64_t>(total, 1);
  auto var = (packed.narrow(0, channels, channels) / std::max<int64_t>(total, 1) - mean.square()).clamp_min(0);
  return {mean.to(x.scalar_type()), var.to(x.scalar_type()), total};
}

struct SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
  // `mean` and `var` are the global statistics (constants to autograd: backward accounts for them).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const c10::optional<at::Tensor>& weight,
                            const c10::optional<at::Tensor>& bias, const at::Tensor& mean, const at::Tensor& var, double eps,
                            int64_t count, int64_t groupId) {
    ctx->save_for_backward({input, weight.value_or(at::Tensor()), mean, var});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["count"] = count;
    ctx->saved_data["group"] = groupId;
    ctx->saved_data["weight"] = weight.has_value() && weight->defined();
    ctx->saved_data["bias"] = bias.has_value() && bias->defined();
    // Normalizing with given statistics is batch norm's evaluation mode.
    return at::batch_norm(input, weight, bias, mean, var, /*training=*/false, 0.0, eps, /*cudnn_enabled=*/false);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const auto& weight = saved[1];
    const auto& mean = saved[2];
    const auto& var = saved[3];
    const double eps = ctx->saved_data["eps"].toDouble();
    const auto& dy = grads[0];
    // This rank's sum dy * x_hat and sum dy: batch norm's own backward in evaluation mode, given the global statistics.
    auto [unused, sumDyXhat, sumDy] = at::native_batch_norm_backward(dy, input, weight, mean, var, c10::nullopt, c10::nullopt,
                                                                     /*train=*/false, eps, {false, true, true});
    at::Tensor gradInput;
    if (ctx->needs_input_grad(0)) {
      const int64_t channels = input.size(1);
      auto sums = at::cat({sumDy, sumDyXhat});
      std::vector<at::Tensor> tensors{sums};
      FindGroup(ctx->saved_data["group"].toInt())->allreduce(tensors)->wait();
      sums.div_(ctx->saved_data["count"].toInt());
      auto meanDy = sums.narrow(0, 0, channels);
      auto meanDyXhat = sums.narrow(0, channels, channels);
      // dx = (dy - mean(dy) - x_hat * mean(dy * x_hat)) * invstd * w, as dy * k + x * a + b per channel.
      auto invstd = (var + eps).rsqrt();
      auto k = weight.defined() ? invstd * weight : invstd;
      auto a = -k * invstd * meanDyXhat;
      auto b = -k * meanDy - mean * a;
      auto shape = ChannelShape(input);
      gradInput = at::addcmul(b.view(shape), input, a.view(shape)).addcmul_(dy, k.view(shape)).to(input.scalar_type());
    }
    // Weight and bias keep this rank's gradients: DistributedDataParallel averages them with the rest.
    return {gradInput,
            ctx->saved_data["weight"].toBool() ? sumDyXhat : at::Tensor(),
            ctx->saved_data["bias"].toBool() ? sumDy : at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

// syncBatchNorm(group, input, weight?, bias?, runningMean?, runningVar?, momentum, eps): training
// mode (evaluation mode is plain batch norm with the running statistics). Updates the running
// statistics with the global ones, the variance unbiased, as BatchNorm does.
Napi::Value SyncBatchNorm(const Napi::CallbackInfo& info) {
  return Guard(info, "syncBatchNorm", [&]() -> Napi::Value {
    Args a{info, "syncBatchNorm"};
    const int64_t groupId = a.int64(0, "group");
    auto group = GroupOf(a, 0);
    const auto& input = a.tensor(1, "input");
    auto weight = a.optTensor(2, "weight");
    auto bias = a.optTensor(3, "bias");
    auto runningMean = a.optTensor(4, "runningMean");
    auto runningVar = a.optTensor(5, "runningVar");
    const double momentum = a.float64(6, "momentum");
    const double eps = a.float64(7, "eps");
    if (input.dim() < 2) a.fail(1, "input", "must have a batch and a channel dimension, got " + std::to_string(input.dim()) + "-d");
    if (!at::isFloatingType(input.scalar_type())) a.fail(1, "input", "must be floating point");
    c10::impl::ExcludeDispatchKeyGuard noAutocast(c10::DispatchKey::AutocastCPU);
    auto stats = AllReduceStats(*group, input);
    TORCH_CHECK(stats.count > 1, "Expected more than 1 value per channel when training, got input size ", input.sizes(),
                " on each of ", group->getSize(), " rank(s)");
    if (runningMean && runningVar) {
      at::NoGradGuard noGrad;
      const double unbiased = static_cast<double>(stats.count) / static_cast<double>(stats.count - 1);
      runningMean->mul_(1 - momentum).add_(stats.mean.to(runningMean->scalar_type()), momentum);
      runningVar->mul_(1 - momentum).add_((stats.var * unbiased).to(runningVar->scalar_type()), momentum);
    }
    return WrapTensor(info.Env(), SyncBatchNormFunction::apply(input, weight, bias, stats.mean, stats.var, eps, stats.count, groupId));
  });
}

}  // namespace

void RegisterSyncBatchNorm(Napi::Env env, Napi::Object exports) {
  exports.Set("distSyncBatchNorm", Napi::Function::New(env, SyncBatchNorm, "distSyncBatchNorm"));
}

}  // namespace shim

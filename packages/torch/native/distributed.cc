// torch.distributed over c10d: a TCPStore rendezvous and ProcessGroupGloo collectives. Every call
// that can block (rendezvous, waiting for a collective) runs on libuv's thread pool and settles a
// promise, so the event loop stays free; c10d's errors become rejections with its message.
#include "distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

namespace shim {
namespace {

std::mutex groupsMutex;
std::map<int64_t, c10::intrusive_ptr<c10d::ProcessGroup>> groups;
int64_t nextGroup = 1;

c10::intrusive_ptr<c10d::ProcessGroup> FindGroupOrNull(int64_t id) {
  std::lock_guard<std::mutex> lock(groupsMutex);
  auto it = groups.find(id);
  if (it == groups.end()) return {};
  return it->second;
}

constexpr const char* kNoGroup = "no such process group (destroyed, or never created)";

}  // namespace

c10::intrusive_ptr<c10d::ProcessGroup> FindGroup(int64_t id) {
  auto group = FindGroupOrNull(id);
  TORCH_CHECK(group, kNoGroup);
  return group;
}

c10::intrusive_ptr<c10d::ProcessGroup> GroupOf(const Args& a, size_t i) {
  auto group = FindGroupOrNull(a.int64(i, "group"));
  if (!group) a.fail(i, "group", kNoGroup);
  return group;
}

namespace {

// Runs `work` on the thread pool; resolves with `done()`'s value on the main thread.
class Blocking : public Napi::AsyncWorker {
 public:
  Blocking(Napi::Env env, std::string op, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), op_(std::move(op)), work_(std::move(work)),
        done_(std::move(done)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const c10::Error& e) {
      SetError(op_ + ": " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(op_ + ": " + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(done_(Env())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string op_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
};

Napi::Value Queue(Napi::Env env, const char* op, std::function<void()> work,
                  std::function<Napi::Value(Napi::Env)> done = [](Napi::Env e) { return e.Undefined(); }) {
  auto* worker = new Blocking(env, op, std::move(work), std::move(done));
  auto promise = worker->Promise();
  worker->Queue();
  return promise;
}

// initProcessGroup(host, port, rank, worldSize, timeoutMs) -> Promise<group id>
Napi::Value InitProcessGroup(const Napi::CallbackInfo& info) {
  return Guard(info, "initProcessGroup", [&]() -> Napi::Value {
    Args a{info, "initProcessGroup"};
    std::string host = a.string(0, "masterAddr");
    int64_t port = a.int64(1, "masterPort");
    int64_t rank = a.int64(2, "rank");
    int64_t world = a.int64(3, "worldSize");
    int64_t timeoutMs = a.int64(4, "timeoutMs");
    if (port < 1 || port > 65535) a.fail(1, "masterPort", "must be in 1..65535, got " + std::to_string(port));
    if (world < 1) a.fail(3, "worldSize", "must be at least 1");
    if (rank < 0 || rank >= world) a.fail(2, "rank", "must be in 0.." + std::to_string(world - 1) + ", got " + std::to_string(rank));
    auto id = std::make_shared<int64_t>(0);
    return Queue(
        info.Env(), "initProcessGroup",
        [=]() {
          c10d::TCPStoreOptions opts;
          opts.port = static_cast<std::uint16_t>(port);
          opts.isServer = rank == 0;
          opts.numWorkers = static_cast<std::size_t>(world);
          opts.timeout = std::chrono::milliseconds(timeoutMs);
          auto store = c10::make_intrusive<c10d::TCPStore>(host, opts);
          auto options = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeoutMs));
          const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
          options->devices.push_back(ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                            : c10d::ProcessGroupGloo::createDefaultDevice());
          auto prefixed = c10::make_intrusive<c10d::PrefixStore>("pretext", store);
          auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, static_cast<int>(rank), static_cast<int>(world), options);
          std::lock_guard<std::mutex> lock(groupsMutex);
          *id = nextGroup++;
          groups[*id] = group;
        },
        [id](Napi::Env env) { return Napi::Number::New(env, static_cast<double>(*id)); });
  });
}

c10d::ReduceOp ReduceOpOf(const Args& a, size_t i) {
  std::string op = a.string(i, "op");
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "avg") return c10d::ReduceOp::AVG;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  a.fail(i, "op", "must be sum, avg, max, min or product, got '" + op + "'");
}

// Waits for a collective: on the thread pool (a promise), or here when `blocking` (inside a
// synchronous training step, as PyTorch's DDP blocks its Python thread).
Napi::Value WaitFor(const Args& a, size_t blockingArg, const char* op, c10::intrusive_ptr<c10d::Work> work) {
  if (!a.absent(blockingArg) && a.boolean(blockingArg, "blocking")) {
    work->wait();
    return a.info.Env().Undefined();
  }
  return Queue(a.info.Env(), op, [work]() { work->wait(); });
}

Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  return Guard(info, "allReduce", [&]() -> Napi::Value {
    Args a{info, "allReduce"};
    auto group = GroupOf(a, 0);
    auto tensors = a.tensors(1, "tensors");
    c10d::AllreduceOptions opts;
    opts.reduceOp = ReduceOpOf(a, 2);
    return WaitFor(a, 3, "allReduce", group->allreduce(tensors, opts));
  });
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  return Guard(info, "broadcast", [&]() -> Napi::Value {
    Args a{info, "broadcast"};
    auto group = GroupOf(a, 0);
    auto tensors = a.tensors(1, "tensors");
    c10d::BroadcastOptions opts;
    opts.rootRank = a.int64(2, "src");
    return WaitFor(a, 3, "broadcast", group->broadcast(tensors, opts));
  });
}

// allGather(group, outputs (one per rank), input)
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  return Guard(info, "allGather", [&]() -> Napi::Value {
    Args a{info, "allGather"};
    auto group = GroupOf(a, 0);
    std::vector<std::vector<at::Tensor>> outputs{a.tensors(1, "outputs")};
    std::vector<at::Tensor> inputs{a.tensor(2, "input")};
    return WaitFor(a, 3, "allGather", group->allgather(outputs, inputs));
  });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  return Guard(info, "barrier", [&]() -> Napi::Value {
    Args a{info, "barrier"};
    return WaitFor(a, 1, "barrier", GroupOf(a, 0)->barrier());
  });
}

Napi::Value DestroyProcessGroup(const Napi::CallbackInfo& info) {
  return Guard(info, "destroyProcessGroup", [&]() -> Napi::Value {
    Args a{info, "destroyProcessGroup"};
    int64_t id = a.int64(0, "group");
    std::lock_guard<std::mutex> lock(groupsMutex);
    groups.erase(id);
    return info.Env().Undefined();
  });
}

}  // namespace

void RegisterDistributedOps(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Function::Callback cb) { exports.Set(name, Napi::Function::New(env, cb, name)); };
  fn("distInitProcessGroup", InitProcessGroup);
  fn("distAllReduce", AllReduce);
  fn("distBroadcast", Broadcast);
  fn("distAllGather", AllGather);
  fn("distBarrier", Barrier);
  fn("distDestroyProcessGroup", DestroyProcessGroup);
  RegisterSyncBatchNorm(env, exports);
  RegisterGradReducer(env, exports);
}

}  // namespace shim

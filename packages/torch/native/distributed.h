// Shared by the distributed parts of the shim: process groups by id, and the registration of the
// ops built on them (collectives, SyncBatchNorm, the gradient reducer).
#pragma once
#include "shim.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

namespace shim {

// The process group with this id; throws (a c10::Error) when it was destroyed or never created.
c10::intrusive_ptr<c10d::ProcessGroup> FindGroup(int64_t id);

// The process group named by argument i, as an argument error when there is none.
c10::intrusive_ptr<c10d::ProcessGroup> GroupOf(const Args& a, size_t i);

void RegisterSyncBatchNorm(Napi::Env env, Napi::Object exports);
void RegisterGradReducer(Napi::Env env, Napi::Object exports);

}  // namespace shim

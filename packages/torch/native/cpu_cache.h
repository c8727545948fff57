// A caching allocator for libtorch's CPU tensors, in the spirit of PyTorch's CUDA one.
#pragma once
#include <cstddef>

namespace shim {

struct CpuCacheStats {
  bool enabled;
  size_t liveBytes;     // in tensors now
  size_t cachedBytes;   // freed by tensors, kept for reuse
  size_t limitBytes;    // most idle bytes kept before blocks go back to the system
  size_t hits;          // allocations served from the cache
  size_t misses;        // allocations that mapped fresh memory
};

// Replaces libtorch's CPU allocator unless PRETEXT_CPU_CACHE=0; returns whether it did.
// PRETEXT_CPU_CACHE_LIMIT_MB bounds the idle bytes kept (default: half the machine's memory).
bool InstallCpuCache();
CpuCacheStats GetCpuCacheStats();
// Unmaps every idle block; returns the bytes released.
size_t EmptyCpuCache();

}  // namespace shim

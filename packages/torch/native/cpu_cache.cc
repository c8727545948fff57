// Why a cache: a training step frees and reallocates the same large buffers every step. Through
// malloc, libtorch's OpenMP workers and Node's own threads fragment the heap, and RSS crept 5-11%
// over 10,000 steps in fits and starts. Here every block of 256 KiB or more is its own mapping,
// reused by size: once the first steps have mapped what a step needs, RSS stays put and nothing
// page-faults again. Smaller blocks stay with libtorch's allocator.
#include "cpu_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace shim {
namespace {

constexpr size_t kMinCachedBytes = size_t{256} << 10;
constexpr size_t kPageBytes = 4096;
// A cached block serves requests down to 7/8 of its size, so that sizes which differ a little
// (a last, smaller batch) share blocks.
constexpr size_t kSlackDivisor = 8;

void* MapBlock(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void ReleaseBlock(void* ptr);

class CpuCache final : public c10::Allocator {
 public:
  CpuCache(c10::Allocator* fallback, size_t limit) : fallback_(fallback), limit_(limit) {}

  c10::DataPtr allocate(size_t n) const override {
    if (n < kMinCachedBytes) return fallback_->allocate(n);
    void* p = Take(n);
    return {p, p, &ReleaseBlock, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &ReleaseBlock; }

  // Returns a block to the cache, or to the system past the idle limit. Pointers that are not
  // ours come from raw allocations under the threshold and go to the fallback's deleter.
  void Release(void* ptr) const {
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) {
      lock.unlock();
      fallback_->raw_deleter()(ptr);
      return;
    }
    const size_t bytes = it->second;
    live_.erase(it);
    liveBytes_ -= bytes;
    if (cachedBytes_ + bytes <= limit_) {
      // First among its size, so that the next request reuses the most recently freed block:
      // its lines may still be in cache.
      idle_.emplace_hint(idle_.lower_bound(bytes), bytes, ptr);
      cachedBytes_ += bytes;
      return;
    }
    lock.unlock();
    munmap(ptr, bytes);
  }

  size_t Empty() const {
    std::multimap<size_t, void*> idle;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle.swap(idle_);
      cachedBytes_ = 0;
    }
    size_t released = 0;
    for (auto& [bytes, ptr] : idle) {
      munmap(ptr, bytes);
      released += bytes;
    }
    return released;
  }

  CpuCacheStats Stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {true, liveBytes_, cachedBytes_, limit_, hits_, misses_};
  }

 private:
  void* Take(size_t n) const {
    const size_t bytes = (n + kPageBytes - 1) / kPageBytes * kPageBytes;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = idle_.lower_bound(bytes);
      if (it != idle_.end() && it->first - bytes <= it->first / kSlackDivisor) {
        void* p = it->second;
        Adopt(p, it->first);
        cachedBytes_ -= it->first;
        idle_.erase(it);
        hits_++;
        return p;
      }
    }
    void* p = MapBlock(bytes);
    if (!p && Empty() > 0) p = MapBlock(bytes);
    TORCH_CHECK(p, "CPU allocator: not enough memory: you tried to allocate ", n, " bytes");
    std::lock_guard<std::mutex> lock(mutex_);
    Adopt(p, bytes);
    misses_++;
    return p;
  }

  void Adopt(void* p, size_t bytes) const {
    live_.emplace(p, bytes);
    liveBytes_ += bytes;
  }

  // allocate() is const in c10's interface; the bookkeeping below is guarded by mutex_.
  c10::Allocator* fallback_;
  const size_t limit_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, size_t> live_;
  mutable std::multimap<size_t, void*> idle_;
  mutable size_t liveBytes_ = 0, cachedBytes_ = 0, hits_ = 0, misses_ = 0;
};

CpuCache* g_cache = nullptr;  // lives as long as the process: tensors may be freed at exit

void ReleaseBlock(void* ptr) { g_cache->Release(ptr); }

size_t DefaultLimit() {
  if (const char* mb = std::getenv("PRETEXT_CPU_CACHE_LIMIT_MB")) return std::strtoull(mb, nullptr, 10) << 20;
  return static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE)) / 2;
}

}  // namespace

bool InstallCpuCache() {
  const char* flag = std::getenv("PRETEXT_CPU_CACHE");
  if (flag && std::string(flag) == "0") return false;
  if (!g_cache) {
    g_cache = new CpuCache(c10::GetCPUAllocator(), DefaultLimit());
    c10::SetCPUAllocator(g_cache, /*priority=*/1);
  }
  return true;
}

CpuCacheStats GetCpuCacheStats() { return g_cache ? g_cache->Stats() : CpuCacheStats{false, 0, 0, 0, 0, 0}; }

size_t EmptyCpuCache() { return g_cache ? g_cache->Empty() : 0; }

}  // namespace shim

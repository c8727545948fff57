// Process-wide libtorch settings.
import { native, type CpuCacheStats } from './handle.js';

/** libtorch's intra-op threads; the addon starts with one per available CPU (or PRETEXT_NUM_THREADS). */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export function runtimeInfo(): ReturnType<typeof native.runtimeInfo> {
  return native.runtimeInfo();
}

export const cuda = {
  isAvailable: (): boolean => native.runtimeInfo().cudaAvailable,
};

/**
 * The CPU caching allocator: tensors of 256 KiB and more are mapped once and reused by size, so
 * that a training loop's memory stays flat (PRETEXT_CPU_CACHE=0 turns it off). As
 * torch.cuda.memory_stats and empty_cache do for the GPU.
 */
export const cpuCache = {
  stats: (): CpuCacheStats => native.cpuCacheStats(),
  /** Returns every idle block to the system; the bytes released. */
  empty: (): number => native.emptyCpuCache(),
};

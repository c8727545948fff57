// Process-wide libtorch settings.
import { readFileSync } from 'node:fs';
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

/** CPU flags that mean native bfloat16 arithmetic: AVX512-BF16 (Zen 4/5, Cooper Lake) or AMX (Sapphire Rapids on). */
const NATIVE_BF16_FLAGS = ['avx512_bf16', 'amx_bf16'];
let nativeBf16: boolean | undefined;

/** Whether a /proc/cpuinfo text lists a native bfloat16 flag. */
export function cpuinfoHasBf16(cpuinfo: string): boolean {
  const flags = new Set(
    cpuinfo
      .split('\n')
      .filter((line) => /^flags\s*:/.test(line))
      .flatMap((line) =>
        line
          .slice(line.indexOf(':') + 1)
          .trim()
          .split(/\s+/),
      ),
  );
  return NATIVE_BF16_FLAGS.some((flag) => flags.has(flag));
}

export const cpu = {
  /**
   * Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where CPU autocast to
   * bfloat16 is faster than float32; as torch.cuda.is_bf16_supported() for the GPU. Read from
   * /proc/cpuinfo once; false where that file does not exist.
   */
  isBf16Supported(): boolean {
    if (nativeBf16 === undefined) {
      let text = '';
      try {
        text = readFileSync('/proc/cpuinfo', 'utf8');
      } catch {
        // Not Linux: no way to tell, take float32.
      }
      nativeBf16 = cpuinfoHasBf16(text);
    }
    return nativeBf16;
  },
};

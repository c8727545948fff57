// Process-wide libtorch settings.
import { native } from './handle.js';

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

// Will a training step fit in memory? Before the first step, dry steps (forward and backward of
// every phase on random inputs) at two small batch sizes are measured, the per-sample and fixed
// parts fitted, and the step at the run's batch size extrapolated; a run that would not fit is
// refused with what to change, instead of growing until the kernel kills it without a word.
//
// Measuring: the peak resident set (VmHWM, reset through /proc/self/clear_refs) over the step, after
// the CPU cache gave its idle blocks back; where that cannot be reset, the bytes the CPU cache maps
// for the step (its large blocks; an underestimate of the small ones), else the growth of RSS.
import { readFileSync, writeFileSync } from 'node:fs';
import { freemem } from 'node:os';
import * as torch from '@pretext/torch';
import { imageBatch, type Batch } from '../data/loader.js';
import type { TaskInstance } from '../tasks/task.js';

export interface StepMemoryEstimate {
  /** Items per step the estimate is for (the loader batches batchSize * samplesPerItem images). */
  batchSize: number;
  /** Bytes a step needs beyond what the process held before it, at `batchSize`. */
  stepBytes: number;
  /** The fit stepBytes = fixedBytes + perItemBytes * batchSize, from the dry steps. */
  perItemBytes: number;
  fixedBytes: number;
  /** The dry steps: items and measured bytes. */
  probes: { items: number; bytes: number }[];
  /** Resident bytes of the process before the steps. */
  residentBytes: number;
  method: 'peak-rss' | 'cpu-cache' | 'rss';
}

const statusField = (name: string): number | undefined => {
  try {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
};

/** Resets the process's peak RSS to its current RSS (Linux); false where that is not allowed. */
function resetPeakResident(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return statusField('VmHWM') !== undefined;
  } catch {
    return false;
  }
}

const cacheBytes = (): number => {
  const stats = torch.cpuCache.stats();
  return stats.liveBytes + stats.cachedBytes;
};

/** Bytes `run()` needs at its peak beyond what the process holds before it. */
function measurePeak(run: () => void, method: StepMemoryEstimate['method']): number {
  torch.cpuCache.empty();
  const rss = process.memoryUsage().rss;
  if (method === 'peak-rss') {
    resetPeakResident();
    run();
    return Math.max(0, (statusField('VmHWM') ?? rss) - rss);
  }
  const cached = cacheBytes();
  run();
  return Math.max(0, method === 'cpu-cache' ? cacheBytes() - cached : process.memoryUsage().rss - rss);
}

export interface DryStepInput {
  instance: TaskInstance;
  /** Channels and side of the loader's images. */
  channels: number;
  imageSize: number;
  /** Consecutive samples per item (frame tuples); default 1. */
  samplesPerItem?: number;
  /** Names of the task's further data sources; each gets a random batch of the same shape. */
  sources?: string[];
}

/**
 * A dry training step on `items` random items: prepare, then every phase's loss and backward, as the
 * trainer runs them (without optimizer steps). Batch-norm statistics, the global RNG and gradients
 * are restored afterwards, so the run goes on as if the step never happened.
 */
export function dryStep(input: DryStepInput): (items: number) => void {
  const { instance, channels, imageSize } = input;
  const modules = Object.values(instance.modules);
  return (items) => {
    const n = items * (input.samplesPerItem ?? 1);
    const rng = torch.defaultGenerator();
    const rngState = rng.getState();
    const buffers = modules.flatMap((m) => [...m.namedBuffers()].map(([, b]) => b));
    const saved = torch.noGrad(() => buffers.map((b) => torch.keep(b.clone())));
    try {
      torch.tidy(() => {
        const fake = (): Batch => imageBatch(torch.randn([n, channels, imageSize, imageSize]));
        const sources = input.sources?.length ? Object.fromEntries(input.sources.map((name) => [name, fake()])) : undefined;
        const prepared = instance.prepare(fake(), new torch.Generator(0), sources);
        for (const phase of instance.phases()) instance.step(prepared, phase.name).loss.backward();
      });
    } finally {
      for (const m of modules) m.zeroGrad();
      torch.noGrad(() => torch.tidy(() => buffers.forEach((b, i) => b.copy_(saved[i]))));
      saved.forEach((t) => t.dispose());
      rng.setState(rngState);
      rngState.dispose();
      torch.cpuCache.empty();
    }
  };
}

/** Bytes of the tensors' data (e.g. parameters, for optimizer state of that size per slot). */
export const tensorBytes = (tensors: torch.Tensor[]): number =>
  tensors.reduce((sum, t) => sum + t.numel() * torch.bytesPerElement[t.dtype], 0);

/**
 * Measures `step` (a dry step, see `dryStep`) at two small sizes and extrapolates to `batchSize`
 * items. `extraBytes` adds what the dry step does not allocate (optimizer state: momentum, Adam moments).
 */
export function estimateStepMemory(
  step: (items: number) => void,
  batchSize: number,
  options: { probes?: [number, number]; extraBytes?: number } = {},
): StepMemoryEstimate {
  const [small, large] = options.probes ?? [1, Math.min(4, batchSize)];
  const residentBytes = process.memoryUsage().rss;
  const method = resetPeakResident() ? 'peak-rss' : torch.cpuCache.stats().enabled ? 'cpu-cache' : 'rss';
  step(small); // warm-up: one-time allocations (oneDNN primitives, lazy buffers) are not per-item costs
  const probes = [small, large].map((items) => ({ items, bytes: measurePeak(() => step(items), method) }));
  const [a, b] = probes;
  const perItemBytes = b.items > a.items ? Math.max(0, (b.bytes - a.bytes) / (b.items - a.items)) : b.bytes / Math.max(1, b.items);
  const fixedBytes = Math.max(0, a.bytes - perItemBytes * a.items) + (options.extraBytes ?? 0);
  return { batchSize, stepBytes: fixedBytes + perItemBytes * batchSize, perItemBytes, fixedBytes, probes, residentBytes, method };
}

/** A cgroup (v2, else v1) memory limit's headroom, or undefined without a limit. */
function cgroupHeadroom(): number | undefined {
  const read = (path: string) => {
    try {
      const text = readFileSync(path, 'utf8').trim();
      return text === 'max' ? undefined : Number(text);
    } catch {
      return undefined;
    }
  };
  for (const [limitFile, usageFile] of [
    ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current'],
    ['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.usage_in_bytes'],
  ]) {
    const limit = read(limitFile);
    const usage = read(usageFile);
    if (limit !== undefined && usage !== undefined && limit < 2 ** 60) return Math.max(0, limit - usage);
  }
  return undefined;
}

/** Memory the process can still take: the system's available memory, or less under a cgroup limit. */
export function availableMemory(): { bytes: number; source: string } {
  const system = process.availableMemory?.() ?? freemem();
  const cgroup = cgroupHeadroom();
  return cgroup !== undefined && cgroup < system
    ? { bytes: cgroup, source: "the container's memory limit" }
    : { bytes: system, source: 'available system memory' };
}

const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 1)} GiB`;

/**
 * Throws a clear error when the estimated step needs more than `fraction` of the available memory:
 * how much it needs, how much there is, the largest batch size that fits, and the flags to change.
 */
export function checkStepMemory(
  estimate: StepMemoryEstimate,
  context: { imageSize: number; available?: { bytes: number; source: string }; fraction?: number },
): void {
  const available = context.available ?? availableMemory();
  const usable = available.bytes * (context.fraction ?? 0.9);
  if (estimate.stepBytes <= usable) return;
  const fits = Math.floor((usable - estimate.fixedBytes) / Math.max(1, estimate.perItemBytes));
  const advice =
    fits >= 1
      ? `lower --batch-size to ${fits} or less, or --image-size (now ${context.imageSize})`
      : `lower --image-size (now ${context.imageSize}) or use a smaller --backbone: even a batch of 1 does not fit`;
  throw new Error(
    `a training step at batch size ${estimate.batchSize} would need about ${gib(estimate.stepBytes)} of memory, ` +
      `but ${gib(available.bytes)} is free (${available.source}): ${advice}`,
  );
}

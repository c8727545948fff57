// The loaded addon and the conversions between JS values and native handles.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { device, dtypeCodes, isDType, type AnyTypedArray, type DType, type DeviceLike } from './dtype.js';
import type { GeneratedNative } from './generated/native.js';
import type { Tensor } from './tensor.js';

declare const handleBrand: unique symbol;
/** An opaque native tensor handle. */
export type Handle = { readonly [handleBrand]: 'tensor' };
declare const generatorBrand: unique symbol;
export type GeneratorHandle = { readonly [generatorBrand]: 'generator' };
declare const reducerBrand: unique symbol;
export type GradReducerHandle = { readonly [reducerBrand]: 'gradReducer' };

/** The CPU caching allocator's counters (native/cpu_cache.cc). */
export interface CpuCacheStats {
  /** False when PRETEXT_CPU_CACHE=0 left libtorch's own allocator in place. */
  enabled: boolean;
  /** Bytes in cached-size blocks that tensors hold now. */
  liveBytes: number;
  /** Bytes freed by tensors and kept for reuse. */
  cachedBytes: number;
  /** The most idle bytes kept (PRETEXT_CPU_CACHE_LIMIT_MB; default half the machine's memory). */
  limitBytes: number;
  hits: number;
  misses: number;
}

export interface CoreNative {
  dispose(h: Handle): void;
  reportMemory(h: Handle): void;
  /** Whether a tidy() scope is open: outside any, new handles report their memory to V8 themselves. */
  setScoped(open: boolean): void;
  /** The native side reads typed arrays only (a DataView is refused). */
  fromBuffer(data: AnyTypedArray, dtype: number, shape: number[], device?: string): Handle;
  toBuffer(h: Handle): ArrayBuffer;
  newGenerator(seed: number): GeneratorHandle;
  defaultGenerator(): GeneratorHandle;
  generatorManualSeed(g: GeneratorHandle, seed: number): void;
  generatorGetState(g: GeneratorHandle): Handle;
  generatorSetState(g: GeneratorHandle, state: Handle): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  autocastCpuEnter(dtype: number): [boolean, number];
  autocastCpuExit(enabled: boolean, dtype: number): void;
  autogradGrad(
    outputs: Handle[],
    inputs: Handle[],
    gradOutputs: Handle[] | undefined,
    retainGraph: boolean | undefined,
    createGraph: boolean,
    allowUnused: boolean,
  ): (Handle | undefined)[];
  backward(h: Handle, gradient: Handle | undefined, retainGraph: boolean, createGraph: boolean): void;
  cpuCacheStats(): CpuCacheStats;
  emptyCpuCache(): number;
  distInitProcessGroup(masterAddr: string, masterPort: number, rank: number, worldSize: number, timeoutMs: number): Promise<number>;
  distAllReduce(group: number, tensors: Handle[], op: string, blocking?: boolean): Promise<void> | undefined;
  distBroadcast(group: number, tensors: Handle[], src: number, blocking?: boolean): Promise<void> | undefined;
  distAllGather(group: number, outputs: Handle[], input: Handle, blocking?: boolean): Promise<void> | undefined;
  distBarrier(group: number, blocking?: boolean): Promise<void> | undefined;
  distDestroyProcessGroup(group: number): void;
  distSyncBatchNorm(
    group: number,
    input: Handle,
    weight: Handle | undefined,
    bias: Handle | undefined,
    runningMean: Handle | undefined,
    runningVar: Handle | undefined,
    momentum: number,
    eps: number,
  ): Handle;
  /** A gradient reducer over `parameters`, whose buckets launch from gradient hooks during backward. */
  distGradReducer(group: number, parameters: Handle[], buckets: number[][]): GradReducerHandle;
  /** Waits for every bucket and leaves averaged gradients; returns how many buckets had been launched during backward. */
  distGradReducerFinish(reducer: GradReducerHandle): number;
  distGradReducerSetEnabled(reducer: GradReducerHandle, enabled: boolean): void;
  distGradReducerDispose(reducer: GradReducerHandle): void;
  runtimeInfo(): { libtorchVersion: string; cudaAvailable: boolean; mkldnnAvailable: boolean; parallelInfo: string };
}

function loadAddon(): CoreNative & GeneratedNative {
  const require = createRequire(import.meta.url);
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const path = join(root, 'build', 'Release', 'pretext_torch.node');
  try {
    return require(path);
  } catch (e) {
    throw new Error(
      `@pretext/torch: cannot load the native addon at ${path}: ${(e as Error).message}\n` +
        'Build it with `npm run build -w @pretext/torch` (needs Debian libtorch-dev, or LIBTORCH=/path/to/libtorch).',
    );
  }
}

export const native = loadAddon();

type TensorFactory = (h: Handle) => Tensor;
let makeTensor: TensorFactory = () => {
  throw new Error('Tensor class not registered');
};

export function registerTensorFactory(factory: TensorFactory): void {
  makeTensor = factory;
}

export function wrap(h: Handle): Tensor {
  return makeTensor(h);
}

export function wrapOptional(h: Handle | undefined): Tensor | undefined {
  return h === undefined ? undefined : makeTensor(h);
}

export function wrapAll(hs: Handle[]): Tensor[] {
  return hs.map(makeTensor);
}

/**
 * The handle of a Tensor argument. Anything else goes down as it is, so that the native side
 * reports the op and argument ("must be a Tensor", "is required") instead of a JS TypeError.
 */
export function handleOf(t: Tensor | null | undefined): Handle {
  return ((t as { handle?: Handle } | null | undefined)?.handle ?? t) as Handle;
}

/** The handle of a Generator argument, with the same pass-through as handleOf. */
export function generatorHandleOf(g: { handle: GeneratorHandle } | null | undefined): GeneratorHandle | undefined {
  return ((g as { handle?: GeneratorHandle } | null | undefined)?.handle ?? g ?? undefined) as GeneratorHandle | undefined;
}

export function handles(ts: Tensor[]): Handle[] {
  return Array.isArray(ts) ? ts.map(handleOf) : (ts as unknown as Handle[]);
}

export function operand(x: Tensor | number | boolean): Handle | number | boolean {
  return typeof x === 'number' || typeof x === 'boolean' ? x : handleOf(x);
}

export function dtypeCode(dtype: DType | null | undefined, op?: string): number | undefined {
  if (dtype === undefined || dtype === null) return undefined;
  if (!isDType(dtype)) {
    const where = op ? `${op}: argument 'dtype' has an ` : '';
    throw new TypeError(`${where}unknown dtype '${String(dtype)}'; expected one of ${Object.keys(dtypeCodes).join(', ')}`);
  }
  return dtypeCodes[dtype];
}

export function deviceName(d: DeviceLike | undefined): string | undefined {
  return d === undefined ? undefined : device(d).toString();
}
